"""Specifications of the log set-up (livebrief/log.py): JSON lines a log shipper can read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

_WRITER = """
import sys
import structlog
from livebrief.log import configure_logging
configure_logging(json=True)
log = structlog.get_logger("test")
for n in range(2000):
    log.info("record", n=n, writer=sys.argv[1])
"""


def test_processes_sharing_stderr_write_whole_json_lines() -> None:
    # `livebrief run`'s workers share its stderr, which Python leaves unbuffered when it is not a terminal:
    # a record written in two parts (text, then newline) got glued to another process's record.
    read_end, write_end = os.pipe()
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(k)], cwd=REPO, stderr=write_end)
               for k in range(3)]
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    for writer in writers:
        assert writer.wait(timeout=60) == 0
    records = [json.loads(line) for line in lines]  # raises on a glued or split line
    assert sorted((r["writer"], r["n"]) for r in records) == sorted(
        (str(k), n) for k in range(3) for n in range(2000))


_RQ_FAILURE = """
import logging
from livebrief.log import configure_logging
from rq.logutils import setup_loghandlers
configure_logging(json=True)
setup_loghandlers("WARNING")  # what an RQ worker does as it starts
try:
    raise ValueError("receiver answered HTTP 500")
except ValueError:
    logging.getLogger("rq.worker").error("Traceback (most recent call last):\\n  ...", exc_info=True)
logging.getLogger("rq.worker").info("below the level: not written")
"""


def test_rq_s_own_records_are_json_lines_too() -> None:
    # A failed job's traceback, as RQ logs it, was plain text in the middle of a JSON log (QA).
    result = subprocess.run([sys.executable, "-c", _RQ_FAILURE], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()]
    assert (record["logger"], record["level"]) == ("rq.worker", "error")
    assert "ValueError: receiver answered HTTP 500" in record["exception"]
