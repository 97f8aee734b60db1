"""The real app over HTTP: /ask through gradio_client, /metrics, bad input, warm-up."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest
from gradio_client import Client

from tests.conftest import Reply

QUESTION = "Can I return a faulty item?"  # asks for no value: the scripted "OK." answers it


def ask_streaming(url: str, message: str, thread_id: str) -> list[str]:
    job = Client(url, verbose=False).submit(message, thread_id, api_name="/ask")
    job.result(timeout=30)
    return job.outputs()


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not on /metrics")


def test_ask_streams_partial_answers_then_the_final_one(serve_glassbox, scripted_model):
    scripted_model.replies = [Reply(tokens=["Within ", "45 ", "days."], delay_s=0.15)]  # > a frame apart
    url = serve_glassbox().url

    outputs = ask_streaming(url, QUESTION, "thread-a")

    assert outputs[0] == "Within " and outputs[-1] == "Within 45 days."
    assert all(later.startswith(earlier.strip()) for earlier, later in zip(outputs, outputs[1:]))
    assert len(outputs) >= 3
    page = httpx.get(url)
    assert page.status_code == 200 and "Glassbox" in page.text


def test_metrics_count_the_run_in_prometheus_text(serve_glassbox):
    url = serve_glassbox().url
    ask_streaming(url, QUESTION, "thread-a")

    assert metric(url, "agent_requests_total") == 1
    assert metric(url, "agent_time_to_first_token_seconds_count") == 1
    assert metric(url, "agent_request_latency_seconds_count") == 1
    assert metric(url, 'agent_tool_invocations_total{tool="search_knowledge_base"}') == 1
    assert metric(url, "agent_active_streams") == 0
    assert metric(url, "agent_output_tokens_total") >= 1
    body = httpx.get(f"{url}/metrics")
    assert body.headers["content-type"].startswith("text/plain")
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=body.content, capture_output=True)
        assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()


def test_conversations_are_kept_apart(serve_glassbox, scripted_model):
    url = serve_glassbox().url
    ask_streaming(url, "My order number is 1234.", "alice")
    ask_streaming(url, "What is my order number?", "bob")
    ask_streaming(url, "What is my order number?", "alice")

    bob, alice = scripted_model.prompts[1], scripted_model.prompts[2]
    assert "1234" not in " ".join(m.text for m in bob)
    assert "1234" in " ".join(m.text for m in alice)


def test_bad_input_is_refused_with_a_clear_message_and_the_app_keeps_serving(serve_glassbox):
    url = serve_glassbox(max_message_chars=4000).url
    client = Client(url, verbose=False)

    with pytest.raises(Exception, match="empty"):
        client.predict("   ", "t", api_name="/ask")
    with pytest.raises(Exception, match="4,001 characters; the limit here is 4,000"):
        client.predict("x" * 4001, "t", api_name="/ask")
    assert client.predict(QUESTION, "t", api_name="/ask") == "OK."
    assert metric(url, "agent_requests_total") == 1  # refused messages never reached the agent


def test_a_model_error_mid_stream_keeps_the_partial_answer_and_counts(serve_glassbox, scripted_model):
    scripted_model.replies = [Reply(tokens=["Faulty ", "items ", "can"], fail_after=2)]
    url = serve_glassbox().url

    job = Client(url, verbose=False).submit(QUESTION, "t", api_name="/ask")

    with pytest.raises(Exception, match="The model failed mid-answer; the partial answer is kept"):
        job.result(timeout=30)  # the call ends with an error status...
    assert job.outputs()[-1] == "Faulty items"  # ...after streaming the partial answer
    assert metric(url, 'agent_errors_total{kind="model"}') == 1
    assert ask_streaming(url, QUESTION, "t")[-1] == "OK."


def test_a_message_sent_while_warming_up_waits_instead_of_failing(serve_glassbox):
    import threading

    warm = threading.Event()  # warm-up waits for it: the server may take a while to start on a busy machine
    running = serve_glassbox(gate=warm)
    glassbox, url = running.glassbox, running.url
    assert glassbox.service.status == "warming up"
    threading.Timer(1.5, warm.set).start()  # the message below is sent before warm-up ends

    assert ask_streaming(url, QUESTION, "t")[-1] == "OK."
    assert glassbox.service.status == "ready"


def test_the_warm_heap_is_frozen_once_warm_up_ends():
    import gc
    import threading
    import time

    from app import freeze_the_heap_once_warm

    warm_up = threading.Thread(target=time.sleep, args=(0.2,))
    warm_up.start()
    try:
        freeze_the_heap_once_warm(warm_up)
        assert gc.get_freeze_count() == 0  # not while warm-up still loads
        deadline = time.monotonic() + 10
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # the rest of the suite collects as usual
