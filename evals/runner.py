"""Run an evaluation: ask each question in its own thread, one at a time, and record the verdict.

One evaluation runs at a time in a Glassbox: it shares the model with the people chatting, and
two on these 2-core machines would only slow each other and them. An evaluation takes no actions:
a question that asks for one (a ticket) is declined at once, not left waiting for a person.
"""

from __future__ import annotations

import asyncio
import logging

from auth.callers import Caller
from chat.events import ApprovalRequired, RunEnded
from chat.service import AgentService, MessageRefused
from evals.sets import Question, SetRefused, passes
from evals.store import EvalStore

log = logging.getLogger("glassbox.evals")


class EvalBusy(RuntimeError):
    """Another evaluation is running; the message says which."""


class EvalRunner:
    """Start, stop and follow evaluations over the agent service."""

    def __init__(self, service: AgentService, store: EvalStore) -> None:
        self.service, self.store = service, store
        self._task: asyncio.Task | None = None
        self._running: str | None = None

    @property
    def running(self) -> str | None:
        """The id of the evaluation running now, or None."""
        return self._running

    async def start(self, caller: Caller, knowledge_base: str, questions: list[Question], set_name: str,
                    name: str = "", agent_graph: str | None = None) -> str:
        """Store a new evaluation and start asking its questions with `agent_graph` (default: AGENT_GRAPH);
        return its id. Two evaluations of one set, one per graph, compare the graphs.

        Raises EvalBusy, SetRefused (a question the chat would refuse) or WrongKnowledgeBase.
        """
        if self.running:
            raise EvalBusy("An evaluation is already running; wait for it to finish or stop it.")
        self.service.check_knowledge_base(knowledge_base)
        for number, question in enumerate(questions, start=1):
            try:
                self.service.check(question.question)
            except MessageRefused as refused:
                raise SetRefused(f"Question {number}: {refused}") from None
        components = self.service.components
        graph = agent_graph or self.service.agent_graph
        name = name.strip()[:80] or f"{set_name} on {knowledge_base}" + (f" ({graph} graph)" if graph != "support" else "")
        config = {**(components.config if components else {}), "agent_graph": graph}
        created = await asyncio.to_thread(self.store.create, caller, name, knowledge_base, set_name, questions, config)
        self._running = created["id"]
        self._task = asyncio.create_task(self._ask_all(created["id"], caller, knowledge_base, questions,
                                                       created["threads"], graph))
        self._task.add_done_callback(lambda _task: self._never_started(created["id"]))
        return created["id"]

    def _never_started(self, eval_id: str) -> None:
        """A task stopped before its first step runs none of its code: mark it stopped here."""
        if self._running == eval_id:
            self._running = None
            asyncio.get_running_loop().run_in_executor(None, self.store.finish, eval_id, "stopped")

    def stop(self, eval_id: str) -> bool:
        """Stop the evaluation if it is the one running; return whether it was."""
        if eval_id != self._running or self._task is None:
            return False
        self._task.cancel()
        return True

    async def aclose(self) -> None:
        """Stop what is running (the app is shutting down; a restart marks it interrupted)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _ask_all(self, eval_id: str, caller: Caller, knowledge_base: str, questions: list[Question],
                       threads: list[str], agent_graph: str) -> None:
        status = "done"
        try:
            for index, (question, thread_id) in enumerate(zip(questions, threads, strict=True)):
                end = await self._ask(question, thread_id, caller, knowledge_base, agent_graph)
                passed = end is not None and end.status == "completed" and passes(end.answer, question.expected)
                await asyncio.to_thread(self.store.record, eval_id, index, end.run_id if end else None, passed)
        except asyncio.CancelledError:
            status = "stopped"
        except Exception:  # the store or the service broke; what was answered stays
            log.exception("evaluation failed", extra={"eval_id": eval_id})
            status = "failed"
        finally:
            self._running = None  # before the status is written: once it reads done, another may start
            await asyncio.to_thread(self.store.finish, eval_id, status)

    async def _ask(self, question: Question, thread_id: str, caller: Caller, knowledge_base: str,
                   agent_graph: str) -> RunEnded | None:
        end: RunEnded | None = None
        try:
            async for event in self.service.stream(question.question, thread_id, caller, knowledge_base, agent_graph):
                if isinstance(event, ApprovalRequired):
                    self.service.approvals.decide(event.run_id, False, "evaluation",
                                                  "an evaluation asks questions; it takes no actions")
                elif isinstance(event, RunEnded):
                    end = event
        except (LookupError, RuntimeError, ValueError) as refused:  # the service refused this question
            log.warning("evaluation question refused: %s", refused)
        return end

