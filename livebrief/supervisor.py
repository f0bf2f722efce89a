"""The worker processes ``livebrief run`` starts: kept running, and stopped with it.

A worker that exits is logged and started again, after a pause that doubles while it keeps exiting soon
after its start. A worker that exits that soon ``MAX_QUICK_EXITS`` times in a row is not failing by chance
(a broken topics file, a Redis that refuses it): ``run`` then stops with an error rather than poll on
while nothing is published. Before, a dead worker was neither restarted nor reported: the poller queued
on, the queues only grew, and Ctrl-C exited 0.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import structlog

from livebrief.errors import WorkerExitedError

log = structlog.get_logger(__name__)

QUICK_EXIT = 30.0  # seconds: a worker that exits sooner after its start did not get going
MAX_QUICK_EXITS = 3
RESTART_DELAY = 1.0  # seconds before the first restart; doubled after each quick exit
STOP_GRACE = 20.0  # seconds a worker has to finish its job after SIGTERM


@dataclass
class _Slot:
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None


class WorkerProcesses:
    """``livebrief work`` processes, one per argument list, with the environment given."""

    def __init__(self, commands: list[list[str]], env: dict[str, str]) -> None:
        self._slots = [_Slot(args) for args in commands]
        self._env = env

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

    async def watch(self, stop: asyncio.Event, every: float = 0.5) -> None:
        """``check`` until ``stop`` is set; on ``WorkerExitedError``, set ``stop`` and raise it."""
        while not stop.is_set():
            try:
                self.check()
            except WorkerExitedError:
                stop.set()
                raise
            try:
                await asyncio.wait_for(stop.wait(), timeout=every)
            except TimeoutError:
                pass

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
