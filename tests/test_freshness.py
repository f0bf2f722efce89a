"""Freshness figures (per-feed lag, who was first with a story) and the workers' counters, in `livebrief feeds`
and `metrics`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import yaml

from tests.conftest import REPO, make_config
from tests.helpers import make_item
from worker.jobs import run_batch
from worker.runtime import configure


def test_feeds_and_metrics_report_lag_first_with_a_story_and_what_the_workers_did(
    tmp_path: Path, client: redis.Redis, redis_url: str
) -> None:
    feeds = [{"id": "fast", "name": "Fast", "url": "https://fast.example/rss"},
             {"id": "slow", "name": "Slow", "url": "https://slow.example/rss"}]
    runtime = configure(make_config(redis_url, feeds))
    now = datetime(2022, 3, 29, 7, 0, tzinfo=UTC)
    original = make_item("fast", 1, published=now - timedelta(seconds=30))
    copy = original.model_copy(update={"id": "copy", "feed": "slow", "outlet": "Slow", "guid": "slow-1",
                                       "url": "https://slow.example/1", "published": now - timedelta(seconds=90)})
    run_batch(client, runtime, [original], now=now)
    run_batch(client, runtime, [copy], now=now)
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": feeds}))
    env = {**os.environ, "REDIS_URL": redis_url}

    status = subprocess.run([sys.executable, "-m", "livebrief.cli", "feeds", "--json", "--config", str(path)],
                            env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    metrics = subprocess.run([sys.executable, "-m", "livebrief.cli", "metrics", "--config", str(path)],
                             env=env, capture_output=True, text=True, timeout=60, cwd=REPO)

    report = json.loads(status.stdout)
    assert (report["fast"]["first_with_story"], report["slow"]["first_with_story"]) == (1, 0)
    assert report["fast"]["mean_lag_seconds"] == 30 and report["slow"]["mean_lag_seconds"] == 90
    assert 'livebrief_feed_first_total{feed="fast"} 1' in metrics.stdout
    assert 'livebrief_feed_lag_seconds{feed="slow"} 90.000' in metrics.stdout
    assert "livebrief_stream_entries 2" in metrics.stdout
    # What the workers did: two batches, two entry versions, the copy merged into the original's story.
    assert "livebrief_batches_total 2" in metrics.stdout
    assert "livebrief_entry_versions_total 2" in metrics.stdout
    assert "livebrief_commit_conflicts_total 0" in metrics.stdout
    items = [line for line in metrics.stdout.splitlines() if line.startswith("livebrief_items_total")]
    assert items == ['livebrief_items_total{outcome="near_duplicate"} 1',
                     'livebrief_items_total{outcome="new_story"} 1']
