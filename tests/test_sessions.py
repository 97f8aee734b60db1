"""Gradio sessions started lazily (ui/sessions.py): the same session data, made when it is used."""

from __future__ import annotations

import json

import gradio as gr
import gradio.state_holder
import httpx
import pytest
from gradio.state_holder import SessionState

from ui.sessions import LazySessionState, use_lazy_sessions


@pytest.fixture
def page() -> gr.Blocks:
    with gr.Blocks() as demo:
        name = gr.Textbox(label="Name", value="Ada")
        count = gr.State(0)
        with gr.Row():
            greeting = gr.Markdown("Hello")
            gr.Dropdown(["a", "b"], value="a")
        name.submit(lambda n, c: (f"Hello {n}", c + 1), [name, count], [greeting, count])
    demo.get_config_file()
    return demo


def test_a_lazy_session_has_every_field_of_gradios_own(page):
    # A Gradio upgrade that gives sessions a new field must fail here, not in a visitor's session.
    assert set(vars(LazySessionState(page))) - {"_page_blocks"} == set(vars(SessionState(page)))


def test_a_new_session_renders_no_component_config_until_one_is_used(page, monkeypatch):
    rendered = []
    config_class = type(page.default_config)
    real = config_class.config_for_block
    monkeypatch.setattr(config_class, "config_for_block",
                        staticmethod(lambda *args, **kwargs: rendered.append(args[0]) or real(*args, **kwargs)))

    session = LazySessionState(page)
    assert rendered == []

    textbox = next(b for b in page.blocks.values() if isinstance(b, gr.Textbox))
    session._update_value_in_config(textbox._id, "Grace")  # what an event does to its inputs
    assert rendered == [textbox._id]
    assert session.config_values[textbox._id]["props"]["value"] == "Grace"


def test_a_deep_link_still_gets_every_component_as_gradio_would_give_it(page):
    lazy, eager = LazySessionState(page), SessionState(page)
    textbox = next(b for b in page.blocks.values() if isinstance(b, gr.Textbox))
    for session in (lazy, eager):
        session._update_value_in_config(textbox._id, "Grace")

    assert sorted(lazy.components, key=lambda c: c["id"]) == sorted(eager.components, key=lambda c: c["id"])


def test_events_and_state_work_as_before_through_the_real_server(page):
    use_lazy_sessions()
    assert gradio.state_holder.SessionState is LazySessionState
    _, url, _ = page.launch(prevent_thread_lock=True, quiet=True)
    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=10) as client:
            replies = [_submit(client, "s1", "Grace") for _ in range(2)]
            assert replies[-1] == ["Hello Grace"]
            session = page.state_holder["s1"]
            count = next(b for b in page.blocks.values() if isinstance(b, gr.State))
            assert session[count._id] == 2  # gr.State kept per session across events
            assert client.get("/gradio_api/deep_link", params={"session_hash": "s1"}).status_code == 200
    finally:
        page.close()


def _submit(client: httpx.Client, session_hash: str, name: str) -> list:
    fn_index = 0
    joined = client.post("/gradio_api/queue/join", json={"data": [name, None], "fn_index": fn_index,
                                                          "session_hash": session_hash, "trigger_id": None})
    assert joined.status_code == 200, joined.text
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        for line in stream.iter_lines():
            if '"process_completed"' in line:
                return [v for v in json.loads(line[len("data: "):])["output"]["data"] if isinstance(v, str)]
    raise AssertionError("no completion")
