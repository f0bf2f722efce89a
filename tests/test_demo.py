"""The README's first command: `livebrief demo` shows the whole pipeline offline, with a private Redis."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from tests.conftest import REPO


def test_demo_shows_new_merged_corrected_and_withdrawn_entries_and_verified_webhooks() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LIVEBRIEF_CONFIG")}
    result = subprocess.run([sys.executable, "-m", "livebrief.cli", "demo", "--pause", "0"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=REPO)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[NEW] [strikes,humanitarian] Shelling hits residential district in Kharkiv" in out
    assert "sources: Demo Wire, Demo Daily" in out or "sources: Demo Daily, Demo Wire" in out  # merged copy
    assert "[UPDATE v2] [strikes] Missile strike cuts power to 40,000 homes near Zaporizhzhia" in out  # correction
    assert "[WITHDRAWN v2]" in out  # a killed wire story
    assert "signature INVALID" not in out and out.count("signature verified") >= 10
    assert "unchanged (304) 3" in out
    assert "Traceback" not in result.stderr


def test_the_demo_twice_on_the_users_redis_shows_everything_both_times_and_leaves_nothing(
    client: redis.Redis, redis_url: str
) -> None:
    # With one prefix, the second run found every item already published and showed nothing.
    client.set("mine", "kept")
    env = {**{k: v for k, v in os.environ.items() if k != "LIVEBRIEF_CONFIG"}, "REDIS_URL": redis_url}
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "livebrief.cli", "demo", "--pause", "0"], env=env,
                                capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 0, result.stderr
        assert "[WITHDRAWN v2]" in result.stdout and result.stdout.count("signature verified") >= 10
    left = {k.decode() for k in client.keys("*")}
    assert "mine" in left and not [k for k in left if "livebrief-demo" in k and not k.startswith("rq:job:")]
    assert not [m for m in client.smembers("rq:queues") if b"livebrief-demo" in m]
