"""The worker processes ``livebrief run`` starts: kept running, and stopped with it.

A worker that exits is logged and started again, after a pause that doubles while it keeps exiting soon
after its start. A worker that exits that soon ``MAX_QUICK_EXITS`` times in a row is not failing by chance
(a topics file broken since ``run`` checked it): ``run`` then stops with an error rather than poll on
while nothing is published. Before, a dead worker was neither restarted nor reported: the poller
queued on, the queues only grew, and Ctrl-C exited 0.

A quick exit while Redis does not answer (down, or refusing the credentials) is not counted: a worker
started during an outage exits at once (it never reached Redis, so it does not wait for it), and counted,
three of them stopped ``run`` 7 s into an outage that the rest of it rides out. Such a worker is started
again every ``REDIS_DOWN_RESTART`` until Redis answers.

The watch runs on a thread of its own: the poller's Redis calls run on the event loop, and while Redis is
down each may wait out its retries (~33 s), during which a watch on the loop noticed no dead worker.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from livebrief.errors import WorkerExitedError

log = structlog.get_logger(__name__)

QUICK_EXIT = 30.0  # seconds: a worker that exits sooner after its start did not get going
MAX_QUICK_EXITS = 3
RESTART_DELAY = 1.0  # seconds before the first restart; doubled after each quick exit
STOP_GRACE = 20.0  # seconds a worker has to finish its job after SIGTERM
REDIS_DOWN_RESTART = 5.0  # seconds between starts of a worker while Redis does not answer


@dataclass
class _Slot:
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None


class WorkerProcesses:
    """``livebrief work`` processes, one per argument list, with the environment given."""

    def __init__(self, commands: list[list[str]], env: dict[str, str],
                 redis_answers: Callable[[], bool] = lambda: True) -> None:
        self._slots = [_Slot(args) for args in commands]
        self._env = env
        self._redis_answers = redis_answers

    def __len__(self) -> int:
        return len(self._slots)

    def start(self) -> None:
        for slot in self._slots:
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        slot.proc = subprocess.Popen([sys.executable, "-m", "livebrief.cli", "work", *slot.args], env=self._env)
        slot.started, slot.restart_at = time.monotonic(), None

    def check(self) -> None:
        """Restart the workers that exited and are due; ``WorkerExitedError`` when one keeps exiting at once."""
        now = time.monotonic()
        for slot in self._slots:
            if slot.proc is not None and slot.restart_at is None:
                code = slot.proc.poll()
                if code is None:
                    continue
                lived = now - slot.started
                if lived < QUICK_EXIT and not self._redis_answers():
                    log.warning("worker_exited_redis_down", args=" ".join(slot.args), exit_code=code,
                                lived_s=round(lived, 1), restart_in_s=REDIS_DOWN_RESTART)
                    slot.restart_at = now + REDIS_DOWN_RESTART
                    continue
                slot.quick_exits = slot.quick_exits + 1 if lived < QUICK_EXIT else 0
                if slot.quick_exits >= MAX_QUICK_EXITS:
                    raise WorkerExitedError(" ".join(["livebrief work", *slot.args]), code, slot.quick_exits)
                delay = RESTART_DELAY * 2 ** max(0, slot.quick_exits - 1) if slot.quick_exits else 0.0
                log.error("worker_exited", args=" ".join(slot.args), exit_code=code, lived_s=round(lived, 1),
                          restart_in_s=delay)
                slot.restart_at = now + delay
            if slot.restart_at is not None and now >= slot.restart_at:
                self._start(slot)
                log.info("worker_restarted", args=" ".join(slot.args), pid=slot.proc.pid if slot.proc else None)

    def watch(self, stop: threading.Event, on_error: Callable[[WorkerExitedError], None],
              every: float = 0.5) -> None:
        """``check`` every ``every`` s until ``stop`` is set (run it on a thread of its own: module
        docstring); on ``WorkerExitedError``, pass it to ``on_error`` and return."""
        while not stop.wait(every):
            try:
                self.check()
            except WorkerExitedError as exc:
                on_error(exc)
                return

    def stop(self) -> None:
        """SIGTERM to every worker (each finishes its job: RQ's warm shutdown), SIGKILL after ``STOP_GRACE``."""
        running = [slot.proc for slot in self._slots if slot.proc is not None and slot.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
