"""The OpenAPI document matches what the API answers, and /docs works with no network."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.test_browser import ARGS, CHROMIUM, REQUIRED, sync_playwright

ADMIN_TOKEN = "gbx_admin-for-schemathesis"


@pytest.mark.parametrize(
    ("auth_mode", "token"),
    [
        ("local", None),  # everything, as the one trusted user (the admin)
        ("private", "user"),  # a token that is not the admin's: 403 on /api/tokens
        ("private", None),  # no token: 401 with WWW-Authenticate everywhere but health and prewarm
    ],
)
def test_schemathesis_finds_no_failures(serve_glassbox, tmp_path, auth_mode, token):
    running = serve_glassbox(auth_mode=auth_mode, admin_token=ADMIN_TOKEN)
    assert httpx.get(f"{running.url}/api/prewarm", timeout=30).status_code == 200
    headers = []
    if token == "user":
        headers = ["--header", f"Authorization: Bearer {running.glassbox.access.tokens.create('schemathesis')['token']}"]

    # Every operation and every check (`--checks all`), a few examples each, so it takes seconds.
    # The chat operations run the scripted model, which answers at once. POST /api/import is left
    # out: its body is a whole exported file, which no schema can say more of than "a string", so
    # every string is "valid" and every refusal a finding (tests/test_export.py tests it).
    # A fixed seed keeps the run repeatable; from tmp_path, no schemathesis.toml or example
    # database of a developer's is read, and nothing is left behind.
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{running.url}/openapi.json",
               "--checks", "all", "--max-examples", "10", "--seed", "1", "--generation-database", "none",
               "--request-timeout", "20", "--no-color", "--exclude-path", "/api/import", *headers]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-4000:]
    selected, total = re.search(r"Selected: (\d+)/(\d+)", result.stdout).groups()
    assert int(selected) == int(total) - 1  # all but POST /api/import
    assert f"Tested: {selected}\n" in result.stdout, result.stdout  # every selected operation, none skipped


def test_the_document_names_every_error_body_and_the_event_stream(serve_glassbox):
    schema = httpx.get(f"{serve_glassbox().url}/openapi.json").json()

    operations = [(f"{method.upper()} {path}", op) for path, item in schema["paths"].items()
                  for method, op in item.items()]
    assert len(operations) >= 15
    for name, operation in operations:
        for status, response in operation["responses"].items():
            body = response.get("content", {}).get("application/json", {}).get("schema", {})
            if status.startswith("4"):
                assert body == {"$ref": "#/components/schemas/ErrorBody"}, (name, status)
        if "401" in operation["responses"]:
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    stream = schema["paths"]["/api/chat/stream"]["post"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]  # not application/json
    event = stream["text/event-stream"]["itemSchema"]["properties"]["data"]  # one event, as FastAPI writes it
    assert event["contentMediaType"] == "application/json" and event["contentSchema"]["required"] == ["type"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["components"]["schemas"]["ErrorBody"]["properties"]["detail"]["type"] == "string"


def test_a_method_a_path_does_not_take_gets_405(serve_glassbox):
    url = serve_glassbox().url

    wrong = httpx.request("TRACE", f"{url}/api/health")
    put = httpx.put(f"{url}/api/threads/some-thread")

    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    assert put.status_code == 405 and put.headers["allow"] == "DELETE, GET, PATCH"
    assert "not allowed" in put.json()["detail"]
    assert httpx.get(f"{url}/api/no-such-thing").status_code == 404


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_assets_the_app_serves(serve_glassbox, page):
    url = serve_glassbox().url
    html = httpx.get(f"{url}{page}").text

    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(asset.startswith("/docs/assets/") for asset in assets), assets
    for asset in assets:
        response = httpx.get(f"{url}{asset}")
        assert response.status_code == 200 and len(response.content) > 1000, asset
        kind = {"js": "javascript", "css": "text/css", "png": "image/png"}[asset.rsplit(".", 1)[1]]
        assert kind in response.headers["content-type"], asset


def test_swagger_ui_draws_every_operation_with_no_network(serve_glassbox):
    missing = "playwright is not installed" if sync_playwright is None else None
    if not os.path.exists(CHROMIUM):
        missing = "Chromium is not installed (apt-get install chromium)"
    if missing:
        (pytest.fail if REQUIRED else pytest.skip)(missing)
    url = serve_glassbox().url
    requested: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1600})
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{url}/docs")
        page.wait_for_selector(".opblock-summary-path[data-path='/api/chat/stream']", timeout=20_000)
        paths = page.eval_on_selector_all(".opblock-summary-path", "nodes => nodes.map(n => n.dataset.path)")
        os.makedirs("tests/artifacts", exist_ok=True)
        page.screenshot(path="tests/artifacts/docs.png", full_page=True)
        browser.close()

    assert {"/api/chat/stream", "/api/chat", "/api/threads/{thread_id}", "/api/runs/{run_id}"} <= set(paths)
    offsite = [address for address in requested if not address.startswith(url) and not address.startswith("data:")]
    assert not offsite, offsite
