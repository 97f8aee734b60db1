"""The Evaluations tab: ask a set of questions as runs, follow the verdicts, compare two evaluations.

The admin starts and stops evaluations (evals/runner.py); everyone sees their own. Every handler
checks the caller again: a hidden button is not a permission.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from auth.callers import Caller
from chat.service import WrongKnowledgeBase
from evals.results import compare_evals, summarize
from evals.runner import EvalBusy
from evals.sets import MAX_SET_BYTES, SetRefused, read_set
from ui.activity import AGENT_GRAPH_CHOICES
from ui.render import inert
from ui.run_view import table, when
from ui.visitors import caller_of

if TYPE_CHECKING:
    from app import Glassbox

CSS = """
#gb-evals-questions { font-size: 0.9em; }
"""
OWN_SET, UPLOADED = "The knowledge base's own set", "A JSONL file"
NOT_ADMIN = ("Only the admin starts evaluations: in `AUTH_MODE=local` that is you; on a Space, its owner "
             "signed in with Hugging Face. Evaluations you may see are listed here.")
LIST_HEADERS = ["Started", "Name", "Knowledge base", "Status", "Passed", "Accuracy"]
QUESTION_HEADERS = ["#", "Question", "Expected", "Answer", "Verdict", "Grounding", "TTFT", "Latency", "Run"]
FIGURE_NAMES = {"accuracy": "Accuracy", "grounding_rate": "Grounding rate", "ttft_p50_s": "TTFT p50",
                "ttft_p95_s": "TTFT p95", "latency_p50_s": "Latency p50", "latency_p95_s": "Latency p95"}


def add_evals_tab(glassbox: Glassbox, demo: gr.Blocks, tab: gr.Tab, visitor: gr.BrowserState) -> None:
    """Build the Evaluations tab and its handlers inside the page being built."""
    runner, service, access = glassbox.evals, glassbox.service, glassbox.access
    store = runner.store

    def caller(visitor: str, profile: gr.OAuthProfile | None) -> Caller:
        return caller_of(access, visitor, profile)

    def listing(who: Caller) -> tuple[list[list[Any]], list[str]]:
        evaluations = store.list(who)
        rows = [[e["created_at"].replace("T", " ")[:16], e["name"], e["knowledge_base"], e["status"],
                 f"{e['passed']}/{e['done']} of {e['total']}",
                 f"{e['passed'] / e['done']:.0%}" if e["done"] else "–"] for e in evaluations]
        return rows, [e["id"] for e in evaluations]

    def show(chosen: str | None, visitor: str, profile: gr.OAuthProfile | None = None):
        who = caller(visitor, profile)
        library = service.knowledge
        names = library.names() if library else [service.default_knowledge_base]
        rows, ids = listing(who)
        chosen = chosen if chosen in ids else (runner.running if runner.running in ids else (ids[0] if ids else None))
        return (gr.update(choices=names, value=names[0] if names else None), *picked(rows, ids, chosen),
                gr.update(visible=who.is_admin), gr.update(visible=who.is_admin), gr.update(visible=not who.is_admin),
                gr.Timer(active=runner.running is not None))

    def picked(rows: list[list[Any]], ids: list[str], chosen: str | None) -> tuple[Any, ...]:
        """The list, and every evaluation dropdown offering the same evaluations (`chosen` in the first)."""
        picks = [(f"{row[1]} · {row[0]}", eval_id) for row, eval_id in zip(rows, ids, strict=True)]
        return rows, ids, gr.update(choices=picks, value=chosen), gr.update(choices=picks), gr.update(choices=picks)

    async def start(knowledge_base: str, which: str, path: str | None, name: str, graph: str, visitor: str,
                    profile: gr.OAuthProfile | None = None):
        who = caller(visitor, profile)
        if not who.is_admin:
            gr.Warning(NOT_ADMIN)
            return (gr.skip(),) * 6
        try:
            questions, set_name = _questions(service, knowledge_base, which, path)
            eval_id = await runner.start(who, knowledge_base, questions, set_name, name, graph or None)
        except (SetRefused, EvalBusy, WrongKnowledgeBase) as refused:
            gr.Warning(str(refused))
            return (gr.skip(),) * 6
        gr.Info(f"Started: {len(questions)} questions, asked one at a time.")
        return *picked(*listing(who), eval_id), gr.Timer(active=True)

    def view(eval_id: str | None, visitor: str, profile: gr.OAuthProfile | None = None):
        evaluation = store.get(caller(visitor, profile), eval_id) if eval_id else None
        if evaluation is None:
            return "No evaluation chosen: start one above, or pick one from the list.", [], gr.update(visible=False)
        running = runner.running == eval_id
        return (_figures_markdown(evaluation, summarize(evaluation["items"])),
                [_question_row(item) for item in evaluation["items"]], gr.update(visible=running))

    def tick(chosen: str | None, visitor: str, profile: gr.OAuthProfile | None = None):
        rows, ids = listing(caller(visitor, profile))
        return (rows, ids, *view(chosen, visitor, profile), gr.Timer(active=runner.running is not None))

    def stop(eval_id: str | None, visitor: str, profile: gr.OAuthProfile | None = None) -> None:
        if not caller(visitor, profile).is_admin:
            gr.Warning(NOT_ADMIN)
        elif not (eval_id and runner.stop(eval_id)):
            gr.Warning("That evaluation is not running.")

    def compare(a: str | None, b: str | None, visitor: str, profile: gr.OAuthProfile | None = None) -> str:
        who = caller(visitor, profile)
        first, second = (store.get(who, i) if i else None for i in (a, b))
        if first is None or second is None:
            gr.Warning("Choose two evaluations to compare.")
            return ""
        return _comparison_markdown(compare_evals(first, second))

    gr.Markdown("### Evaluations\nAsk a set of questions, each as a run of its own, and see which answers contain "
                "what they should. A set is JSONL: one `{\"question\": …, \"expected\": …}` a line, where `expected` "
                "is a string or a list of strings a right answer contains.")
    not_admin = gr.Markdown(NOT_ADMIN, visible=False, elem_id="gb-evals-not-admin")
    with gr.Group(visible=False) as starter:
        with gr.Row(equal_height=True):
            knowledge = gr.Dropdown([], label="Knowledge base", elem_id="gb-evals-kb", min_width=160)
            which = gr.Radio([OWN_SET, UPLOADED], value=OWN_SET, label="Questions", elem_id="gb-evals-which",
                             min_width=260)
            graph = gr.Radio(AGENT_GRAPH_CHOICES, value=service.agent_graph, label="Who answers",
                             elem_id="gb-evals-graph", min_width=220)
            name = gr.Textbox(label="Name (optional)", max_length=80, elem_id="gb-evals-name", min_width=160)
        set_file = gr.File(file_count="single", file_types=[".jsonl"], type="filepath", visible=False,
                           label="Evaluation set (.jsonl)", elem_id="gb-evals-file", height=120)
    start_button = gr.Button("Start evaluation", variant="primary", elem_id="gb-evals-start", visible=False)
    table = gr.Dataframe(headers=LIST_HEADERS, interactive=False, elem_id="gb-evals", max_height=260, wrap=True,
                         column_widths=["150px", "30%", "20%", "100px", "130px", "90px"])
    ids = gr.State([])
    with gr.Row(equal_height=True):
        chosen = gr.Dropdown([], label="Evaluation", elem_id="gb-evals-chosen", scale=4)
        stop_button = gr.Button("Stop it", variant="stop", visible=False, elem_id="gb-evals-stop", scale=0,
                                min_width=100)
    figures = gr.Markdown(elem_id="gb-evals-figures")
    questions = gr.Dataframe(headers=QUESTION_HEADERS, interactive=False, elem_id="gb-evals-questions",
                             max_height=420, wrap=True, column_widths=["40px", "18%", "11%", "25%", "76px", "104px",
                                                                       "64px", "72px", "60px"],
                             datatype=["number", "str", "str", "str", "str", "str", "str",
                                                                  "str", "markdown"])
    with gr.Accordion("Compare two evaluations", open=False, elem_id="gb-evals-compare"):
        with gr.Row(equal_height=True):
            first = gr.Dropdown([], label="Before (a)", elem_id="gb-evals-a")
            second = gr.Dropdown([], label="After (b)", elem_id="gb-evals-b")
            compare_button = gr.Button("Compare", elem_id="gb-evals-compare-button", scale=0, min_width=110)
        comparison = gr.Markdown(elem_id="gb-evals-comparison")
    timer = gr.Timer(1.0, active=False)

    private = {"api_visibility": "private"}
    listed = [table, ids, chosen, first, second]
    shown = [knowledge, *listed, starter, start_button, not_admin, timer]
    for trigger in (demo.load, tab.select):
        trigger(show, [chosen, visitor], shown, show_progress="hidden", **private)
    which.change(lambda w: gr.update(visible=w == UPLOADED), which, set_file, **private)
    start_button.click(start, [knowledge, which, set_file, name, graph, visitor], [*listed, timer], **private)
    table.select(_picked, ids, chosen, **private)
    following = [table, ids, figures, questions, stop_button, timer]
    for trigger in (chosen.change, timer.tick):  # a fast evaluation may be done before the first tick
        trigger(tick, [chosen, visitor], following, show_progress="hidden", **private)
    stop_button.click(stop, [chosen, visitor], None, **private)
    compare_button.click(compare, [first, second, visitor], comparison, **private)


def _picked(ids: list[str], selected: gr.SelectData) -> str:
    row = selected.index[0] if isinstance(selected.index, (list, tuple)) else selected.index
    return ids[row] if isinstance(row, int) and 0 <= row < len(ids) else gr.skip()


def _questions(service: Any, knowledge_base: str, which: str, path: str | None) -> tuple[list, str]:
    """The questions to ask: the knowledge base's own set, or the uploaded file's; SetRefused in our words."""
    if which == UPLOADED:
        if not path:
            raise SetRefused("Choose a .jsonl file first.")
        file = Path(path)
        try:
            if file.stat().st_size > MAX_SET_BYTES:
                raise SetRefused(f"The set is over {MAX_SET_BYTES // 1_000_000} MB; split it into smaller sets.")
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise SetRefused("That file is not UTF-8 text; an evaluation set is JSONL.") from None
        finally:
            file.unlink(missing_ok=True)  # Gradio's copy: the questions are in the store now
        return read_set(text), "uploaded set"
    library = service.knowledge
    own = library.eval_set(knowledge_base) if library is not None and library.exists(knowledge_base) else None
    if own is None:
        raise SetRefused(f"The knowledge base “{knowledge_base}” has no evaluation set of its own: choose a JSONL "
                         "file, or upload an eval.jsonl to it in the Knowledge tab.")
    return read_set(own), "its own set"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _figure(name: str, value: float | None) -> str:
    return _share(value) if name in ("accuracy", "grounding_rate") else _seconds(value)


def _figures_markdown(evaluation: dict[str, Any], figures: dict[str, Any]) -> str:
    head = (f"**{inert(evaluation['name'])}** on `{inert(evaluation['knowledge_base'])}` "
            f"({inert(evaluation['set_name'])}) · **{evaluation['status']}** · "
            f"{figures['done']} of {figures['total']} asked, {figures['passed']} passed")
    cells = [[_figure(key, figures[key]) for key in FIGURE_NAMES]]
    return (f"{head}\n\n{table(list(FIGURE_NAMES.values()), cells)}\n\n"
            "Grounding rate: of the answers the check could judge, the share it found grounded in the documents.")


def _question_row(item: dict[str, Any]) -> list[Any]:
    verdict = "–" if item["passed"] is None else "✅ pass" if item["passed"] else "❌ fail"
    run = f"[open](?run={item['run_id']})" if item.get("run_id") else ""
    answer = (item.get("answer") or "")[:300]
    return [item["idx"] + 1, item["question"], " · ".join(item["expected"]), answer, verdict,
            item.get("grounding") or "–", _seconds(item.get("ttft_s")), _seconds(item.get("latency_s")), run]


def _comparison_markdown(compared: dict[str, Any]) -> str:
    a, b = compared["a"], compared["b"]
    mark = {True: "✅", False: "❌", None: "–"}
    parts = [f"**a:** {inert(a['name'])} ({when(a['created_at'])}) · **b:** {inert(b['name'])} ({when(b['created_at'])})",
             f"**{compared['fixed']}** questions fixed, **{compared['broken']}** broken.",
             table(["Figure", "a", "b"], [[FIGURE_NAMES[f["figure"]], _figure(f["figure"], f["a"]),
                                           _figure(f["figure"], f["b"])] for f in compared["figures"]])]
    if compared["settings"]:
        parts += ["Settings that differ:", table(["Setting", "a", "b"], [[s["key"], s["a"], s["b"]]
                                                                        for s in compared["settings"]])]
    parts.append(table(["Question", "a", "b"], [[q["question"], mark[q["a"]], mark[q["b"]]]
                                                for q in compared["questions"]]))
    return "\n\n".join(parts)
