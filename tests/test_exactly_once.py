"""At-least-once processing, exactly-once effect: retries, crashes and races never lose or double an entry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import redis
import yaml
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from feeds.status import read_counters
from livebrief.config import Config
from livebrief.ingest import enqueue_new_items
from livebrief.keys import Keys
from livebrief.models import Entry, Item
from tests.conftest import REPO, make_config
from tests.helpers import make_item
from worker.jobs import run_batch
from worker.marks import generation, mark_args, seen_mark
from worker.runtime import Runtime, configure

KEYS = Keys("livebrief")


def stream(client: redis.Redis) -> list[Entry]:
    return [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream)]


def test_retried_batch_publishes_only_what_it_had_not(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    items = [make_item("wire", n) for n in range(20)]
    run_batch(client, runtime, items[:12])  # the first attempt got this far before dying

    plan = run_batch(client, runtime, items)  # RQ's retry re-runs the whole batch

    assert len(plan.published) == 8
    assert sorted(plan.outcomes.values()).count("seen") == 12
    entries = stream(client)
    assert len(entries) == 20
    assert len({e.id for e in entries}) == 20
    # The counters are written by the commits themselves: the retry's 12 items count again, as seen, but
    # no entry version is counted twice.
    counters = read_counters(client, KEYS)
    assert (counters.versions, counters.batches, counters.conflicts) == (20, 2, 0)
    assert counters.items == {"new_story": 20, "seen": 12}


def test_two_workers_racing_on_copies_of_one_story_make_one_story(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    rounds = 15
    barrier = threading.Barrier(2)

    def racer(feed: str) -> None:
        conn = redis.Redis.from_url(redis_url)
        for n in range(rounds):
            base = make_item("story", n)  # the same wire copy, republished by two outlets
            copy = base.model_copy(update={"id": f"{feed}-{n}", "feed": feed, "outlet": feed,
                                           "guid": f"{feed}-{n}", "url": f"https://{feed}.example/{n}"})
            barrier.wait()
            run_batch(conn, runtime, [copy])

    threads = [threading.Thread(target=racer, args=(f,)) for f in ("outlet-a", "outlet-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    entries = stream(client)
    by_story: dict[str, list[Entry]] = {}
    for entry in entries:
        by_story.setdefault(entry.id, []).append(entry)
    assert len(by_story) == rounds
    for versions in by_story.values():
        assert [e.version for e in versions] == [1, 2]
        assert sorted(s.feed for s in versions[-1].sources) == ["outlet-a", "outlet-b"]


def _lose_the_race_to(theirs: Item, runtime: Runtime, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make another worker commit ``theirs`` after this batch's first read of the index and before its
    commit; returns the list of decisions made (one entry per call of ``plan_batch``)."""
    import worker.publish as publish

    real_plan = publish.plan_batch
    calls: list[int] = []

    def plan_then_lose_the_race(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            monkeypatch.setattr(publish, "plan_batch", real_plan)
            run_batch(redis.Redis.from_url(redis_url), runtime, [theirs])
            monkeypatch.setattr(publish, "plan_batch", plan_then_lose_the_race)
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(publish, "plan_batch", plan_then_lose_the_race)
    return calls


def test_a_commit_that_lost_a_race_rereads_and_joins_the_winners_story(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic version of the race above: another worker commits a copy of the story after this
    batch read the index and before its commit. The commit must notice, re-read and join that story."""
    runtime = configure(make_config(redis_url, []))
    base = make_item("story", 1)
    mine = base.model_copy(update={"id": "a-1", "feed": "outlet-a", "outlet": "outlet-a", "guid": "a-1",
                                   "url": "https://outlet-a.example/1"})
    theirs = base.model_copy(update={"id": "b-1", "feed": "outlet-b", "outlet": "outlet-b", "guid": "b-1",
                                     "url": "https://outlet-b.example/1"})
    calls = _lose_the_race_to(theirs, runtime, redis_url, monkeypatch)

    plan = run_batch(client, runtime, [mine])

    assert len(calls) == 2  # decided twice: the first decision was made on a stale view
    assert client.exists(KEYS.commit_turn) == 0  # the script ended its turn on the conflict too
    assert plan.outcomes == {"a-1": "near_duplicate"}
    counters = read_counters(client, KEYS)
    assert (counters.conflicts, counters.batches, counters.versions) == (1, 2, 2)
    assert counters.items == {"new_story": 1, "near_duplicate": 1}
    entries = stream(client)
    assert [(e.id, e.version) for e in entries] == [(entries[0].id, 1), (entries[0].id, 2)]
    assert sorted(s.feed for s in entries[-1].sources) == ["outlet-a", "outlet-b"]


def test_a_commit_that_lost_a_race_for_a_url_drops_its_item(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two outlets' items share a canonical URL and nothing else (unrelated texts, so no story key is
    shared). The other worker publishes its item between this batch's read and its commit; the commit
    must notice the URL's mark, re-read and drop this item as an exact duplicate."""
    runtime = configure(make_config(redis_url, []))
    url = "https://shared.example/story?id=7"
    mine, theirs = make_item("outlet-a", 1, url=url), make_item("outlet-b", 2, url=url)
    calls = _lose_the_race_to(theirs, runtime, redis_url, monkeypatch)

    plan = run_batch(client, runtime, [mine])

    assert len(calls) == 2
    assert plan.outcomes == {mine.id: "exact_duplicate"}
    assert [s.feed for e in stream(client) for s in e.sources] == ["outlet-b"]


def _commit_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Spy on commit scripts: each call's form (``worker/publish.py``: "stamp" or "checked") and result."""
    import worker.publish as publish

    calls: list[tuple[str, int]] = []
    real_eval = redis.Redis.eval

    def spy(self, script, numkeys, *args):  # type: ignore[no-untyped-def]
        result = real_eval(self, script, numkeys, *args)
        if script == publish._COMMIT_LUA:
            calls.append((args[6], result))  # the form: after turn, token, stamps, index, generation
        return result

    monkeypatch.setattr(redis.Redis, "eval", spy)
    return calls


def test_a_batch_in_its_turn_commits_without_checking_what_it_read(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the turn nothing else commits, and the last commit's stamp shows it: the commit sends none of
    the values it read back to be compared. The second batch reads the first one's story, and joins it."""
    runtime = configure(make_config(redis_url, []))
    first, second = _copies(3)
    calls = _commit_calls(monkeypatch)

    run_batch(client, runtime, [first])
    plan = run_batch(client, runtime, [second])

    assert plan.outcomes == {second.id: "near_duplicate"}
    assert calls == [("stamp", 1), ("stamp", 1)]
    assert read_counters(client, KEYS).conflicts == 0


def test_a_commit_made_meanwhile_elsewhere_in_the_index_costs_a_check_not_a_new_decision(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker commits (without the turn, which this batch holds) between this batch's read and its
    commit, on keys this batch did not read. The stamp has changed, so the commit is sent again with its
    check, which finds what was read unchanged: committed as decided, no conflict, decided once."""
    runtime = configure(make_config(redis_url, []))
    mine = make_item("outlet-a", 1, title="Parliament passes the harvest budget after a long night")
    theirs = make_item("outlet-b", 2, title="Storm closes mountain passes as snow keeps falling")
    decisions = _lose_the_race_to(theirs, runtime, redis_url, monkeypatch)
    calls = _commit_calls(monkeypatch)

    plan = run_batch(client, runtime, [mine])

    assert len(decisions) == 1
    assert plan.outcomes == {mine.id: "new_story"}
    # Theirs waited for the turn in vain and committed checked; mine found the stamp changed, then checked.
    assert calls == [("checked", 1), ("stamp", -2), ("checked", 1)]
    assert read_counters(client, KEYS).conflicts == 0
    assert sorted(e.sources[0].feed for e in stream(client)) == ["outlet-a", "outlet-b"]


def _copies(n: int) -> tuple[Item, Item]:
    """Two outlets' copies of one wire story."""
    base = make_item("story", n)
    return tuple(base.model_copy(update={"id": f"{o}-{n}", "feed": o, "outlet": o, "guid": f"{o}-{n}",
                                         "url": f"https://{o}.example/{n}"}) for o in ("outlet-a", "outlet-b"))


def test_a_batch_waits_for_the_turn_of_the_one_committing_and_then_joins_its_story(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While this batch is deciding (its turn), another worker's batch with a copy of the same story waits
    for the turn instead of committing under it, then reads this batch's story and joins it: no conflict,
    no batch decided twice. Without turns it would commit first and this batch would decide again."""
    import worker.publish as publish

    runtime = configure(make_config(redis_url, []))
    mine, theirs = _copies(1)
    monkeypatch.setattr(publish, "TURN_WAIT", 30.0)
    real_plan = publish.plan_batch
    other = threading.Thread(target=run_batch, args=(redis.Redis.from_url(redis_url), runtime, [theirs]))

    def plan_while_the_other_worker_waits(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not other.is_alive() and other.ident is None:
            other.start()
            time.sleep(0.3)  # long enough for the other batch to have committed, had it not waited
            assert client.xlen(KEYS.entries_stream) == 0
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(publish, "plan_batch", plan_while_the_other_worker_waits)
    plan = run_batch(client, runtime, [mine])
    other.join(30)

    assert plan.outcomes == {mine.id: "new_story"}
    counters = read_counters(client, KEYS)
    assert (counters.conflicts, counters.batches, counters.versions) == (0, 2, 2)
    entries = stream(client)
    assert [(e.id, e.version) for e in entries] == [(entries[0].id, 1), (entries[0].id, 2)]
    assert client.exists(KEYS.commit_turn) == 0  # each commit ended its turn


def test_a_turn_ends_with_its_commit_even_one_that_failed_and_a_lapsed_turn_is_not_waited_for_long(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that died holding the turn holds up the others only ``TURN_WAIT``: they commit without a
    turn (the check by value keeps that safe) and leave its turn to lapse. A batch that fails before its
    commit ends its own turn."""
    import worker.publish as publish

    runtime = configure(make_config(redis_url, []))
    mine, theirs = _copies(2)
    client.set(KEYS.commit_turn, "a-dead-worker", px=60_000)
    monkeypatch.setattr(publish, "TURN_WAIT", 0.2)
    assert run_batch(client, runtime, [mine]).outcomes == {mine.id: "new_story"}
    assert client.get(KEYS.commit_turn) == b"a-dead-worker"

    client.delete(KEYS.commit_turn)

    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert client.exists(KEYS.commit_turn) == 1  # deciding in its turn
        raise RuntimeError("worker bug")

    monkeypatch.setattr(publish, "plan_batch", fail)
    with pytest.raises(RuntimeError, match="worker bug"):
        run_batch(client, runtime, [theirs])
    assert client.exists(KEYS.commit_turn) == 0


def _write_config(tmp_path: Path, config: Config) -> Path:
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": [],
                                    "polling": {"allow_private": True}}))
    return path


def _any_published(client: redis.Redis, config: Config, payload: list[dict[str, str]]) -> bool:
    """Whether any of these queued items has its long-term mark, which the commit writes with everything
    else of its batch. Plain reads, not a script: Redis holds EVAL (a script may write) while writes are
    paused, and the pause would run out before the read returned."""
    gen = generation(time.time(), config.worker.seen_ttl)
    marks = [seen_mark(item["id"], item["content_hash"]) for item in payload]
    args = mark_args(marks, KEYS.mark_set, (gen, gen - 1))  # per mark: its set in each generation, the mark
    reader = client.pipeline(transaction=False)
    for at in range(0, len(args), 3):
        current, previous, mark = args[at : at + 3]
        reader.sismember(str(current), mark)
        reader.sismember(str(previous), mark)
    return any(reader.execute())


@pytest.mark.parametrize("mode", [[], ["--fork"]], ids=["in-process", "forking"])
def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    tmp_path: Path, client: redis.Redis, redis_url: str, mode: list[str]
) -> None:
    config = make_config(redis_url, [{"id": "wire", "name": "Wire", "url": "http://127.0.0.1:9/feed"}])
    feed = config.feeds[0]
    total = 0
    for batch in range(12):
        items = [make_item("wire", batch * 100 + n) for n in range(100)]
        total += enqueue_new_items(client, config, feed.id, items, time.time())
    path = _write_config(tmp_path, config)
    env = {**os.environ, "REDIS_URL": redis_url, "LIVEBRIEF_CONFIG": str(path)}
    registry = StartedJobRegistry(queue=Queue(KEYS.ingest_queue, connection=client))

    worker = subprocess.Popen([sys.executable, "-m", "livebrief.cli", "work", *mode], env=env, cwd=REPO,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            # Catch a batch in progress: a started job none of whose items is published yet. Pausing Redis's
            # writes holds it there (its commit cannot run) while we look and kill.
            assert time.monotonic() < deadline, "never caught a batch in progress"
            running = registry.get_job_ids(cleanup=False)
            if client.xlen(KEYS.entries_stream) > 0 and running:
                client.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
                payload = Job.fetch(running[0], connection=client).args[0]
                if not _any_published(client, config, payload):
                    break
                client.execute_command("CLIENT", "UNPAUSE")
            time.sleep(0.002)
    finally:
        # The whole worker dies mid-batch, with its children (scheduler; work-horse in its own process
        # group); on a failed wait too, so no worker outlives the test.
        horses = psutil.Process(worker.pid).children(recursive=True)
        os.kill(worker.pid, signal.SIGKILL)
        for horse in horses:
            horse.kill()
        worker.wait(10)
        psutil.wait_procs(horses, timeout=10)
        client.execute_command("CLIENT", "UNPAUSE")
    published_before = client.xlen(KEYS.entries_stream)
    assert running[0] in registry.get_job_ids(cleanup=False), "the killed worker's job is left 'started'"

    rerun = subprocess.run([sys.executable, "-m", "livebrief.cli", "work", "--burst"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    entries = stream(client)
    assert 0 < published_before < total
    assert len(entries) == total
    assert len({e.id for e in entries}) == total
    assert all(e.version == 1 for e in entries)
