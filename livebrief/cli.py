"""The ``livebrief`` command line: run, poll, work, tail, classify, demo, feeds, webhooks, eval-topics, schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import redis
import structlog

from livebrief.config import Config, load_config
from livebrief.errors import (
    BadLineError,
    LivebriefError,
    RedisUnavailableError,
    UsageError,
    WorkerExitedError,
    without_password,
)
from livebrief.exporter import MetricsExporter, parse_listen
from livebrief.keys import Keys
from livebrief.log import configure_logging
from livebrief.redis_client import connect, retry_options, stop_waiting_for_redis
from livebrief.redis_server import answers, redis_url_for, running_url

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = structlog.get_logger("livebrief")


@contextlib.contextmanager
def _redis(config: Config, *, embed: bool, patient: bool = False) -> Iterator[tuple[str, redis.Redis]]:
    """The configured Redis (``REDIS_URL`` is already folded into the config), else the private one a
    ``livebrief run`` keeps, else localhost:6379; with ``embed``, that private one is started when none of
    them answers (``livebrief/redis_server.py``). Commands retry a lost connection with backoff for ~33 s,
    so a Redis restart is ridden out; ``patient`` (``tail``) never stops retrying. The services do not wait
    without end: each of them carries on after a failed command anyway (the poller's next round, RQ's
    worker loop, the watchdog standing in for RQ's scheduler: ``livebrief/workers.py``). SIGTERM ends a
    wait under way (``_stop_waiting_for_redis``)."""
    where = redis_url_for(config.redis_url) if embed else contextlib.nullcontext(running_url(config.redis_url))
    with where as url:
        client = connect(url, **retry_options(forever=patient))
        try:
            yield url, client
        except (redis.ConnectionError, redis.TimeoutError) as exc:  # out of retries, refused credentials, or
            # no reply (a frozen Redis, at a SIGTERM): say so, no traceback
            raise RedisUnavailableError(f"Redis at {without_password(url)} cannot be used: {exc}") from exc
        except redis.exceptions.InvalidResponse as exc:  # something else listens there (an HTTP server, say)
            raise RedisUnavailableError(f"Redis at {without_password(url)} cannot be used: it does not answer "
                                        f"as Redis does ({exc})") from exc
        except redis.ResponseError as exc:
            if "DB index is out of range" not in str(exc):
                raise
            raise RedisUnavailableError(f"Redis at {without_password(url)} cannot be used: {exc} (the number after "
                                        "the URL's last / is a database the server does not have: it has "
                                        "`databases` of them, 16 by default, numbered from 0)") from exc
        finally:
            client.close()


def _stop_waiting_for_redis(signum: int, frame: FrameType | None) -> None:
    stop_waiting_for_redis()


def _until_signalled(body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``body(stop)`` on an event loop until SIGINT or SIGTERM sets ``stop``."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
            # The loop runs ``stop.set`` between callbacks only, so a call waiting out a lost Redis (~33 s)
            # would hold up the stop: the signal ends those waits at once, in whatever thread. asyncio learns
            # of the signal from its wakeup fd, which Python writes whatever the handler.
            signal.signal(sig, _stop_waiting_for_redis)
        await body(stop)

    asyncio.run(main())


def _serve_until_signalled(stop_serving: Callable[[], None]) -> None:
    """Wait for SIGINT or SIGTERM while a server started on its own thread serves, then ``stop_serving()``."""

    async def wait(stop: asyncio.Event) -> None:
        await stop.wait()

    try:
        _until_signalled(wait)
    finally:
        stop_serving()


# --- run -------------------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from worker.runtime import configure

    config = load_config(args.config)
    # The workers load the topics and check the webhooks against them when they start: a broken topics file
    # or a webhook naming no topic is reported here, before anything is polled or started.
    runtime = configure(config)
    if args.metrics_listen:
        parse_listen(args.metrics_listen)  # a bad address is reported before anything starts
    with _redis(config, embed=True) as (url, client):
        if args.once:
            return _run_once(runtime, client)
        return _run_forever(config, url, client, args)


def _run_once(runtime: Runtime, client: redis.Redis) -> int:
    from feeds.poller import Poller
    from livebrief.workers import pending_jobs, run_worker

    config = runtime.config
    poller = Poller(config, client)
    try:
        report = asyncio.run(poller.poll_once(force=True))
    finally:
        poller.close()
    log.info("poll_done", fetched=report.fetched, not_modified=report.not_modified, failed=report.failed,
             new_items=report.new_items)
    run_worker(config, client, burst=True, simple=True, runtime=runtime)  # topics loaded once, by cmd_run
    left = pending_jobs(client, Keys(config.prefix))
    log.info("run_once_done", queued_left=left)
    return 0


def _run_forever(config: Config, url: str, client: redis.Redis, args: argparse.Namespace) -> int:
    from feeds.poller import Poller
    from livebrief.supervisor import WorkerProcesses

    env = {**os.environ, "REDIS_URL": url}
    if config.source_path:
        env["LIVEBRIEF_CONFIG"] = config.source_path
    # Deliveries get workers of their own, so a slow webhook receiver never holds up the pipeline.
    # With several webhooks, two: a slow receiver holds one delivery worker at most (its lane, worker/lanes.py),
    # and the other's entries do not wait for its POST under way (bench_slow_receiver.py: 1.9 s at the median
    # beside a receiver answering in 2 s, with one worker; 8-12 ms with two).
    delivery_workers = (args.delivery_workers if args.delivery_workers is not None
                        else 2 if len(config.webhooks) > 1 else 1)
    workers = WorkerProcesses([["--queues", "ingest"]] * args.workers
                              + [["--queues", "deliveries"]] * delivery_workers, env, lambda: answers(url))
    poller = Poller(config, client)
    exporter = receiver = None
    try:
        # What can fail to start (a port taken) starts first, and whatever started is stopped below.
        exporter = _start_exporter(config, args.metrics_listen, url) if args.metrics_listen else None
        if config.push.enabled:
            from feeds.push import PushReceiver

            receiver = PushReceiver(config, client).start()
        workers.start()
        log.info("running", feeds=len(poller.feeds), workers=len(workers), redis=url)

        async def body(stop: asyncio.Event) -> None:
            loop = asyncio.get_running_loop()
            failed: list[WorkerExitedError] = []

            def worker_failed(exc: WorkerExitedError) -> None:
                failed.append(exc)
                loop.call_soon_threadsafe(stop.set)

            watching = threading.Event()
            watcher = threading.Thread(target=workers.watch, args=(watching, worker_failed), daemon=True,
                                       name="livebrief-supervisor")
            watcher.start()
            try:
                await poller.run_forever(stop)
            finally:
                watching.set()
                watcher.join()
            if failed:
                raise failed[0]  # why the poller stopped

        _until_signalled(body)
    finally:
        poller.close()
        if receiver is not None:
            receiver.stop()
        if exporter is not None:
            exporter.stop()
        workers.stop()
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from feeds.poller import Poller

    config = load_config(args.config)
    with _redis(config, embed=False) as (_, client):
        poller = Poller(config, client)
        try:
            if args.once:
                if not poller.feeds:
                    log.warning("no_feeds", config=config.source_path, hint="add feeds: or opml: to the config")
                report = asyncio.run(poller.poll_once(force=True))
                log.info("poll_done", fetched=report.fetched, not_modified=report.not_modified,
                         failed=report.failed, new_items=report.new_items, held=report.held)
                return 0
            _until_signalled(poller.run_forever)
        finally:
            poller.close()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from feeds.push import PushReceiver

    config = load_config(args.config)
    with _redis(config, embed=False) as (_, client):
        _serve_until_signalled(PushReceiver(config, client, listen=args.listen).start().stop)
    return 0


def cmd_work(args: argparse.Namespace) -> int:
    from livebrief.workers import QUEUE_ROLES, run_worker

    config = load_config(args.config)
    with _redis(config, embed=False) as (_, client):
        roles = tuple(r.strip() for r in args.queues.split(",") if r.strip())
        unknown = set(roles) - set(QUEUE_ROLES)
        if unknown or not roles:
            print(f"livebrief work: --queues takes {', '.join(QUEUE_ROLES)}, not {args.queues!r}", file=sys.stderr)
            return 2
        run_worker(config, client, burst=args.burst, simple=not args.fork, roles=roles)
    return 0


# --- consumers ---------------------------------------------------------------------------------------------

def cmd_tail(args: argparse.Namespace) -> int:
    from livebrief.tail import check_since, check_topic, entry_json, format_entry, read_stream

    since = check_since(args.since) if args.since is not None else None
    config = load_config(args.config)
    if args.topic is not None:
        check_topic(args.topic, config.topics_path)
    keys = Keys(config.prefix)
    with _redis(config, embed=False, patient=not args.no_follow) as (_, client):
        try:
            entries = read_stream(client, keys, since or "$", args.topic, follow=not args.no_follow)
            # Each with its stream id, the point to go on from (--since) after a stop.
            for message_id, entry in entries:
                text = entry_json(entry, message_id) if args.json else f"{message_id}  {format_entry(entry)}"
                print(text, flush=True)
        except KeyboardInterrupt:
            pass
    return 0


def _topics_path(config_file: str | None) -> Path:
    """The topics file the workers classify with under the configuration ``--config`` (else
    ``$LIVEBRIEF_CONFIG``, else the default) names: what ``classify`` and ``eval-topics`` read."""
    return load_config(config_file).topics_path


def cmd_classify(args: argparse.Namespace) -> int:
    from livebrief.jsonlines import numbered_lines, optional_string, parse_object
    from worker.classify import classify, load_topics

    topics = load_topics(_topics_path(args.config))
    status = 0
    # Bytes, decoded line by line: a line that is not UTF-8 is one bad line, whatever the locale says.
    for number, raw in numbered_lines(sys.stdin.buffer):
        try:
            record = parse_object(raw)
            if "title" not in record:
                raise BadLineError("expected an object with 'title' (and optional 'id', 'text')")
            title, text = optional_string(record, "title"), optional_string(record, "text")
        except BadLineError as exc:
            print(f"livebrief classify: line {number}: {exc}", file=sys.stderr, flush=True)
            status = 1
            continue
        result = classify(title, text, topics)
        out = {"id": record.get("id"), "topics": result.topics, "scores": result.scores,
               "evidence": result.evidence}
        _write_json_line(out)
    return status


def _write_json_line(value: dict[str, Any]) -> None:
    """``value`` as one UTF-8 JSON line on stdout, whatever the locale's encoding."""
    try:
        line = json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a "\ud800" escape in the input) has no UTF-8: escape it again
        line = json.dumps(value).encode("ascii")
    sys.stdout.flush()
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.buffer.flush()


def cmd_feeds(args: argparse.Namespace) -> int:
    from feeds.status import feed_statuses

    config = load_config(args.config)
    if args.opml:
        from livebrief.opml import write_opml

        print(write_opml([(f.name, f.url) for f in config.feeds if f.enabled], "livebrief feeds"), end="")
        return 0
    with _redis(config, embed=False) as (_, client):
        statuses = feed_statuses(client, config)
    now = time.time()

    def ago(ts: float | None) -> str:
        if ts is None:
            return "never"
        delta = now - ts
        return f"{_span(delta)} ago" if delta >= 0 else f"in {_span(-delta)}"

    if args.json:
        print(json.dumps({s.feed: {**s.state.model_dump(), "health": s.health, "entries": s.entries,
                                   "first_with_story": s.first, "mean_lag_seconds": s.mean_lag, "push": s.push}
                          for s in statuses}, indent=2))
        return 0
    print(f"{'feed':<22} {'health':<8} {'last success':<13} {'fails':>5} {'next attempt':<13} {'entries':>7} "
          f"{'first':>5} {'lag':>7}  last error, or what the last fetch repaired")
    for s in statuses:
        st = s.state
        lag = _span(s.mean_lag) if s.mean_lag is not None else "-"
        notes = [f"{st.last_error_kind}: {st.last_error}"] if st.failures else []
        if st.failures and st.retry_after_until is not None and st.retry_after_until > now:
            asked = st.retry_after_until - (st.last_attempt or now)  # both set by the same fetch
            notes.append(f"the server asked not to be called for {_span(asked)} (Retry-After)")
        if st.repaired and not st.failures:
            notes.append(f"repaired: {st.repaired}")
        if st.moved_to:  # a permanent redirect: the config could name the new URL
            notes.insert(0, f"moved to {st.moved_to} (301/308)")
        print(f"{s.feed:<22} {s.health:<8} {ago(st.last_success):<13} {st.failures:>5} {ago(st.next_attempt):<13} "
              f"{s.entries:>7} {s.first:>5} {lag:>7}  {'; '.join(notes)}")
    return 0


def _span(seconds: float) -> str:
    """A duration as one reads it in a table: 45s, 12m, 6.1h, 3650d."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.0f}d"


def cmd_metrics(args: argparse.Namespace) -> int:
    from feeds.status import metrics_text

    config = load_config(args.config)
    if args.listen:
        _serve_until_signalled(_start_exporter(config, args.listen).stop)
        return 0
    with _redis(config, embed=False) as (_, client):
        print(metrics_text(client, config), end="")
    return 0


def _start_exporter(config: Config, listen: str, url: str | None = None) -> MetricsExporter:
    """Serve ``/metrics`` on ``listen`` from a thread, with a client of its own that gives up within seconds:
    Prometheus abandons a scrape after 10 s, so the minute of retries the workers ride a restart out with
    would only make a down Redis look like a slow exporter."""
    from feeds.status import metrics_text

    address = parse_listen(listen)
    client = connect(url or running_url(config.redis_url), socket_connect_timeout=2, socket_timeout=5)
    return MetricsExporter(lambda: metrics_text(client, config), address).start()


def cmd_webhooks(args: argparse.Namespace) -> int:
    from feeds.status import read_counters
    from worker import deadletters
    from worker.notify import replay_dead_letters

    config = load_config(args.config)
    keys = Keys(config.prefix)
    with _redis(config, embed=False) as (_, client):
        if args.action == "replay":
            if args.webhook is not None:
                _check_webhook(config, args.webhook, client, keys)
            count = replay_dead_letters(client, keys, config.webhooks, args.webhook,
                                        config.worker.finished_job_ttl)
            print(f"re-queued {count} dead-lettered deliveries")
        elif args.action == "clear":  # a webhook no longer configured too: its letters can only go
            deleted = deadletters.clear(client, keys, args.webhook)
            if not deleted and args.webhook is not None:  # none, perhaps because of a typo
                _check_webhook(config, args.webhook, client, keys)
            print(f"deleted {deleted} dead-lettered deliveries")
        else:
            waiting = deadletters.counts(client, keys)
            dropped = read_counters(client, keys).dead_letters_dropped
            with client.pipeline(transaction=False) as pipe:  # one round trip for every webhook
                for webhook in config.webhooks:
                    pipe.get(keys.webhook_hold(webhook.id))
                    # Jobs in its lanes (running, or leased by a worker that died) and parked behind them.
                    pipe.zcount(keys.webhook_lanes(webhook.id), time.time() * 1000, "+inf")
                    pipe.zcard(keys.webhook_parked(webhook.id))
                replies = pipe.execute()
            for index, webhook in enumerate(config.webhooks):
                held, running, parked = replies[3 * index:3 * index + 3]
                wait = (f" waiting-until={datetime.fromtimestamp(float(held), UTC).isoformat(timespec='seconds')}"
                        if held is not None else "")  # the receiver asked to be called later (429/503)
                print(f"{webhook.id:<24} {webhook.format:<9} topics={','.join(webhook.topics) or 'all':<30} "
                      f"dead-lettered={waiting[webhook.id]}{_dropped(dropped, webhook.id)} "
                      f"running={running}/{webhook.concurrency} parked={parked}{wait}")
            configured = {w.id for w in config.webhooks}
            if not configured and not waiting:
                print(f"no webhooks configured (webhooks: in {args.config or 'the config'}) and no dead letters")
            for webhook_id in sorted(set(waiting) - configured):  # what `clear --webhook` can still delete
                print(f"{webhook_id:<24} {'(not configured)':<50} "
                      f"dead-lettered={waiting[webhook_id]}{_dropped(dropped, webhook_id)}")
    return 0


def _dropped(dropped: dict[str, int], webhook_id: str) -> str:
    """Older dead letters dropped past ``worker.dead_letters_max``: gone for good, so said."""
    return f" dead-letters-dropped={dropped[webhook_id]}" if webhook_id in dropped else ""


def _check_webhook(config: Config, webhook_id: str, client: redis.Redis, keys: Keys) -> None:
    """Raise ``UsageError`` unless ``webhook_id`` is a configured webhook: dead letters of one that is not
    cannot be re-sent (its URL and secret are gone), and a typo would otherwise find 0 letters and succeed."""
    from worker import deadletters

    if any(w.id == webhook_id for w in config.webhooks):
        return
    dead = deadletters.counts(client, keys)[webhook_id]
    known = ", ".join(w.id for w in config.webhooks) or "none"
    held = f"; its {dead} dead-lettered deliveries wait until it is configured again" if dead else ""
    raise UsageError(f"no webhook {webhook_id!r} in {config.source_path} (configured: {known}){held}")


def cmd_schema(args: argparse.Namespace) -> int:
    from livebrief.models import Entry

    print(json.dumps(Entry.model_json_schema(), indent=2))
    return 0


def cmd_eval_topics(args: argparse.Namespace) -> int:
    from worker import evaluate_topics

    argv = list(args.file)
    if args.panel:
        argv += ["--panel", "--min-others", str(args.min_others)]
    if args.topics:
        argv += ["--topics", args.topics]
    elif not args.agreement:  # two annotators' labels are compared without the classifier
        argv += ["--topics", str(_topics_path(args.config))]
    if args.corpus:
        argv += ["--corpus", args.corpus]
    if args.agreement:
        argv += ["--agreement", args.agreement]
    if args.score:
        argv += ["--score", args.score]
    return int(evaluate_topics.main(argv))


def cmd_demo(args: argparse.Namespace) -> int:
    from livebrief.demo import run_demo

    # The demo's own output is the show; keep the logs to warnings unless asked.
    configure_logging(args.log_level or "WARNING")
    return run_demo(rounds=args.rounds, pause=args.pause)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livebrief", description=__doc__)
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", help="config file (default $LIVEBRIEF_CONFIG or config/livebrief.yaml)")
        return p

    p = add("run", "poll and process together (embedded Redis when none is configured or reachable)")
    p.add_argument("--once", action="store_true", help="poll every feed once, drain the queues, exit")
    p.add_argument("--workers", type=int, default=2, help="ingest worker processes (default 2)")
    p.add_argument("--delivery-workers", type=int, default=None,
                   help="webhook delivery worker processes (default 2 with several webhooks, else 1)")
    p.add_argument("--metrics-listen", metavar="[HOST:]PORT",
                   help="also serve `livebrief metrics` at http://HOST:PORT/metrics (see `metrics --listen`)")
    p.set_defaults(func=cmd_run)
    p = add("poll", "run a poller (several may share one Redis)")
    p.add_argument("--once", action="store_true")
    p.set_defaults(func=cmd_poll)
    p = add("serve", "run the push receiver (WebSub callbacks, signed direct pushes)")
    p.add_argument("--listen", help="host:port (default push.listen)")
    p.set_defaults(func=cmd_serve)
    p = add("work", "run an RQ worker on the ingest and delivery queues")
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    p.add_argument("--simple", action="store_true", help="run jobs in the worker process (the default)")
    p.add_argument("--queues", default="ingest,deliveries",
                   help="which queues, in order of priority (default ingest,deliveries)")
    p.add_argument("--fork", action="store_true",
                   help="fork a work-horse per job (RQ's Worker): more isolation, about 130 ms more per job")
    p.set_defaults(func=cmd_work)
    p = add("tail", "print entries as they are published (read from the stream, so a Redis restart or failover "
                    "loses none), or from an earlier point with --since")
    p.add_argument("--topic", help="only entries of this topic (one of the topics file's)")
    p.add_argument("--since", help="where to start: 0 for all history, a stream id printed before, or a time as "
                                   "Unix milliseconds")
    p.add_argument("--no-follow", action="store_true", help="with --since: stop at the end of the stream")
    p.add_argument("--json", action="store_true",
                   help="print entry JSON lines, each with its stream id as 'stream_id' (for --since)")
    p.set_defaults(func=cmd_tail)
    p = add("classify", "classify JSON lines {id,title,text?} from stdin")
    p.set_defaults(func=cmd_classify)
    for name, help_ in (("feeds", "show each feed's health"), ("status", "same as feeds")):
        p = add(name, help_)
        p.add_argument("--json", action="store_true")
        p.add_argument("--opml", action="store_true",
                       help="print the configured feeds as an OPML subscription list (for other readers); no Redis")
        p.set_defaults(func=cmd_feeds)
    p = add("metrics", "print feed, queue and stream figures in Prometheus text format")
    p.add_argument("--listen", help="[HOST:]PORT: serve them at http://HOST:PORT/metrics for Prometheus to scrape "
                                    "(HOST 127.0.0.1 by default), until stopped")
    p.set_defaults(func=cmd_metrics)
    p = add("webhooks", "list webhooks, or replay or delete dead-lettered deliveries")
    p.add_argument("action", choices=["list", "replay", "clear"], nargs="?", default="list",
                   help="list (default): each webhook's dead letters, running and parked jobs and wait; replay: "
                        "re-send the dead letters; clear: delete them")
    p.add_argument("--webhook", help="only this webhook id")
    p.set_defaults(func=cmd_webhooks)
    p = add("eval-topics", "evaluate the classifier on labelled JSON lines")
    p.add_argument("file", nargs="+", help="labelled JSON lines (several files are pooled)")
    p.add_argument("--topics", help="topics YAML (default: the config's)")
    p.add_argument("--corpus", help="headlines JSONL to look up texts of id-only label files")
    p.add_argument("--score", metavar="TOPIC[,TOPIC...]",
                   help="the topics to score (default: those the labels use; the others the classifier assigned "
                        "are listed)")
    p.add_argument("--agreement", metavar="OTHER", help="score another annotator's labels of the same ids against FILE")
    p.add_argument("--panel", action="store_true",
                   help="each FILE is one annotator's labels: score each, and the classifier, against the "
                        "others' majority")
    p.add_argument("--min-others", type=int, default=2,
                   help="with --panel: items at least this many other files labelled")
    p.set_defaults(func=cmd_eval_topics)
    p = add("schema", "print the entry JSON Schema")
    p.set_defaults(func=cmd_schema)
    p = sub.add_parser("demo", help="run the whole pipeline offline on bundled sample feeds")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pause", type=float, default=2.0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # here, not at exit, so a reader that went away is noticed below
        return status
    except LivebriefError as exc:
        print(f"livebrief: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped reading (`livebrief schema | head -1`): stop quietly, as a process killed by
        # SIGPIPE would, with its status. Python flushes stdout again at exit; point it at /dev/null so that
        # flush does not fail too (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
