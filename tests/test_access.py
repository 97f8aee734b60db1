"""Who may call what: the access rules, by hand-built credentials, and their settings."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from auth.access import ADMIN, Access
from auth.callers import LOCAL, Caller
from chat.config import Settings, SettingsError
from traces.store import TraceStore
from traces.tokens import TokenStore

ADMIN_TOKEN = "admin-token-for-tests-0123456789"


@pytest.fixture
def access(tmp_path):
    def make(mode: str = "public", space_owner: str | None = "alice") -> Access:
        store = TraceStore(tmp_path / "t.sqlite3")
        return Access(mode, TokenStore(store.connect, store.now), "s" * 64, ADMIN_TOKEN, space_owner)

    return make


def test_a_caller_sees_only_its_own_unless_admin():
    assert Caller("visitor:a").may_see("visitor:a") and not Caller("visitor:a").may_see("visitor:b")
    assert ADMIN.may_see("visitor:b") and LOCAL.is_admin


def test_page_callers_by_mode_and_hugging_face_identity(access):
    public = access("public")
    assert public.page_caller("v1") == Caller("visitor:v1")
    assert public.page_caller("v1", "bob") == Caller("hf:bob")  # signed in: the same on every browser
    assert public.page_caller("v1", "alice").is_admin  # the Space's owner
    assert access("local").page_caller("v1") == LOCAL
    assert not access("public", space_owner=None).page_caller("v1", "alice").is_admin


def test_bearer_tokens(access):
    public = access("public")
    assert public.from_bearer(None) is None
    assert public.from_bearer(f"Bearer {ADMIN_TOKEN}") == ADMIN
    made = public.tokens.create("ci")
    assert public.from_bearer(f"Bearer {made['token']}") == Caller(f"token:{made['id']}")
    for bad in ("Bearer gbx_nope", "Basic abc", "Bearer "):
        with pytest.raises(HTTPException) as refused:
            public.from_bearer(bad)
        assert refused.value.status_code == 401
    public.tokens.revoke(made["id"])
    with pytest.raises(HTTPException):
        public.from_bearer(f"Bearer {made['token']}")


def test_ask_callers(access):
    assert access("public").ask_caller(None, "s1") == access("public").ask_caller(None, "s1")
    assert access("public").ask_caller(None, "s1") != access("public").ask_caller(None, "s2")
    with pytest.raises(HTTPException, match="private"):
        access("private").ask_caller(None, "s1")
    assert access("local").ask_caller(None, None) == LOCAL


def test_visitor_cookies_are_signed(access):
    public = access("public")
    cookie = public.sign("ab" * 16)
    assert public.verify(cookie) == "ab" * 16
    assert public.verify(cookie[:-1] + "0") is None and public.verify("not-a-cookie") is None
    assert public.verify(None) is None


@pytest.mark.parametrize(("host", "mode"), [("127.0.0.1", "local"), ("localhost", "local"),
                                            ("0.0.0.0", "public"), ("10.1.2.3", "public")])
def test_auth_mode_defaults_to_public_off_loopback(host, mode):
    assert Settings.from_env({"GRADIO_SERVER_NAME": host}).auth_mode == mode


def test_auth_settings_say_how_to_fix_them():
    with pytest.raises(SettingsError, match="at least 16 characters"):
        Settings.from_env({"ADMIN_TOKEN": "short"})
    with pytest.raises(SettingsError, match="needs ADMIN_TOKEN"):
        Settings.from_env({"AUTH_MODE": "private"})
    with pytest.raises(SettingsError, match="AUTH_MODE must be"):
        Settings.from_env({"AUTH_MODE": "open"})
    on_space = Settings.from_env({"OAUTH_CLIENT_ID": "x", "SYSTEM": "spaces", "SPACE_AUTHOR_NAME": "alice"})
    assert on_space.hf_oauth and on_space.space_owner == "alice"
    assert not Settings.from_env({"OAUTH_CLIENT_ID": "x"}).hf_oauth
    assert Settings.from_env({"TRACE_MAX_RUNS": "1000"}).trace_max_runs == 1000
    assert Settings.from_env({}).trace_max_runs is None
