"""Webhook notifications: payloads (pure), Standard Webhooks signatures (pure), delivery jobs (I/O).

The entries a batch publishes become, per webhook, one RQ job on the deliveries queue carrying every
matching entry version (``deliver_batch``), enqueued by the same atomic call that publishes them. A job
POSTs the messages in order; each one delivered is marked (a 64-bit mark in ``P:dmark:``, kept as
``worker/marks.py`` keeps published items) so that a retry resumes after it. A non-2xx answer or a network
error stops the job, and RQ retries it on the webhook's ``retry_intervals`` schedule. After the last retry
fails, every message of the job not yet delivered goes to the dead-letter list, which ``livebrief webhooks
replay`` re-sends one job per message (``deliver``). The ``webhook-id`` is the same on every attempt and
replay, so receivers can drop repeats.

A receiver that answers 429, or 503 with ``Retry-After``, is not failing but asking to be called later (Slack
does so past about one message a second). The job then queues what it has not delivered as a new job for
that time, without using up a retry, and holds the webhook until then (``P:webhook:<id>:hold``): every job
for it that starts meanwhile is put off the same way instead of calling a receiver that has just said "not
now". Waiting is bounded: once a job's messages have waited, all told, as long as the webhook's
``retry_intervals`` add up to, the next such answer counts as a failure, and the retries and dead letters
above take over. A worker killed after queuing the later job but before finishing this one leaves both to
run: the marks make whichever runs second skip what the first delivered.

A job runs in one of its webhook's lanes, and a job posting to a slow receiver makes way for the other
webhooks' jobs after ``worker.delivery_slice`` (``worker/lanes.py``).

A webhook with ``max_age`` does not want old news: a job that starts posting dead-letters the messages
published longer ago than that, and hands the others on. The dead-letter list: ``worker/deadletters.py``.

Why a job per batch and not per entry: an RQ job costs ~1-2 ms of worker CPU around its work, more than
the POST; at 1,000 entries/s one job per entry took more CPU than producing the entries.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis
import structlog
from rq import Callback, Queue, Retry, get_current_job
from rq.job import Job, JobStatus

from livebrief.config import WebhookConfig
from livebrief.errors import ConfigError, DeliveryError, ReceiverBusyError
from livebrief.keys import DEFERRED, DELIVERED, Keys, counter_field, job_id_part
from livebrief.models import Entry
from livebrief.queues import LivebriefQueue
from livebrief.retry_after import parse_retry_after
from livebrief.signing import sign, verify
from worker import deadletters, webhook_client
from worker.lanes import PARKED_FOR, Lane, wake
from worker.marks import REMEMBERED_LUA, delivery_mark, expires_at, generation, mark_args, shard
from worker.runtime import Runtime, current

log = structlog.get_logger(__name__)
DELIVER_JOB = "worker.notify.deliver"
DELIVER_BATCH_JOB = "worker.notify.deliver_batch"
MAX_BATCH_MESSAGES = 100
__all__ = [
    "DeliveryEnqueuer", "DeliveryMarks", "busy_wait", "deliver", "deliver_batch", "delivered", "render_message",
    "render_payload", "replay_dead_letters", "sign", "verify",
]
EVENT_TYPES = {"new": "entry.created", "updated": "entry.updated", "withdrawn": "entry.withdrawn"}
# Sources named in a Slack message: a story many outlets report would otherwise end in a wall of links.
SLACK_SOURCES = 5
# How long a "not now" answer puts deliveries off (see the module docstring): its Retry-After, within these
# bounds; a 429 without a usable Retry-After waits the default.
BUSY_DEFAULT_SECONDS = 5.0
BUSY_MIN_SECONDS = 1.0
BUSY_MAX_SECONDS = 3600.0
_CARRIED_SUFFIX = re.compile(r"-[cdp]\d+$")


def delivery_id(entry: Entry) -> str:
    """The ``webhook-id``: one per entry version, stable across retries and replays."""
    return f"msg_{entry.id}_v{entry.version}"


def matches(webhook: WebhookConfig, entry: Entry, sources_only: bool) -> bool:
    """Whether ``webhook`` wants this entry version: one of its events (an update that only changed the sources
    not when it takes content updates only), and one of its topics (if it names any)."""
    return (EVENT_TYPES[entry.status] in webhook.events
            and not (sources_only and webhook.updates == "content")
            and (not webhook.topics or bool(set(webhook.topics) & set(entry.topics))))


def render_payload(webhook: WebhookConfig, entry: Entry) -> bytes:
    """The POST body for one webhook: a Standard Webhooks event, or a Slack incoming-webhook message."""
    if webhook.format == "slack":
        shown = entry.sources[:SLACK_SOURCES]
        names = ", ".join(f"<{_slack_url(s.url)}|{_slack_text(s.name)}>" if s.url else _slack_text(s.name)
                          for s in shown)
        if len(entry.sources) > len(shown):
            names += f" and {len(entry.sources) - len(shown)} more"
        tag = " ".join(f"#{t}" for t in entry.topics)
        prefix = {"new": "", "updated": "Update: ", "withdrawn": "Withdrawn: "}[entry.status]
        lines = [f"*{prefix}{_slack_text(entry.headline)}*", _slack_text(entry.summary), f"_{names}_ {tag}".strip()]
        return json.dumps({"text": "\n".join(line for line in lines if line)}).encode()
    return _standard_event(entry.status, entry.updated, entry.model_dump_json())


def _slack_text(text: str) -> str:
    """Feed text as Slack shows it literally: '&', '<' and '>' are its control characters, so a headline
    holding ``<@U024BE7LH>`` or ``<!here>`` would otherwise ping people, and a '>' would end a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_url(url: str) -> str:
    """A link target inside ``<url|name>``: '|' would end the target early, and '<', '>' the link."""
    return _slack_text(url).replace("|", "%7C")


def render_message(webhook: WebhookConfig, entry_json: str) -> bytes:
    """``render_payload`` for an entry version as queued: its JSON as published on the stream.

    For a Standard Webhooks event the stored JSON becomes ``data`` as it is, instead of being validated
    into an ``Entry`` and serialised again: that round trip was ~14% of a delivery's CPU (py-spy, one
    delivery worker). ``data`` is then byte for byte what stream subscribers got; as a JSON value it is
    the same as ``render_payload``'s (``tests/test_webhooks.py`` checks it).
    """
    if webhook.format == "slack":
        return render_payload(webhook, Entry.model_validate_json(entry_json))
    fields = json.loads(entry_json)
    return _standard_event(fields["status"], datetime.fromisoformat(fields["updated"]), entry_json)


def _standard_event(status: str, updated: datetime, entry_json: str) -> bytes:
    """A Standard Webhooks event around an entry's JSON, which goes in as it is."""
    event_type, timestamp = json.dumps(EVENT_TYPES[status]), json.dumps(updated.isoformat())
    return f'{{"type":{event_type},"timestamp":{timestamp},"data":{entry_json}}}'.encode()


def delivery_headers(webhook: WebhookConfig, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    headers = {"content-type": "application/json", "user-agent": "livebrief-webhooks/0.1"}
    if webhook.format == "standard":
        try:
            secret = webhook.resolved_secret()
        except ConfigError as exc:  # secret_env unset or changed since the worker started: retried, then dead-lettered
            raise DeliveryError(webhook.id, exc.message) from exc
        if not secret:
            raise DeliveryError(webhook.id, "no secret configured")
        ts = int(time.time() if now is None else now)
        headers.update({"webhook-id": msg_id, "webhook-timestamp": str(ts),
                        "webhook-signature": sign(secret, msg_id, ts, body)})
    return headers


class DeliveryEnqueuer:
    """Queues delivery jobs on ``pipe``, which the publishing step records and runs atomically with the entries."""

    def __init__(self, client: redis.Redis, keys: Keys, webhooks: list[WebhookConfig], finished_ttl: int) -> None:
        self.queue = LivebriefQueue.deliveries(keys, client)
        self.webhooks = webhooks
        self.finished_ttl = finished_ttl

    def __call__(self, entries: list[tuple[Entry, str, bool]], pipe: redis.client.Pipeline) -> int:
        """Queue the deliveries of ``entries`` (entry, its JSON, whether it only changed sources), one job per
        webhook; returns the number of messages."""
        count = 0
        for webhook in self.webhooks:
            messages = [(delivery_id(entry), body) for entry, body, sources_only in entries
                        if matches(webhook, entry, sources_only)]
            for start in range(0, len(messages), MAX_BATCH_MESSAGES):
                enqueue_delivery_batch(self.queue, webhook, messages[start : start + MAX_BATCH_MESSAGES], pipe,
                                       self.finished_ttl)
            count += len(messages)
        return count


def _job_options(webhook: WebhookConfig, messages: int, finished_ttl: int,
                 retries_left: int | None = None) -> dict[str, Any]:
    """RQ options of a delivery job; ``retries_left``: those of the job it carries on (parked, continued),
    whose schedule it goes on with (RQ picks the interval by the retries left)."""
    left = len(webhook.retry_intervals) if retries_left is None else min(retries_left, len(webhook.retry_intervals))
    return {
        "timeout": int((webhook.timeout + 1) * messages + 10),
        "retry": Retry(max=left, interval=webhook.retry_intervals) if webhook.retry_intervals and left else None,
        # RQ keeps no count for a job without a Retry: none left is said here, or the next job carrying its
        # messages on would start the schedule afresh (found by QA: a receiver failing every other message was
        # never dead-lettered).
        "meta": {"retries_left": 0} if retries_left is not None and not left else None,
        "on_failure": Callback("worker.notify.on_delivery_failure"),
        "result_ttl": finished_ttl,
        "failure_ttl": 7 * 86400,
    }


def enqueue_delivery_batch(
    queue: Queue, webhook: WebhookConfig, messages: Sequence[Sequence[str]], pipe: redis.client.Pipeline,
    finished_ttl: int, *, at: float | None = None, deferred_since: float | None = None,
    parked_since: float | None = None, replayed_at: float | None = None, job_id: str | None = None,
    retries_left: int | None = None,
) -> Job:
    """One job delivering ``messages`` ((webhook-id, entry JSON) pairs) to ``webhook``, in order; with ``at``,
    a job put off until then (the module docstring), its messages waiting since ``deferred_since``, or parked
    since ``parked_since`` (``worker/lanes.py``), or replayed from the dead letters at ``replayed_at``; with
    ``retries_left``, going on with another job's retries."""
    past = (("deferred_since", deferred_since), ("parked_since", parked_since), ("replayed_at", replayed_at))
    options: dict[str, Any] = {
        "args": (webhook.id, [list(m) for m in messages]),
        # What a job carrying on another one's messages must know of their past (a new batch's job: nothing).
        "kwargs": {name: value for name, value in past if value is not None},
        # The time first: deferred jobs due in the same second are queued in the order of their ids
        # (RQ's scheduled registry scores whole seconds), so they keep the order their batches came in.
        "job_id": job_id or (f"delivery-{job_id_part(webhook.id)}-{int(time.time() * 1000):013d}-{messages[0][0]}"
                             f"-{len(messages)}"),
        # Not RQ's repr of every entry.
        "description": f"deliveries to {webhook.id}: {len(messages)}" + ("" if at is None else ", put off"),
        **_job_options(webhook, len(messages), finished_ttl, retries_left),
    }
    if at is None:
        return queue.enqueue_call(DELIVER_BATCH_JOB, pipeline=pipe, **options)
    job = queue.create_job(DELIVER_BATCH_JOB, status=JobStatus.SCHEDULED, **options)
    # RQ's scheduled registry counts whole seconds, rounded down: round up, or the job runs before ``at``.
    return queue.schedule_job(job, datetime.fromtimestamp(math.ceil(at), UTC), pipeline=pipe)


def _defer(job: Job, runtime: Runtime, webhook: WebhookConfig, messages: list[list[str]], until: float,
           since: float | None, *, hold: bool) -> bool:
    """Queue ``messages`` again as a job due at ``until`` and, with ``hold``, hold the webhook until then; False,
    with nothing done, when its messages have waited as long as they may."""
    since = time.time() if since is None else since
    if until - since > sum(webhook.retry_intervals):
        return False
    keys = runtime.keys
    with job.connection.pipeline() as pipe:  # MULTI: the later job, the hold and the count together
        enqueue_delivery_batch(LivebriefQueue.deliveries(keys, job.connection), webhook, messages, pipe,
                               runtime.config.worker.finished_job_ttl, at=until, deferred_since=since,
                               replayed_at=job.kwargs.get("replayed_at"), job_id=_next_job_id(job.id, "d"))
        if hold:
            pipe.set(keys.webhook_hold(webhook.id), repr(until), pxat=int(until * 1000))
        pipe.hincrby(keys.counters, counter_field(DEFERRED, webhook.id), 1)
        pipe.execute()
    log.info("delivery_deferred", webhook=webhook.id, messages=len(messages),
             until=datetime.fromtimestamp(until, UTC).isoformat(),
             waiting_since=datetime.fromtimestamp(since, UTC).isoformat())
    return True


def enqueue_delivery(
    queue: Queue, webhook: WebhookConfig, msg_id: str, entry_json: str, pipe: redis.client.Pipeline,
    finished_ttl: int,
) -> Job:
    """One job delivering one message (replays of dead letters, which the webhook's ``max_age`` spares)."""
    return queue.enqueue_call(
        DELIVER_JOB,
        args=(webhook.id, msg_id, entry_json),
        kwargs={"replayed_at": time.time()},
        job_id=f"delivery-{job_id_part(webhook.id)}-{msg_id}-{int(time.time() * 1000)}",
        description=f"deliver {msg_id} to {webhook.id}",
        pipeline=pipe,
        **_job_options(webhook, 1, finished_ttl),
    )


def busy_wait(status: int, retry_after: str | None, now: float | None = None) -> float | None:
    """Seconds a receiver's answer asks deliveries to wait (429, or 503 with ``Retry-After``), or None when
    the answer is a failure."""
    seconds = parse_retry_after(retry_after, now)
    if status == 429 and seconds is None:
        seconds = BUSY_DEFAULT_SECONDS
    if status not in (429, 503) or seconds is None:
        return None
    return min(max(seconds, BUSY_MIN_SECONDS), BUSY_MAX_SECONDS)


def post(webhook: WebhookConfig, msg_id: str, body: bytes) -> int:
    """One delivery attempt of a rendered ``body``; returns the HTTP status. Raises ``ReceiverBusyError``
    when the receiver asks to wait, ``DeliveryError`` on any other answer but 2xx."""
    headers = delivery_headers(webhook, msg_id, body)
    try:
        answer = webhook_client.post(webhook.url, body, headers, webhook.timeout)
    except webhook_client.PostError as exc:
        raise DeliveryError(webhook.id, str(exc)) from exc
    if 200 <= answer.status < 300:
        return answer.status
    wait = busy_wait(answer.status, answer.retry_after)
    if wait is not None:
        raise ReceiverBusyError(webhook.id, answer.status, wait)
    raise DeliveryError(webhook.id, f"receiver answered HTTP {answer.status}")


def deliver(webhook_id: str, msg_id: str, entry_json: str, replayed_at: float | None = None) -> str:
    """RQ job: deliver one entry version to one webhook (skipped when already delivered)."""
    return deliver_batch(webhook_id, [[msg_id, entry_json]], replayed_at=replayed_at)


def deliver_batch(webhook_id: str, messages: list[list[str]], deferred_since: float | None = None,
                  parked_since: float | None = None, replayed_at: float | None = None) -> str:
    """RQ job: deliver entry versions ([webhook-id, entry JSON] pairs) to one webhook, in order, skipping
    those already delivered; the first failure raises, and the retry resumes there. When the receiver asks
    to wait, or has asked and the wait is not over, what is left becomes a job for later (module docstring);
    ``deferred_since`` is when this job's messages were first put off. The job runs in one of the webhook's
    lanes, or parks until one is free (``parked_since``: when its messages first parked), and hands what is
    left to a job at the back of the queue after ``worker.delivery_slice`` seconds (``worker/lanes.py``).
    With the webhook's ``max_age``, the messages published longer ago than that are dead-lettered instead of
    posted, unless they were replayed from the dead letters (``replayed_at``)."""
    runtime = current()
    job = get_current_job()
    webhook = runtime.webhook(webhook_id)
    if webhook is None:
        log.warning("webhook_not_configured", webhook=webhook_id, messages=len(messages))
        return "dropped: webhook no longer configured"
    if job is None:  # its marks, lanes and later jobs all live with the RQ job
        raise DeliveryError(webhook_id, "deliveries run as RQ jobs, in a delivery worker")
    lane = Lane(job.connection, runtime.keys, webhook, job.id, runtime.config.worker.delivery_slice)
    try:  # however it ends: a woken parked job holds a lane from the start (QA: a 429 hold kept it leased)
        ttl = runtime.config.worker.seen_ttl
        done, held = _delivery_state(job.connection, runtime.keys, webhook_id, [m for m, _ in messages], ttl)
        rest = _undelivered(messages, done)
        if not rest:
            return f"delivered 0 of {len(messages)}: all were delivered before"
        if held is not None and held > time.time() and _defer(job, runtime, webhook, rest, held, deferred_since,
                                                              hold=False):
            return f"delivered 0 of {len(messages)}: the receiver asked to wait; {len(rest)} put off"
        if not lane.acquire():
            _park(job, runtime, webhook, lane, rest, deferred_since, parked_since)
            return f"delivered 0 of {len(messages)}: every lane of {webhook_id} is taken; {len(rest)} parked"
        run = _Run(job, runtime, lane, deferred_since)
        late, fresh = _past_max_age(webhook, rest, replayed_at)
        if late:
            _expire(run, webhook, late, fresh)
            return (f"delivered 0 of {len(messages)}: {len(late)} past max_age dead-lettered; "
                    f"{len(fresh)} handed to a job at the back of the queue")
        return _post_all(webhook, messages, done, run)
    finally:
        lane.release()


@dataclass(frozen=True)
class _Run:
    """The RQ job a delivery runs in, and its lane."""

    job: Job
    runtime: Runtime
    lane: Lane
    deferred_since: float | None


def _post_all(webhook: WebhookConfig, messages: list[list[str]], done: list[bool], run: _Run) -> str:
    """Post the ``messages`` not ``done`` in order, marking each delivered (``deliver_batch``)."""
    marks = DeliveryMarks(run.job.connection, run.runtime.keys, webhook.id, run.runtime.config.worker.seen_ttl)
    started = time.monotonic()
    sent = 0
    try:
        for index, ((msg_id, entry_json), already) in enumerate(zip(messages, done, strict=True)):
            if already:
                log.info("delivery_already_done", webhook=webhook.id, delivery=msg_id)
                continue
            if sent and time.monotonic() - started >= run.runtime.config.worker.delivery_slice:
                rest = _undelivered(messages[index:], done[index:])
                _continue(run, webhook, rest)
                return f"delivered {sent} of {len(messages)}; {len(rest)} handed to a job at the back of the queue"
            try:
                status = post(webhook, msg_id, render_message(webhook, entry_json))
            except ReceiverBusyError as busy:
                rest = _undelivered(messages[index:], done[index:])
                if not _defer(run.job, run.runtime, webhook, rest, time.time() + busy.wait, run.deferred_since,
                              hold=True):
                    raise
                return f"delivered {sent} of {len(messages)}; the receiver asked to wait: {len(rest)} put off"
            marks.add(msg_id)
            log.info("delivered", webhook=webhook.id, delivery=msg_id, status=status)
            sent += 1
    finally:
        marks.close()
    return f"delivered {sent} of {len(messages)}"


def _park(job: Job, runtime: Runtime, webhook: WebhookConfig, lane: Lane, messages: list[list[str]],
          deferred_since: float | None, parked_since: float | None) -> None:
    """Queue ``messages`` as a job parked behind ``webhook``'s lanes (``worker/lanes.py``); queued now if a
    lane was freed meanwhile."""
    queue = lane.queue
    # Its place: when its messages first parked, else first were put off (found by QA: a batch a 429 put off
    # parked behind later ones), else when its job was made (two workers racing park in batch order).
    since = next(t for t in (parked_since, deferred_since, job.created_at.timestamp()) if t is not None)
    with job.connection.pipeline() as pipe:  # MULTI: the job exists before a hand-over can pick it
        parked = enqueue_delivery_batch(queue, webhook, messages, pipe, runtime.config.worker.finished_job_ttl,
                                        at=time.time() + PARKED_FOR, deferred_since=deferred_since,
                                        parked_since=since, replayed_at=job.kwargs.get("replayed_at"),
                                        job_id=_next_job_id(job.id, "p"),
                                        retries_left=retries_left(job))
        lane.park(pipe, parked.id, since)
        took = pipe.execute()[-1]
    if took == 1:
        wake(job.connection, queue, parked.id)
    log.info("delivery_parked", webhook=webhook.id, messages=len(messages), job=parked.id, woken=took == 1)


def _continue(run: _Run, webhook: WebhookConfig, messages: list[list[str]]) -> None:
    """Queue ``messages`` as a job at the back of the queue and give it this job's lane, in one MULTI."""
    with run.job.connection.pipeline() as pipe:
        successor = _hand_on(run, webhook, messages, pipe)
        pipe.execute()
    log.info("delivery_continued", webhook=webhook.id, messages=len(messages), job=successor.id)


def _hand_on(run: _Run, webhook: WebhookConfig, messages: list[list[str]], pipe: redis.client.Pipeline) -> Job:
    """On ``pipe``: a job at the back of the queue carrying ``messages`` on, given this job's lane."""
    successor = enqueue_delivery_batch(run.lane.queue, webhook, messages, pipe,
                                       run.runtime.config.worker.finished_job_ttl, deferred_since=run.deferred_since,
                                       replayed_at=run.job.kwargs.get("replayed_at"),
                                       job_id=_next_job_id(run.job.id, "c"), retries_left=retries_left(run.job))
    run.lane.hand_over(pipe, successor.id)
    return successor


def _past_max_age(webhook: WebhookConfig, messages: list[list[str]],
                  replayed_at: float | None) -> tuple[list[list[str]], list[list[str]]]:
    """(messages past the webhook's ``max_age``, the others): age counts from the entry version's publication;
    a replayed dead letter (``replayed_at``) has none."""
    if webhook.max_age is None or replayed_at is not None:
        return [], messages
    oldest = time.time() - webhook.max_age
    late: list[list[str]] = []
    fresh: list[list[str]] = []
    for message in messages:
        published = datetime.fromisoformat(json.loads(message[1])["updated"]).timestamp()
        (late if published < oldest else fresh).append(message)
    return late, fresh


def _expire(run: _Run, webhook: WebhookConfig, late: list[list[str]], fresh: list[list[str]]) -> None:
    """Dead-letter the ``late`` messages and hand the ``fresh`` ones, with this job's lane, to a job at the back
    of the queue, in one MULTI: a failure of the later posts is then the other job's, and no retry of this one
    dead-letters the late ones again. (A worker killed between the MULTI and the end of this job leaves its
    re-run to dead-letter them a second time; a replay posts each once, the second copy skipped by its mark.)"""
    deadletters.push(run.job.connection, run.runtime.keys, webhook.id, late,
                     f"not delivered within max_age ({webhook.max_age} s) of its publication",
                     run.runtime.config.worker.dead_letters_max,
                     also=(lambda pipe: _hand_on(run, webhook, fresh, pipe)) if fresh else None)
    for msg_id, _ in late:
        log.warning("delivery_expired", webhook=webhook.id, delivery=msg_id, max_age=webhook.max_age)


def retries_left(job: Job) -> int | None:
    """The retries ``job`` has left; None: the whole schedule (a job no other carried on to)."""
    if job.retries_left is not None:
        return job.retries_left
    return 0 if job.meta.get("retries_left") == 0 else None


def _next_job_id(job_id: str, kind: str) -> str:
    """The id of a job carrying on ``job_id``'s messages: put off (d), parked (p) or continued (c)."""
    return f"{_CARRIED_SUFFIX.sub('', job_id)}-{kind}{int(time.time() * 1000)}"


# One command per delivery: SADD and EXPIREAT sent apart cost twice the client CPU of one small EVAL. The
# webhook's delivered count goes up in the same call, and only with a new mark, so a message counts once
# even when two jobs raced to deliver it.
_MARK_LUA = ("if redis.call('SADD', ARGV[1], ARGV[2]) == 1 then redis.call('HINCRBY', ARGV[4], ARGV[5], 1) end "
             "redis.call('EXPIREAT', ARGV[1], ARGV[3])")


def delivered(connection: redis.Redis, keys: Keys, webhook_id: str, msg_ids: list[str], ttl: int,
              now: float | None = None) -> list[bool]:
    """Which of these messages some run of some job has delivered to the webhook: its mark is in this
    generation's or the previous one's set (checked as the index checks published items), or it has a
    string key as earlier versions wrote them (read until the last of those expires, ``seen_ttl`` after an
    upgrade). One round trip."""
    if not msg_ids:
        return []
    return _delivery_state(connection, keys, webhook_id, msg_ids, ttl, now)[0]


def _undelivered(messages: list[list[str]], done: list[bool]) -> list[list[str]]:
    """The ``messages`` no run has delivered (``done``: ``delivered`` of each)."""
    return [m for m, already in zip(messages, done, strict=True) if not already]


def _delivery_state(connection: redis.Redis, keys: Keys, webhook_id: str, msg_ids: list[str], ttl: int,
                    now: float | None = None) -> tuple[list[bool], float | None]:
    """``delivered`` (``msg_ids`` not empty), and until when the receiver asked not to be called (None: it did
    not), in one round trip."""
    gen = generation(time.time() if now is None else now, ttl)
    marks = [delivery_mark(webhook_id, msg_id) for msg_id in msg_ids]
    with connection.pipeline(transaction=False) as pipe:
        pipe.eval(REMEMBERED_LUA, 0, *cast(list[str], mark_args(marks, keys.delivery_mark_set, (gen, gen - 1))))
        pipe.mget([keys.legacy_delivered(f"{webhook_id}:{msg_id}") for msg_id in msg_ids])
        pipe.get(keys.webhook_hold(webhook_id))
        found, legacy, hold = cast(tuple[list[int], list[bytes | None], bytes | None], pipe.execute())
    return ([bool(flag) or old is not None for flag, old in zip(found, legacy, strict=True)],
            float(hold) if hold is not None else None)


class DeliveryMarks:
    """Marks messages delivered, one command each, sent as soon as its POST is answered but with the replies
    read only when the job ends.

    Sent at once, a mark survives the worker being killed right after (the command is already in Redis's
    socket buffer), so a retry resumes after the last message delivered. Waiting for each reply (a
    blocking round trip between two POSTs) cost more: 355-361 us of worker CPU per delivery against
    300-305 us, and 1,860-1,890 deliveries/s against 2,300-2,390 (``benchmarks/bench_webhooks.py``, 2 cores).

    A mark is the same command however often it runs, so when the connection fails (Redis restarting while
    the job posts) the marks whose replies are unread are sent again on a new connection, waiting for Redis
    as the client's retries do. Before, the job failed there, and its retry posted again the messages
    delivered during the outage.
    """

    def __init__(self, client: redis.Redis, keys: Keys, webhook_id: str, ttl: int) -> None:
        self.client = client
        self.keys = keys
        self.webhook_id = webhook_id
        self.ttl = ttl
        self.counted = (keys.counters, counter_field(DELIVERED, webhook_id))
        self.conn: redis.connection.Connection | None = None
        self.unread: list[tuple[str, ...]] = []  # ARGV of the marks whose replies are unread

    def add(self, msg_id: str) -> None:
        mark = delivery_mark(self.webhook_id, msg_id)
        gen = generation(time.time(), self.ttl)
        key = self.keys.delivery_mark_set(gen, shard(mark))
        args = (key, str(mark), str(expires_at(gen, self.ttl)), *self.counted)  # as redis-py sends them
        self.unread.append(args)
        try:
            if self.conn is None:
                self.conn = self.client.connection_pool.get_connection()
            # No health check: a PING sent now (the client's health_check_interval, when the last POST took
            # that long) would read the reply of an earlier mark as its PONG, and the connection would be
            # dropped with the other replies, leaving ``close`` waiting for them until the job's timeout.
            self.conn.send_command("EVAL", _MARK_LUA, 0, *args, check_health=False)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._send_again(exc)

    def close(self) -> None:
        """Read every reply (an error reply raises, so the job fails and its retry re-sends what is not
        marked) and give the connection back, dropped when replies may be left unread on it."""
        try:
            if self.conn is not None:
                for _ in self.unread:
                    self.conn.read_response()
                self.unread.clear()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._send_again(exc)
        finally:
            self._drop_connection(clean=not self.unread)

    def _send_again(self, exc: Exception) -> None:
        """The unread marks again, in one pipeline on a new connection, retried as any command is."""
        log.warning("delivery_marks_sent_again", webhook=self.webhook_id, marks=len(self.unread), error=str(exc))
        self._drop_connection(clean=False)
        with self.client.pipeline(transaction=False) as pipe:
            for args in self.unread:
                pipe.eval(_MARK_LUA, 0, *args)
            pipe.execute()
        self.unread.clear()

    def _drop_connection(self, *, clean: bool) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            if not clean:
                conn.disconnect()
            self.client.connection_pool.release(conn)


def _job_messages(job: Job) -> tuple[str, list[list[str]]]:
    """(webhook id, messages) of a ``deliver`` or ``deliver_batch`` job."""
    if len(job.args) == 3:
        webhook_id, msg_id, entry_json = job.args
        return webhook_id, [[msg_id, entry_json]]
    webhook_id, messages = job.args
    return webhook_id, messages


def on_delivery_failure(job: Job, connection: redis.Redis, exc_type: type, exc: BaseException, tb: Any) -> None:
    """RQ failure callback: after the last retry, move the job's undelivered messages to the dead-letter list."""
    if job.retries_left:
        log.warning("delivery_failed_will_retry", job=job.id, retries_left=job.retries_left, error=str(exc))
        return
    runtime = current()
    webhook_id, messages = _job_messages(job)
    keys = runtime.keys
    done = delivered(connection, keys, webhook_id, [m for m, _ in messages], runtime.config.worker.seen_ttl)
    undelivered = _undelivered(messages, done)  # the others were delivered by an earlier attempt of this job
    if not undelivered:
        return
    deadletters.push(connection, keys, webhook_id, undelivered, str(exc), runtime.config.worker.dead_letters_max)
    for msg_id, _ in undelivered:
        log.error("delivery_dead_lettered", webhook=webhook_id, delivery=msg_id, error=str(exc))


def replay_dead_letters(client: redis.Redis, keys: Keys, webhooks: list[WebhookConfig], webhook_id: str | None,
                        finished_ttl: int) -> int:
    """Re-queue dead-lettered deliveries (all, or one webhook's), oldest first, each a job with a fresh retry
    schedule and no ``max_age`` (the letter is sent however old: someone asked for it); returns how many."""
    queue = LivebriefQueue.deliveries(keys, client)
    by_id = {w.id: w for w in webhooks}

    def enqueue(pipe: redis.client.Pipeline, letters: list[deadletters.Letter]) -> None:
        for letter in letters:
            enqueue_delivery(queue, by_id[letter["webhook"]], letter["delivery"], letter["entry"], pipe,
                             finished_ttl)

    # Letters of a webhook no longer configured stay: its URL and secret are gone.
    return deadletters.take(client, keys, lambda webhook: webhook in by_id and webhook_id in (None, webhook),
                            enqueue)
