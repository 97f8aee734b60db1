"""The page in a real headless Chromium: a message streams, the panel fills, a chart draws."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.types import Hit
from tests.conftest import Reply

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the test tools are not installed
    sync_playwright = None

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("GLASSBOX_REQUIRE_BROWSER") == "1"  # set by .ci/run: never skip in CI
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def browser_page():
    missing = "playwright is not installed" if sync_playwright is None else None
    if not os.path.exists(CHROMIUM):
        missing = "Chromium is not installed (apt-get install chromium)"
    if missing:
        (pytest.fail if REQUIRED else pytest.skip)(missing)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        yield page
        browser.close()


def test_a_message_streams_into_the_chat_with_its_trace_and_charts(serve_glassbox, scripted_model, browser_page):
    words = "You may send it back within 45 days for a new one or your money back.".split()
    scripted_model.replies = [Reply(tokens=[w + " " for w in words], reasoning=["Check the returns policy."], delay_s=0.15)]
    url = serve_glassbox().url
    page = browser_page
    page.goto(url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)

    page.fill("#gb-input textarea", "How long can I return a faulty item?")
    page.click("#gb-send")

    # Tokens arrive one by one: part of the answer is on the page before the rest.
    page.wait_for_selector("#gb-chat :text('You may send')", timeout=15_000)
    assert "money back." not in page.inner_text("#gb-chat")
    page.wait_for_selector("#gb-chat :text('your money back.')", timeout=15_000)
    chat = page.inner_text("#gb-chat")
    assert "search_knowledge_base" in chat and "Reasoning" in chat

    panel = page.inner_text("#gb-panel")
    assert "retrieval" in panel and "returns.md" in panel and "run_end" in panel

    # The observability timer redraws the charts and counters from the new run.
    page.wait_for_selector("#gb-counters :text('Requests 1')", timeout=10_000)
    page.wait_for_function(
        # A point with no fill or stroke is invisible: it must have a shape and a colour.
        "[...document.querySelectorAll('#gb-ttft-plot svg .mark-symbol path')]"
        ".some(p => p.getAttribute('d') && (p.getAttribute('fill') || p.getAttribute('stroke')))",
        timeout=10_000,
    )
    # The lone point sits at the axes' ends; it is drawn whole, not clipped to the plot's edge.
    assert page.evaluate("getComputedStyle(document.querySelector('#gb-ttft-plot g.mark-symbol')).clipPath") == "none"

    page.check("#gb-level input[value='answer only']")
    page.wait_for_function("!document.querySelector('#gb-panel').innerText.includes('retrieval')")
    assert "token" in page.inner_text("#gb-panel")
    os.makedirs("tests/artifacts", exist_ok=True)
    page.screenshot(path="tests/artifacts/browser.png", full_page=True)


def test_two_browser_sessions_get_separate_conversations(serve_glassbox, scripted_model, browser_page):
    url = serve_glassbox(auth_mode="public").url
    first = browser_page
    second = first.context.browser.new_context().new_page()
    for page, text in ((first, "My order number is 4242."), (second, "What is my order number?")):
        page.goto(url)
        page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
        page.fill("#gb-input textarea", text)
        page.click("#gb-send")
        page.wait_for_selector("#gb-panel :text('run_end')", timeout=15_000)

    assert "4242" not in second.inner_text("#gb-chat")
    second_prompt = " ".join(m.text for m in scripted_model.prompts[-1])
    assert "What is my order number?" in second_prompt and "4242" not in second_prompt
    # The conversation list is saved in the browser just after the run ends; then a reload shows it.
    second.wait_for_selector("#gb-conversations :text('What is my order number?')", timeout=10_000)
    second.reload()  # the second visitor's own list, after a reload, holds only its own conversation
    second.wait_for_selector("#gb-conversations :text('What is my order number?')", timeout=10_000)
    assert "4242" not in second.inner_text("#gb-conversations")
    import httpx  # and a stranger on the API sees neither visitor's threads
    assert httpx.get(f"{url}/api/threads").json()["threads"] == []


def send(page, text: str) -> None:
    page.fill("#gb-input textarea", text)
    page.click("#gb-send")
    page.wait_for_selector("#gb-panel :text('run_end')", timeout=15_000)


def test_conversations_are_listed_reopened_renamed_and_survive_a_restart(serve_glassbox, scripted_model,
                                                                          browser_page):
    scripted_model.replies = [Reply(tokens=["Within ", "45 days."])]
    first = serve_glassbox()
    page = browser_page
    page.goto(first.url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    send(page, "How long can I return a faulty item?")
    page.wait_for_selector("#gb-conversations :text('How long can I return a faulty item?')", timeout=10_000)

    page.click("#gb-new")
    page.wait_for_function("!document.querySelector('#gb-chat').innerText.includes('45 days')")
    send(page, "Second question")
    page.wait_for_selector("#gb-conversations label:has-text('Second question')", timeout=10_000)

    first.server.stop()  # a restart: a new server, same address, same state dir
    second = serve_glassbox(port=first.server.port)
    page.goto(second.url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.click("#gb-conversations label:has-text('How long can I return')")
    page.wait_for_selector("#gb-chat :text('Within 45 days.')", timeout=10_000)
    assert "search_knowledge_base" in page.inner_text("#gb-chat")
    assert "run_end" in page.inner_text("#gb-panel")  # the last run's events came back too

    asked = len(scripted_model.prompts)
    send(page, "And opened headphones?")  # the reopened thread goes on
    # The panel showed the stored run's run_end already: wait for the model to get the new message.
    page.wait_for_function("document.querySelector('#gb-chat').innerText.includes('And opened headphones?')")
    for _ in range(200):
        if len(scripted_model.prompts) > asked:
            break
        page.wait_for_timeout(50)
    assert "How long can I return a faulty item?" in " ".join(m.text for m in scripted_model.prompts[-1])

    page.fill("#gb-title textarea, #gb-title input", "Returns")
    page.click("#gb-rename")
    page.wait_for_selector("#gb-conversations label:has-text('Returns ·')", timeout=10_000)
    page.click("#gb-delete")  # asks first
    page.click("#gb-delete-no")
    page.wait_for_selector("#gb-delete-confirm", state="hidden", timeout=10_000)
    assert "Returns" in page.inner_text("#gb-conversations")
    page.click("#gb-delete")
    page.click("#gb-delete-yes")
    page.wait_for_function(
        "!document.querySelector('#gb-conversations').innerText.includes('Returns')", timeout=10_000)
    assert "Second question" in page.inner_text("#gb-conversations")


def test_a_ticket_waits_for_approve_in_the_chat(serve_glassbox, scripted_model, tickets, browser_page):
    call = {"name": "create_support_ticket", "args": {"summary": "Customer wants a person", "severity": "high"}}
    scripted_model.replies = [Reply(tool_calls=[call]), Reply(tokens=["Your ticket is open."])]
    page = browser_page
    page.goto(serve_glassbox().url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.fill("#gb-input textarea", "I want to talk to a person")
    page.click("#gb-send")

    page.wait_for_selector("#gb-chat :text('Approval needed: create_support_ticket')", timeout=15_000)
    page.wait_for_selector("#gb-approve", state="visible", timeout=5_000)
    assert tickets.get("T-000001") is None
    page.click("#gb-approve")

    page.wait_for_selector("#gb-chat :text('Your ticket is open.')", timeout=15_000)
    assert tickets.get("T-000001")["severity"] == "high"
    page.wait_for_selector("#gb-approve", state="hidden", timeout=5_000)
    assert "approval_decided" in page.inner_text("#gb-panel")


@pytest.fixture
def listener():
    """A web server on a free local port that records every request it gets: an attacker's."""
    requests: list[str] = []

    class Record(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(204)
            self.end_headers()

        do_HEAD = do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], requests
    server.shutdown()
    server.server_close()


def test_images_from_the_model_a_document_or_the_user_load_nothing(serve_glassbox, scripted_model, knowledge_base,
                                                                    browser_page, listener, monkeypatch):
    port, requests = listener
    html = f'<img src="http://127.0.0.1:{port}/html-img">'
    markdown = f"![x](http://127.0.0.1:{port}/md-img?conv=refund+window+secret)"
    monkeypatch.setattr(knowledge_base, "FACTS", [Hit("evil.md", "c9", 0.9, f"Refunds take 5 days. {html} {markdown}")])
    scripted_model.replies = [Reply(tokens=["Refunds take **5 days**. ", html, " ", markdown])]
    page = browser_page
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(serve_glassbox().url)
    assert "img-src 'self' data: blob:" in response.headers["content-security-policy"]
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)

    send(page, f"How soon is my refund? {html} {markdown}")
    page.click("#gb-chat :text('search_knowledge_base')")  # open the step: the document's text is drawn
    page.wait_for_selector("#gb-chat :text('Refunds take 5 days.')", timeout=10_000)
    page.wait_for_timeout(500)  # time for any image to be fetched

    assert requests == []
    # Escaped, not just blocked: the payloads are text and links, never image elements.
    assert page.locator(f"#gb-chat img[src*='{port}'], #gb-panel img[src*='{port}']").count() == 0
    assert page.inner_text("#gb-chat").count(html) == 3  # the user's message, the document, the answer
    assert page.locator("#gb-chat a[href*='md-img']").count() == 3
    assert violations == []  # the page itself needs nothing the policy forbids


def test_a_document_uploaded_in_the_page_is_cited_with_a_grounding_badge(serve_glassbox, scripted_model,
                                                                          browser_page, tmp_path):
    """The demo path: a new knowledge base, an upload, a question about it, the source and the badge."""
    from rag.opening import open_knowledge_bases
    from tests.test_rag import BagOfWordsEmbeddings

    bases = open_knowledge_bases(tmp_path / "kb-state", BagOfWordsEmbeddings())
    bases.open("sample")
    scripted_model.replies = [Reply(tokens=["Dogs ", "cannot ", "ride ", "in ", "the ", "basket."])]
    url = serve_glassbox(knowledge=bases).url
    (tmp_path / "pets.md").write_text("# Pets\n\nDogs cannot ride in the basket of a Loop bike.\n")
    (tmp_path / "song.mp3").write_bytes(b"ID3\x00\x00")
    page = browser_page
    page.goto(url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)

    page.get_by_role("tab", name="Knowledge").click()
    page.get_by_text("New knowledge base").click()
    page.fill("#gb-kb-new-name textarea, #gb-kb-new-name input", "bikes")
    page.click("#gb-kb-create")
    page.wait_for_selector("#gb-kb-about:has-text('0 documents')", timeout=10_000)
    page.set_input_files("#gb-kb-files input[type=file]", [str(tmp_path / "pets.md"), str(tmp_path / "song.mp3")])
    page.click("#gb-kb-upload")
    page.wait_for_selector("#gb-kb-results:has-text('1 of 2 files added')", timeout=20_000)
    results = page.inner_text("#gb-kb-results")
    assert "pets.md: added: 1 chunks" in results and "song.mp3: unsupported file type '.mp3'" in results
    page.wait_for_function("document.querySelector('#gb-kb-documents').innerText.includes('pets.md')",
                           timeout=10_000)
    (tmp_path / "folder").mkdir()  # a whole folder, picked at once
    (tmp_path / "folder" / "hours.md").write_text("# Hours\n\nThe Loop bike hub opens at 7 am every day.\n")
    (tmp_path / "folder" / "prices.txt").write_text("A Loop ride costs $2 for 30 minutes.\n")
    page.set_input_files("input[webkitdirectory]", str(tmp_path / "folder"))  # the button's own input
    page.wait_for_selector("#gb-kb-results:has-text('2 of 2 files added')", timeout=20_000)
    page.wait_for_function("document.querySelector('#gb-kb-documents').innerText.includes('prices.txt')",
                           timeout=10_000)

    page.get_by_role("tab", name="Chat").click()
    page.locator("#gb-kb input").click()
    page.get_by_role("option", name="bikes").click()
    page.fill("#gb-input textarea", "Can my dog ride in the basket?")
    page.click("#gb-send")
    page.wait_for_selector("#gb-chat :text('grounded in the documents')", timeout=20_000)
    page.get_by_text("Sources (1)").click()
    page.wait_for_selector("#gb-chat :text('pets.md')", timeout=5_000)
    assert "Dogs cannot ride in the basket of a Loop bike." in page.inner_text("#gb-chat")
    os.makedirs("tests/artifacts", exist_ok=True)
    page.screenshot(path="tests/artifacts/knowledge.png", full_page=True)


def test_the_traces_tab_finds_opens_draws_and_compares_runs(serve_glassbox, scripted_model, browser_page):
    scripted_model.replies = [Reply(tokens=["Within ", "45 days."]), Reply(tokens=["Only ", "US and Canada."])]
    url = serve_glassbox().url
    page = browser_page
    page.goto(url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    for question, answer in (("How long can I return a faulty item?", "45 days."),
                             ("Do you ship to Canada?", "US and Canada.")):
        page.fill("#gb-input textarea", question)
        page.click("#gb-send")
        page.wait_for_selector(f"#gb-chat :text('{answer}')", timeout=15_000)
    page.wait_for_function("document.querySelectorAll('#gb-chat a[href*=\"?run=\"]').length == 2", timeout=10_000)
    first_run = page.locator("#gb-chat a[href*='?run=']").first.get_attribute("href").split("?run=")[1]
    page.locator("#gb-chat button[aria-label='Like']").first.click()  # 👍: a "pass" note on that answer's run
    page.wait_for_selector("text=noted on the run", timeout=10_000)

    page.get_by_role("tab", name="Traces").click()
    page.wait_for_function("document.querySelector('#gb-runs').innerText.includes('Do you ship')", timeout=10_000)
    # Every header fits its column in whole words ("latency", never "latenc" over "y").
    assert page.evaluate("[...document.querySelectorAll('#gb-runs thead span.header')]"
                         ".every(s => getComputedStyle(s).wordBreak === 'normal' && s.scrollWidth <= s.clientWidth)")
    page.locator("#gb-runs-status input").click()  # states in words, as the table shows them; filtered by value
    page.get_by_role("option", name="awaiting approval").click()
    page.click("#gb-runs-search")
    page.wait_for_function("!document.querySelector('#gb-runs').innerText.includes('Do you ship')", timeout=10_000)
    page.locator("#gb-runs-status input").click()
    page.get_by_role("option", name="completed").click()
    page.locator("#gb-runs-model input").click()  # the models of the stored runs are offered
    page.get_by_role("option", name="scripted").click()
    page.fill("#gb-runs-q textarea, #gb-runs-q input", "Canada")
    page.click("#gb-runs-search")
    page.wait_for_function("!document.querySelector('#gb-runs').innerText.includes('faulty item')", timeout=10_000)
    page.locator("#gb-runs [role=gridcell]").filter(has_text="Do you ship").first.click()
    page.wait_for_selector("#gb-waterfall svg .gb-span", timeout=10_000)
    assert page.locator("#gb-waterfall svg .gb-span").count() >= 5  # run, retrieve, tool, agent, model
    assert page.locator("#gb-waterfall svg .gb-ttft").count() == 1  # the first token, marked
    assert "Do you ship to Canada?" in page.inner_text("#gb-trace-summary")
    page.fill("#gb-note-reviewer textarea, #gb-note-reviewer input", "Ada")
    page.locator("#gb-note-label").get_by_text("fail").click()
    page.fill("#gb-note-text textarea, #gb-note-text input", "It ships to Canada only by sea.")
    page.click("#gb-note-add")
    page.wait_for_selector("#gb-notes-list :text('It ships to Canada only by sea.')", timeout=10_000)
    with page.expect_download() as downloading:  # the run as a file that travels (OTLP JSON lines)
        page.click("#gb-trace-download")
    exported = json.loads(open(downloading.value.path(), encoding="utf-8").read())
    assert exported["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == "glassbox.run"
    with page.expect_file_chooser() as choosing:  # back in: it is here already
        page.click("#gb-runs-import")
    choosing.value.set_files(downloading.value.path())
    page.wait_for_selector("text=were here already", timeout=10_000)

    page.locator("#gb-span input").click()
    page.get_by_role("option", name=re.compile("tool: search_knowledge_base")).click()
    page.wait_for_function("document.querySelector('#gb-span-detail').innerText.includes('hits')", timeout=10_000)

    page.get_by_text("Compare with another run").click()
    page.fill("#gb-compare-run textarea, #gb-compare-run input", first_run)
    page.click("#gb-compare-button")
    page.wait_for_selector("#gb-comparison :text('Timings (ms)')", timeout=10_000)
    assert "45" in page.inner_text("#gb-comparison") and "Canada" in page.inner_text("#gb-comparison")
    os.makedirs("tests/artifacts", exist_ok=True)
    page.screenshot(path="tests/artifacts/traces.png", full_page=True)

    page.goto(f"{url}/?run={first_run}")  # a chat answer's link
    page.wait_for_selector("#gb-trace-summary :text('How long can I return a faulty item?')", timeout=20_000)
    assert page.locator("#gb-waterfall svg .gb-span").count() >= 5
    page.wait_for_selector("#gb-notes-list :text('in the chat')", timeout=10_000)  # the 👍, on its run
    # Scrolled to the run, below the filters and the table, where a phone would not show it.
    page.wait_for_function("(() => { const top = document.getElementById('gb-trace-summary').getBoundingClientRect()"
                           ".top; return top >= 0 && top < innerHeight / 2; })()", timeout=5_000)

    page.get_by_text("Replay this run").click()  # no model is called: the run as it happened
    page.locator("#gb-replay-speed").get_by_text("instant").click()
    page.click("#gb-replay-button")
    page.wait_for_selector("#gb-replay-chat :text('45 days.')", timeout=10_000)
    assert "Replay" in page.inner_text("#gb-replay-chat") and "run_end" in page.inner_text("#gb-replay-panel")


def test_a_range_selected_on_a_chart_opens_its_run(serve_glassbox, scripted_model, browser_page):
    url = serve_glassbox().url
    page = browser_page
    page.goto(url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.fill("#gb-input textarea", "How long can I return a faulty item?")
    page.click("#gb-send")
    page.wait_for_function("[...document.querySelectorAll('#gb-ttft-plot svg .mark-line path, "
                           "#gb-ttft-plot svg .mark-symbol path')].some(p => p.getAttribute('d'))", timeout=20_000)
    page.locator("#gb-ttft-plot").scroll_into_view_if_needed()
    box = page.locator("#gb-ttft-plot .vega-embed").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 60, y)
    page.mouse.down()
    for step in range(20):  # a drag across the chart: Vega's interval selection
        page.mouse.move(box["x"] + 60 + step * (box["width"] - 80) / 20, y)
    page.mouse.up()
    page.wait_for_selector("#gb-trace-summary :text('How long can I return a faulty item?')", timeout=15_000)
    assert page.locator("#gb-waterfall svg .gb-span").count() >= 5


def test_a_three_question_evaluation_runs_from_the_page(serve_glassbox, scripted_model, browser_page, tmp_path):
    scripted_model.replies = [Reply(tokens=["Within 45 days."]), Reply(tokens=["It is $5.99."]),
                              Reply(tokens=["No, we don't."])]
    rows = [{"question": "How long can I return a faulty item?", "expected": ["45 days"]},
            {"question": "How much is standard shipping?", "expected": "$4.99"},
            {"question": "Do you ship to Mexico?", "expected": "no"}]
    questions = tmp_path / "three.jsonl"
    questions.write_text("\n".join(json.dumps(row) for row in rows))
    page = browser_page
    page.goto(serve_glassbox().url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.get_by_role("tab", name="Evaluations").click()
    page.get_by_label("A JSONL file").check()
    page.wait_for_selector("#gb-evals-file", state="visible", timeout=10_000)  # shown only for a file
    page.set_input_files("#gb-evals-file input[type=file]", str(questions))
    page.wait_for_selector("#gb-evals-file :text('three.jsonl')", timeout=20_000)
    page.fill("#gb-evals-name textarea, #gb-evals-name input", "three")
    page.click("#gb-evals-start")
    page.wait_for_selector("#gb-evals-figures :text('done')", timeout=30_000)  # progress, then the verdicts
    assert "3 of 3 asked, 2 passed" in page.inner_text("#gb-evals-figures")
    verdicts = page.inner_text("#gb-evals-questions")
    assert verdicts.count("pass") == 2 and verdicts.count("fail") == 1 and "It is $5.99." in verdicts
    links = page.locator("#gb-evals-questions a[href*='?run=']")
    assert len({links.nth(i).get_attribute("href") for i in range(links.count())}) == 3  # each question a run
    assert "three" in page.inner_text("#gb-evals") and "67%" in page.inner_text("#gb-evals")


def test_a_run_exported_from_one_glassbox_imports_and_replays_in_another(serve_glassbox, scripted_model,
                                                                         browser_page, tmp_path):
    import httpx

    from app import build_app, build_glassbox
    from bench.serving import BackgroundServer
    from chat.config import Settings

    scripted_model.replies = [Reply(tokens=["Within ", "45 days."], delay_s=0.05)]
    page = browser_page
    page.goto(serve_glassbox().url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.fill("#gb-input textarea", "How long can I return a faulty item?")
    page.click("#gb-send")
    page.wait_for_selector("#gb-chat a[href*='?run=']", timeout=15_000)
    run_id = page.locator("#gb-chat a[href*='?run=']").first.get_attribute("href").split("?run=")[1]
    page.goto(page.url.split("?")[0] + f"?run={run_id}")
    page.wait_for_selector("#gb-trace-summary :text('How long can I return')", timeout=20_000)
    with page.expect_download() as downloading:
        page.click("#gb-trace-download")

    elsewhere = build_glassbox(Settings(state_dir=tmp_path / "elsewhere"), lambda _s: None)
    with BackgroundServer(build_app(elsewhere)) as other:
        page.goto(other.url)
        page.get_by_role("tab", name="Traces").click()
        for expected in ("Imported 1 run", "were here already"):  # the same file twice: one copy
            with page.expect_file_chooser() as choosing:
                page.click("#gb-runs-import")
            choosing.value.set_files(downloading.value.path())
            page.wait_for_selector(f"text={expected}", timeout=10_000)
        page.wait_for_function("document.querySelector('#gb-runs').innerText.includes('(imported)')", timeout=10_000)
        page.goto(f"{other.url}/?run={run_id}")
        page.wait_for_selector("#gb-trace-summary :text('How long can I return')", timeout=20_000)
        page.get_by_text("Replay this run").click()
        page.locator("#gb-replay-speed").get_by_text("instant").click()
        page.click("#gb-replay-button")
        page.wait_for_selector("#gb-replay-chat :text('45 days.')", timeout=10_000)
        assert "run_end" in page.inner_text("#gb-replay-panel")

        page.click("#gb-replay-in-chat")  # the Chat tab: its chat, panel and charts, labelled, counted nowhere
        page.wait_for_selector("#gb-chat :text('45 days.')", timeout=10_000)
        page.wait_for_function("document.querySelector('#gb-panel').innerText.includes('run_end')", timeout=10_000)
        assert "Replay" in page.inner_text("#gb-chat")
        page.wait_for_selector("#gb-ttft-plot canvas, #gb-ttft-plot svg", timeout=10_000)
        assert "agent_requests_total 0.0" in httpx.get(f"{other.url}/metrics").text or \
            "agent_requests_total" not in httpx.get(f"{other.url}/metrics").text


def overflowing(page) -> list[str]:
    """Visible elements that reach past the viewport's right edge (a scroll container's content excepted)."""
    return page.evaluate("""() => {
      const wide = [];
      const clipped = el => { for (let p = el.parentElement; p; p = p.parentElement) {
        const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; }
        return false; };
      for (const el of document.querySelectorAll('#gb-tab-chat *')) {
        const r = el.getBoundingClientRect();
        if (r.width && r.height && r.right > window.innerWidth + 1 && !clipped(el))
          wide.push((el.id || el.className || el.tagName).toString().slice(0, 60));
      }
      return wide;
    }""")


def test_on_a_phone_everything_is_reachable_and_nothing_is_cut_off(serve_glassbox, scripted_model, browser_page):
    scripted_model.replies = [Reply(tokens=[f"word{i} " for i in range(30)], delay_s=0.1)]
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(serve_glassbox().url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.wait_for_timeout(500)
    assert not page.locator("#gb-sidebar").evaluate("e => e.classList.contains('open')")  # starts closed
    assert page.is_disabled("#gb-stop")  # nothing to stop yet
    page.fill("#gb-input textarea", "How long can I return a faulty item?")
    page.click("#gb-send")  # reachable: a click fails on a covered button
    page.wait_for_selector("#gb-chat :text('word3')", timeout=15_000)
    page.wait_for_function("!document.querySelector('#gb-stop').disabled", timeout=10_000)  # while it streams
    page.click("text=the agent's steps")
    page.wait_for_selector("#gb-panel :text('token')", timeout=10_000)
    assert page.locator("#gb-panel").is_visible()
    page.wait_for_selector("#gb-panel :text('run_end')", timeout=15_000)
    page.wait_for_function("document.querySelector('#gb-stop').disabled", timeout=10_000)  # streamed: off again
    page.wait_for_selector("#gb-targets :text('TTFT p90')", timeout=10_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert overflowing(page) == []
    os.makedirs("tests/artifacts", exist_ok=True)
    page.screenshot(path="tests/artifacts/phone.png", full_page=True)

    # The answer's run on a phone: its waterfall keeps readable labels and scrolls sideways in its box.
    run = page.locator("#gb-chat a[href*='?run=']").first.get_attribute("href").split("?run=")[1]
    page.goto(f"{page.url.split('#')[0].split('?')[0]}?run={run}")
    page.wait_for_selector("#gb-waterfall svg .gb-span", timeout=20_000)
    chart = page.locator("#gb-waterfall .html-container")
    assert chart.evaluate("e => e.scrollWidth > e.clientWidth && getComputedStyle(e).overflowX === 'auto'")
    assert page.locator("#gb-waterfall svg").evaluate("e => e.getBoundingClientRect().width") >= 720
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_honest_controls_a_busy_note_and_a_stop_before_any_answer(serve_glassbox, scripted_model, browser_page):
    scripted_model.replies = [Reply(tokens=["Within ", "45 ", "days."], delay_s=0.6),
                              Reply(tokens=["late"], delay_s=3.0)]
    page = browser_page
    page.goto(serve_glassbox().url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.fill("#gb-input textarea", "How long can I return a faulty item?")
    page.click("#gb-send")
    page.wait_for_selector("#gb-chat :text('Within')", timeout=15_000)
    page.fill("#gb-input textarea", "And opened headphones?")  # sent while the answer streams
    page.click("#gb-send")
    page.wait_for_selector("text=still streaming here", timeout=10_000)
    assert page.input_value("#gb-input textarea") == "And opened headphones?"  # nothing lost
    page.wait_for_selector("#gb-panel :text('run_end')", timeout=15_000)

    page.click("#gb-new")
    page.fill("#gb-input textarea", "Will this be slow?")
    page.click("#gb-send")
    page.wait_for_function("!document.querySelector('#gb-stop').disabled", timeout=10_000)
    page.click("#gb-stop")  # before the first token
    page.wait_for_selector("#gb-chat :text('before any answer came')", timeout=10_000)
    assert "partial" not in page.inner_text("#gb-chat")


def test_a_message_at_the_length_limit_is_answered_with_no_library_text(serve_glassbox, scripted_model,
                                                                        browser_page):
    long = ("Please tell me about returns. " * 200)[:4000]  # MAX_MESSAGE_CHARS, exactly
    scripted_model.replies = [Reply(tool_calls=[{"name": "search_knowledge_base", "args": {"query": long}}]),
                              Reply(tokens=["Within 45 days."])]
    page = browser_page
    page.goto(serve_glassbox().url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.fill("#gb-input textarea", long)
    page.click("#gb-send")
    page.wait_for_selector("#gb-panel :text('run_end')", timeout=20_000)
    shown = page.inner_text("#gb-chat") + page.inner_text("#gb-panel")
    assert "Within 45 days." in shown and "completed" in shown
    for library_text in ("pydantic", "String should have", "validation error", "LOCAL_N_CTX", "Traceback"):
        assert library_text not in shown


def test_a_team_question_shows_agents_side_by_side_handoffs_progress_and_one_answer(
        serve_glassbox, scripted_model, browser_page):
    slow = {"delay_s": 0.25}
    scripted_model.replies_for = {
        "coordinator of a support team": [Reply(tokens=["route"])],  # no route call: routed by rule
        "policy agent": [Reply(tokens=["It ", "comes ", "to ", "102 ", "dollars."], **slow)],
        "specialist agents": [Reply(tokens=["One ", "synthesised ", "answer."], **slow)],
    }
    scripted_model.replies = [Reply(tokens=["Within ", "45 ", "days ", "for ", "a ", "refund."], **slow)]
    url = serve_glassbox().url
    page = browser_page
    page.goto(url)
    page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
    page.locator("#gb-agent-graph").get_by_text("A team of agents").click()
    page.fill("#gb-input textarea", "What is a refund of $120 - 15% for a faulty item?")
    page.click("#gb-send")

    # Both specialists at work at once, with the progress bar part-way.
    page.wait_for_function("(() => { const t = document.querySelector('#gb-activity').innerText;"
                           " return t.includes('knowledge agent') && t.includes('policy agent'); })()", timeout=15_000)
    assert page.locator("#gb-activity progress[max='4']").count() == 1
    page.wait_for_selector("#gb-chat :text('One synthesised answer.')", timeout=15_000)
    page.wait_for_function("document.querySelector('#gb-activity').innerText.includes('The team is done')",
                           timeout=10_000)
    assert page.locator("#gb-activity progress[value='4'][max='4']").count() == 1
    chat = page.inner_text("#gb-chat")
    for agent in ("coordinator", "knowledge", "policy", "primary"):
        assert f"{agent} agent" in chat  # a group each
    assert chat.count("One synthesised answer.") == 1
    panel = page.inner_text("#gb-panel")
    assert "coordinator handed over to knowledge" in panel and "coordinator handed over to policy" in panel
    assert "4 of 4 agents done" in panel
    os.makedirs("tests/artifacts", exist_ok=True)
    page.screenshot(path="tests/artifacts/team.png", full_page=True)

    page.locator("#gb-agent-filter input").click()  # the panel, one agent's events only
    page.get_by_role("option", name="policy", exact=True).click()
    page.wait_for_function("!document.querySelector('#gb-panel').innerText.includes('searching the knowledge base')",
                           timeout=10_000)
    assert "policy agent began" in page.inner_text("#gb-panel")

    run = page.locator("#gb-chat a[href*='?run=']").first.get_attribute("href").split("?run=")[1]
    page.goto(f"{url}/?run={run}")
    page.wait_for_selector("#gb-waterfall svg .gb-span", timeout=20_000)
    assert page.locator("#gb-waterfall svg .gb-span[data-parallel='1']").count() == 2  # side by side
    waterfall = page.inner_text("#gb-waterfall")
    assert "agent: coordinator" in waterfall and "agent: primary" in waterfall
    assert "first token from the" in page.inner_text("#gb-trace-summary")
    page.screenshot(path="tests/artifacts/team-trace.png", full_page=True)
