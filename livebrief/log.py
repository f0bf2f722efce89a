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
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
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
    # RQ logs through the standard library (a failed job's traceback, at WARNING and up unless debugging):
    # rendered as our own records, so a JSON log stays JSON lines. RQ adds no handler of its own when the
    # root logger has one (rq.logutils.setup_loghandlers).
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)  # one write per record, the newline included
        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, stamp,
                               structlog.processors.format_exc_info],
        ))
        root.addHandler(handler)
    root.setLevel(logging.WARNING if level_name != "DEBUG" else logging.DEBUG)
