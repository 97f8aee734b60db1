"""Structured JSON logs, one object a line, carrying run and thread ids."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from chat.events import ErrorOccurred, Event, RunEnded, RunStarted, ToolEnded

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
log = logging.getLogger("glassbox.runs")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object with its `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: int = logging.INFO) -> None:
    """Send Glassbox's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("glassbox")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def log_event(event: Event) -> None:
    """Log the milestones of a run (not every token) with its ids."""
    ids = {"run_id": event.run_id, "thread_id": event.thread_id}
    if isinstance(event, RunStarted):
        log.info("run started", extra={**ids, "model": event.model, "message_chars": len(event.message)})
    elif isinstance(event, ToolEnded):
        log.info("tool finished", extra={**ids, "tool": event.tool, "seconds": round(event.duration_s, 4), "error": event.error})
    elif isinstance(event, ErrorOccurred):
        log.warning("run error", extra={**ids, "kind": event.kind, "detail": event.message})
    elif isinstance(event, RunEnded):
        log.info(
            "run ended",
            extra={**ids, "status": event.status, "ttft_s": event.ttft_s, "latency_s": round(event.latency_s, 4),
                   "output_tokens": event.output_tokens, "tool_calls": event.tool_calls},
        )
