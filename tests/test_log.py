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
