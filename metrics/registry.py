"""The Prometheus metrics of agent runs, registered on a registry the caller owns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chat.events import ErrorKind, GroundingVerdict

# Bucket edges copied from vLLM (vllm/v1/metrics/loggers.py) so that dashboards and
# recording rules written for an LLM server read these histograms the same way.
# 1.0 is an edge of the TTFT buckets and 2.0 of the latency ones, so the targets
# "p90 TTFT under 1 s" and "p95 latency under 2 s" are exact, not interpolated.
TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
INTER_TOKEN_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip

ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
GROUNDING_VERDICTS: tuple[str, ...] = get_args(GroundingVerdict)
# Where a tool name the agent does not have is counted, so a model that invents
# tool names cannot grow the number of series without bound.
UNKNOWN_TOOL = "unknown"
OTHER_AGENT = "other"  # an agent name outside the graph's fixed ones (a stored or forged event)


class AgentMetrics:
    """Hold the agent metrics, all registered on `registry`."""

    def __init__(self, registry: CollectorRegistry, tools: Iterable[str] = (), agents: Iterable[str] = ()) -> None:
        """Create the metrics on `registry`; `tools` are the agent's tool names, if known, and `agents`
        the team graph's fixed agent names: the only values of the agent_name label."""
        self.tools = frozenset(tools)
        self.agents = frozenset(agents)
        self.requests = Counter(
            "agent_requests",  # prometheus_client exposes it as agent_requests_total
            "Questions the agent started answering (one per run).",
            registry=registry,
        )
        self.errors = Counter(
            "agent_errors",
            "Runs that failed, by kind: rate_limited, auth, unavailable, model, timeout, "
            "recursion_limit, input or internal.",
            ["kind"],
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "agent_time_to_first_token_seconds",
            "Seconds from the run's start to the first word of the answer (a wait for warm-up is apart: "
            "agent_ttft_phase_seconds{phase=\"queue\"}).",
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.ttft_phases = Histogram(
            "agent_ttft_phase_seconds",
            "Where the time to first token went, by phase: queue, routing (team graph), retrieval, prompt, model, "
            "delivery.",
            ["phase"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.request_latency = Histogram(
            "agent_request_latency_seconds",
            "Seconds from a question being sent to its run ending (answered, failed or stopped).",
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=registry,
        )
        self.inter_token_latency = Histogram(
            "agent_inter_token_latency_seconds",
            "Seconds between two consecutive answer tokens of the same run.",
            buckets=INTER_TOKEN_BUCKETS,
            registry=registry,
        )
        self.tool_invocations = Counter(
            "agent_tool_invocations",
            "Tool calls the agent made, by tool name.",
            ["tool"],
            registry=registry,
        )
        self.output_tokens = Counter(
            "agent_output_tokens",
            "Answer tokens the model generated, over all runs.",
            registry=registry,
        )
        self.answers = Counter(
            "agent_answers",
            "Completed answers, by the grounding check's verdict: grounded, unsupported or no_sources.",
            ["grounding"],
            registry=registry,
        )
        self.team_agent_seconds = Histogram(
            "agent_team_agent_seconds",
            "Seconds each agent of the team graph worked on a run, by agent_name (the graph's fixed names).",
            ["agent_name"],
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=registry,
        )
        self.active_streams = Gauge(
            "agent_active_streams",
            "Runs streaming an answer right now.",
            registry=registry,
        )
        self._show_from_start()

    def _show_from_start(self) -> None:
        """Create the labelled children at 0 so /metrics lists them before any run."""
        # A series that appears only after the first error makes rate() and alerts
        # miss that first error; a zero from the start does not.
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)
        for verdict in GROUNDING_VERDICTS:
            self.answers.labels(grounding=verdict)
        for tool in self.tools:
            self.tool_invocations.labels(tool=tool)
        for agent in self.agents:
            self.team_agent_seconds.labels(agent_name=agent)

    def error_kind(self, kind: str) -> str:
        """Return `kind` if it is a known error kind, else "internal"."""
        return kind if kind in ERROR_KINDS else "internal"

    def agent_label(self, agent: str) -> str:
        """Return `agent` if it is one of the graph's agents, else "other": the label stays bounded."""
        return agent if agent in self.agents else OTHER_AGENT

    def tool_label(self, tool: str) -> str:
        """Return `tool` if the agent has it (or no tool list was given), else "unknown"."""
        if not self.tools or tool in self.tools:
            return tool
        return UNKNOWN_TOOL
