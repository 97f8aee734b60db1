"""Events rendered as chat messages and panel rows, from hand-built events."""

from __future__ import annotations

import json

from chat.events import (
    Cancelled,
    ErrorOccurred,
    GroundingChecked,
    NodeStarted,
    ReasoningChunk,
    RetrievalHits,
    RunEnded,
    RunQueued,
    RunStarted,
    Token,
    ToolEnded,
    ToolStarted,
)
from rag.types import Hit
from ui.panel import panel_html, panel_rows
from ui.render import TurnView, inert, transcript

IDS = {"run_id": "r1", "thread_id": "t1"}
HIT = Hit("returns.md", "abc123", 0.71, "Faulty items can be returned within 45 days.")


def run_events(end_status: str = "completed") -> list:
    return [
        RunQueued(**IDS, at=10.0, message="returns?"),
        RunStarted(**IDS, at=10.0005, model="m", message="returns?"),
        NodeStarted(**IDS, at=10.001, node="retrieve"),
        ToolStarted(**IDS, at=10.002, call_id="c1", tool="search_knowledge_base", input={"query": "returns?"}),
        RetrievalHits(**IDS, at=10.010, call_id="c1", query="returns?", hits=(HIT,)),
        ToolEnded(**IDS, at=10.011, call_id="c1", tool="search_knowledge_base", output="- Faulty…", duration_s=0.009),
        ReasoningChunk(**IDS, at=10.2, text="Look at the "),
        ReasoningChunk(**IDS, at=10.21, text="policy."),
        Token(**IDS, at=10.3, text="Within "),
        Token(**IDS, at=10.31, text="45 days."),
        RunEnded(**IDS, at=10.5, status=end_status, answer="Within 45 days.", latency_s=0.5, ttft_s=0.2,
                 output_tokens=2, tool_calls=1),
    ]


def render(events: list) -> TurnView:
    view = TurnView()
    for event in events:
        view.add(event)
    return view


def test_tool_reasoning_and_answer_become_ordered_blocks():
    messages = render(run_events()).messages()

    tool, reasoning, answer, run = messages
    assert run.content == "run `r1` · [open in Traces](?run=r1)"  # every answer links to its run
    assert tool.metadata["title"] == "🔧 search_knowledge_base"
    assert tool.metadata["status"] == "done" and tool.metadata["duration"] == 0.009
    assert "returns.md" in tool.content and "0.71" in tool.content and "abc123" in tool.content
    assert reasoning.metadata["title"] == "💭 Reasoning" and reasoning.content == "Look at the policy."
    assert reasoning.metadata["status"] == "done"
    assert answer.content == "Within 45 days." and not answer.metadata


def test_steps_are_pending_while_they_run():
    messages = render(run_events()[:4]).messages()  # up to the tool's start
    assert messages[0].metadata["status"] == "pending"


def test_failed_tool_shows_its_error():
    view = render([
        ToolStarted(**IDS, at=1, call_id="c2", tool="create_support_ticket", input={"severity": "x"}),
        ToolEnded(**IDS, at=2, call_id="c2", tool="create_support_ticket", output="", duration_s=0.1,
                  error="ValidationError: severity"),
    ])
    (tool,) = view.messages()
    assert "failed" in tool.metadata["title"] and "ValidationError: severity" in tool.content


def test_errors_and_stops_are_visible_notes_after_the_partial_answer():
    events = run_events("failed")
    events.insert(-1, ErrorOccurred(**IDS, at=10.4, kind="model", message="The model failed mid-answer: reset"))
    assert render(events).messages()[-2].content == "⚠️ **Error:** The model failed mid-answer: reset"
    assert render(events).answer == "Within 45 days."

    stopped = run_events("cancelled")
    stopped.insert(-1, Cancelled(**IDS, at=10.4, reason="stopped"))
    assert "Stopped" in render(stopped).messages()[-2].content


def test_panel_merges_streamed_text_and_times_from_run_start():
    rows = panel_rows(run_events(), "full trace")

    assert [row.kind for row in rows] == [
        "run_queued", "run_start", "node_start", "tool_start", "retrieval", "tool_end", "reasoning ×2", "token ×2", "run_end"
    ]
    assert rows[4].detail.startswith("searched the knowledge base: 1 hit, returns.md 0.71")
    assert (rows[7].kind, rows[7].detail, rows[7].raw) == ("token ×2", "Within 45 days.", "")
    assert abs(rows[-1].offset - 0.5) < 1e-9 and "TTFT 0.20 s" in rows[-1].detail
    assert json.loads(rows[4].raw)["type"] == "retrieval"  # the raw payload, one click away


def test_answer_only_level_shows_the_answer_and_the_outcome():
    kinds = [row.kind for row in panel_rows(run_events(), "answer only")]
    assert kinds == ["run_queued", "token ×2", "run_end"]


def test_panel_html_escapes_what_the_model_wrote():
    events = [RunStarted(**IDS, at=0, message="hi", model="m"), Token(**IDS, at=1, text="<script>x</script>")]
    html = panel_html(events, "full trace")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_long_answer_folds_behind_an_ellipsis_at_a_word_and_keeps_all_its_text():
    words = [Token(**IDS, at=1 + i, text=f"word{i} ") for i in range(100)]
    html = panel_html([RunStarted(**IDS, at=0, message="hi", model="m"), *words], "full trace")
    summary = html.split("<details><summary>")[1].split("…</summary>")[0]
    assert summary.startswith("word0 word1") and "word99" in html
    assert "".join(t.text for t in words).startswith(summary + " ")  # cut between words, never inside one


HTML_IMAGE = '<img src="http://127.0.0.1:9/html-img">'
MD_IMAGE = "![x](http://127.0.0.1:9/md-img?conv=refund+window+secret)"


def drawn(markdown: str) -> str:
    """Return the HTML a CommonMark renderer (raw HTML allowed, like the chat's) makes of `markdown`."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").render(markdown)


def test_inert_text_draws_no_html_and_loads_no_image():
    for payload in (HTML_IMAGE, MD_IMAGE, "!!" + MD_IMAGE, "![x][r]\n\n[r]: http://127.0.0.1:9/ref", "![](http://h/i.png)"):
        html = drawn(inert(payload))
        assert "<img" not in html, payload
    assert drawn(inert(HTML_IMAGE)).count("&lt;img") == 1  # the tag is shown as text
    assert '<a href="http://127.0.0.1:9/md-img?conv=refund+window+secret">x</a>' in drawn(inert(MD_IMAGE))
    assert "image</a>" in drawn(inert("![](http://h/i.png)"))  # an image with no alt text still has a label


def test_inert_text_keeps_ordinary_markdown():
    text = "**Within 45 days.** See [the policy](https://voltline.example/returns).\n\n- one\n- two\n\nIs 3 > 2? Yes!"
    assert inert(text) == text
    assert drawn(inert("a < b")) == "<p>a &lt; b</p>\n"


def test_untrusted_text_is_drawn_inert_in_every_chat_message():
    bad = Hit("evil.md", "c9", 0.5, f"Refunds take 5 days. {HTML_IMAGE} {MD_IMAGE}")
    events = [
        ToolStarted(**IDS, at=1, call_id="c1", tool="search_knowledge_base", input={"query": MD_IMAGE}),
        RetrievalHits(**IDS, at=2, call_id="c1", query=MD_IMAGE, hits=(bad,)),
        ToolEnded(**IDS, at=3, call_id="c1", tool="search_knowledge_base", output="", duration_s=0.1),
        ToolStarted(**IDS, at=4, call_id="c2", tool=HTML_IMAGE, input={}),
        ToolEnded(**IDS, at=5, call_id="c2", tool=HTML_IMAGE, output="", duration_s=0.1, error=MD_IMAGE),
        Token(**IDS, at=6, text=f"Sure {HTML_IMAGE}"),
        Token(**IDS, at=7, text=MD_IMAGE),
        ErrorOccurred(**IDS, at=8, kind="model", message=HTML_IMAGE),
    ]
    (user, *turn) = transcript([(f"{HTML_IMAGE} {MD_IMAGE}", "failed", events)])
    assert len(turn) == 4  # two tool steps, the answer, the error note
    for message in (user, *turn):
        title = (message.metadata or {}).get("title", "")
        for text in (message.content, title):
            assert "<img" not in drawn(text) and "<img" not in text and "![" not in text, text
    assert "Refunds take 5 days." in turn[0].content and "&lt;img" in turn[0].content  # shown, as text


def test_an_unsupported_answer_shows_the_document_once_punctuated() -> None:
    evidence = "Faulty items: Faulty items can be returned within 45 days."
    for spans, said in [(("30 days",), "“30 days”."), (("You can return it any time.",), "“You can return it any time.”")]:
        events = run_events()
        end = events[-1]
        checked = GroundingChecked(**IDS, at=10.49, verdict="unsupported", unsupported=spans, evidence=evidence)
        events[-1:] = [checked, RunEnded(**{**end.__dict__, "citations": (HIT,), "grounding": "unsupported"})]

        note = "\n".join(str(m.content) for m in render(events).messages())

        assert f"the documents don't support {said} The document says: “Faulty items can be returned" in note
