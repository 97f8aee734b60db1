"""Evaluation runs over HTTP: start one (admin only), follow it, stop it, compare two."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from api import openapi as doc
from auth.access import Access
from auth.callers import Caller
from chat.config import ID_PATTERN, KB_NAME_MAX, KB_NAME_PATTERN
from chat.service import NotReady, WrongKnowledgeBase
from chat.text import clean_text
from evals.results import compare_evals, with_summary
from evals.runner import EvalBusy, EvalRunner
from evals.sets import MAX_EXPECTED, MAX_QUESTION_CHARS, MAX_QUESTIONS, Question, SetRefused, read_set

if TYPE_CHECKING:
    from rag.bases import KnowledgeBases

NOT_YOURS = "No evaluation with that id is yours to see."
EVAL_ID = Path(pattern=ID_PATTERN)


Expected = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class AskedQuestion(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=r"\S", description="What to ask.")
    expected: Expected | Annotated[list[Expected], Field(min_length=1, max_length=MAX_EXPECTED)] = Field(
        description="What a right answer contains: a string, or a list of strings (any one passes).")

    def read(self) -> Question:
        """The question as an evaluation asks it."""
        expected = [self.expected] if isinstance(self.expected, str) else self.expected
        return Question(clean_text(self.question.strip()), tuple(clean_text(e.strip())[:200] for e in expected))


class NewEval(BaseModel):
    knowledge_base: str = Field(pattern=KB_NAME_PATTERN, max_length=KB_NAME_MAX,
                                description="The knowledge base to ask (GET /api/kb).")
    questions: list[AskedQuestion] | None = Field(None, min_length=1, max_length=MAX_QUESTIONS, description=(
        "The evaluation set, one object a question (a JSONL set's lines, as a list). "
        "Leave it out to use the knowledge base's own set (its eval.jsonl)."))
    name: str = Field("", max_length=80, description="What to call it; by default the set and knowledge base.")
    agent_graph: Literal["support", "team"] | None = Field(None, description=(
        "The graph that answers (default: AGENT_GRAPH). One evaluation per graph, compared, says which does better."))


def build_evals_api(runner: EvalRunner, access: Access) -> APIRouter:
    """Return /api/evals: the admin starts and stops evaluations; each caller reads its own."""
    api = APIRouter(prefix="/api", tags=["evals"])
    caller_of = Depends(access.api_caller)
    store = runner.store

    @api.post("/evals", summary="Start an evaluation: each question becomes a run (admin only)", response_model=None,
              status_code=202, responses={202: {"model": doc.EvalStarted},
                                          **doc.answers(doc.EvalStarted, 401, 403, 404, 409, 422, 503)})
    async def start(new: NewEval, caller: Caller = caller_of) -> dict[str, Any]:
        access.require_admin(caller)
        try:
            library = (await runner.service.wait_ready()).knowledge  # None: only the default, no sets of its own
        except NotReady as error:
            raise HTTPException(503, str(error)) from None
        if library is not None and not library.exists(new.knowledge_base):
            raise HTTPException(404, f"There is no knowledge base named “{new.knowledge_base}”; GET /api/kb lists them.")
        if new.questions is not None:
            questions, set_name = [q.read() for q in new.questions], "uploaded set"
        else:
            questions, set_name = await _own_set(library, new.knowledge_base), "its own set"
        try:
            eval_id = await runner.start(caller, new.knowledge_base, questions, set_name, new.name, new.agent_graph)
        except SetRefused as refused:  # a question the chat would refuse (MAX_MESSAGE_CHARS)
            raise HTTPException(422, f"{refused} Nothing was started.") from None
        except WrongKnowledgeBase as wrong:
            raise HTTPException(404, str(wrong)) from None
        except EvalBusy as busy:
            raise HTTPException(409, str(busy)) from None
        return {"id": eval_id, "questions": len(questions), "url": f"/api/evals/{eval_id}"}

    @api.get("/evals", summary="Your evaluations, newest first", response_model=None,
             responses=doc.answers(doc.EvalList, 401))
    def list_evals(caller: Caller = caller_of) -> dict[str, Any]:
        return {"evals": store.list(caller), "running": runner.running}

    @api.get("/evals/compare", summary="Two evaluations side by side", response_model=None,
             responses=doc.answers(doc.EvalComparison, 401, 404))
    def compare(a: str = Query(pattern=ID_PATTERN, description="An evaluation's id."),
                b: str = Query(pattern=ID_PATTERN, description="Another evaluation's id."),
                caller: Caller = caller_of) -> dict[str, Any]:
        first, second = store.get(caller, a), store.get(caller, b)
        if first is None or second is None:
            raise HTTPException(404, NOT_YOURS)
        return compare_evals(first, second)

    @api.get("/evals/{eval_id}", summary="An evaluation: its figures and every question's verdict",
             response_model=None, responses=doc.answers(doc.Evaluation, 401, 404))
    def get_eval(eval_id: str = EVAL_ID, caller: Caller = caller_of) -> dict[str, Any]:
        evaluation = store.get(caller, eval_id)
        if evaluation is None:
            raise HTTPException(404, NOT_YOURS)
        return with_summary(evaluation)

    @api.post("/evals/{eval_id}/stop", summary="Stop a running evaluation (admin only)", response_model=None,
              responses=doc.answers({"description": "It is stopping: the question being asked is cancelled."},
                                   401, 403, 404, 409))
    def stop(eval_id: str = EVAL_ID, caller: Caller = caller_of) -> dict[str, Any]:
        access.require_admin(caller)
        if store.get(caller, eval_id) is None:
            raise HTTPException(404, NOT_YOURS)
        if not runner.stop(eval_id):
            raise HTTPException(409, "That evaluation is not running.")
        return {"id": eval_id, "stopping": True}

    return api


async def _own_set(library: KnowledgeBases | None, name: str) -> list[Question]:
    """The knowledge base's own set (its eval.jsonl), or 404 / 409 in our words."""
    text = None if library is None else await asyncio.to_thread(library.eval_set, name)
    if text is None:
        raise HTTPException(404, f"The knowledge base “{name}” has no evaluation set of its own: "
                                 "send questions, or upload an eval.jsonl to it.")
    try:
        return read_set(text)
    except SetRefused as refused:
        raise HTTPException(409, f"The knowledge base's own set can't be used: {refused}") from None
