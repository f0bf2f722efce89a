"""structlog set-up: readable in a terminal, JSON lines when not (or when asked)."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    """Configure structlog once per process. ``LIVEBRIEF_LOG_LEVEL`` and ``LIVEBRIEF_LOG_JSON`` override."""
    level_name = (level or os.environ.get("LIVEBRIEF_LOG_LEVEL") or "INFO").upper()
    if json is None:
        env = os.environ.get("LIVEBRIEF_LOG_JSON")
        json = env not in (None, "", "0", "false") if env is not None else not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level_name, logging.INFO)
        ),
        # One write per record, the newline included: stderr is unbuffered when it is not a terminal, so
        # print()'s two writes let the workers of `run`, which share it, glue their records together (QA).
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # RQ logs through the standard library; keep its chatter at WARNING unless debugging.
    logging.basicConfig(level=logging.WARNING if level_name != "DEBUG" else logging.DEBUG)
