"""Loading and validating the one YAML configuration file users edit.

Where it comes from: ``--config PATH``, else ``$LIVEBRIEF_CONFIG``, else ``config/livebrief.yaml`` in the
working directory, else the one in the source tree. ``$REDIS_URL`` overrides ``redis_url``. Only ``id``, ``url``
and ``name`` are needed per feed; every other setting has its default here, in one place.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

import structlog
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from livebrief.errors import ConfigError, RedisUrlError
from livebrief.redis_client import check_url
from livebrief.urls import http_url_problem

log = structlog.get_logger(__name__)

# ``worker.story_cache``'s default, also the size the worker's caches start at (``worker/records.py``,
# ``worker/dedupe.py``). 16,384 rather than 8,192 (before the twenty-sixth session): in `livebrief run`'s
# layout at 1,000 items/s for 60 s, ~9% less worker CPU and stream p99 77-153 ms against 228-471 in three
# alternated pairs, for ~130 MB more RSS per worker, spent only once the index holds more than 8,192 stories.
STORY_CACHE = 16_384

SOURCE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = Path("config") / "livebrief.yaml"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_PORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")
# The prefix starts every Redis key (``P:...``) and names the RQ queues (``P-ingest``): no space, comma, glob
# character (``feeds/push.py`` SCANs ``P:push:*``) or brace (a Redis Cluster hash tag); RQ stores a worker's
# queue names joined by commas.
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Standard Webhooks secrets are 24 to 64 random bytes (the specification's "Signature scheme"); fewer is a
# placeholder or a typo, not a key.
MIN_SECRET_BYTES = 24
# RQ stores a job's retry intervals in its hash, so in every delivery job; RQ sets no limit of its own.
MAX_RETRIES = 50
# RQ schedules a retry at now + interval as a datetime, which an interval past the year 9999 makes raise in
# every delivery; a week is also how long a failed delivery job is kept (worker/notify.py, failure_ttl).
MAX_RETRY_INTERVAL = 7 * 86400


def _numeric(annotation: Any) -> bool:
    """Whether a field of this type takes numbers (``float | None``, ``list[Annotated[int, ...]]``) and not
    booleans."""
    kinds = {annotation, *get_args(annotation)}
    kinds |= {get_args(kind)[0] for kind in kinds if get_origin(kind) is Annotated}
    return bool(kinds & {int, float}) and bool not in kinds


class _Strict(BaseModel):
    # No infinite or NaN floats: ``interval: .inf`` would schedule a feed never, silently.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML reads true/yes/on as booleans and pydantic's lax mode takes them as 1: ``interval: yes``
        # would poll every second.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _numeric(field.annotation):
            items = value if isinstance(value, list) else [value]
            if any(isinstance(item, bool) for item in items):
                raise ValueError("must be a number, not true/false")
        return value


def _secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not a usable Standard Webhooks secret (``whsec_`` and base64 of the key), or None."""
    if not secret.startswith("whsec_"):
        return "must start with 'whsec_' (Standard Webhooks format)"
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        # sign() decodes leniently, dropping what is not base64: a URL-safe secret would sign with another key.
        return "the part after 'whsec_' must be standard base64 (A-Z, a-z, 0-9, '+', '/', '=' padding)"
    if len(key) < MIN_SECRET_BYTES:
        return (f"the key after 'whsec_' is {len(key)} bytes; at least {MIN_SECRET_BYTES} are needed "
                "(e.g. 'whsec_' + the output of `openssl rand -base64 32`)")
    return None


def _env_secret_problem(name: str) -> str | None:
    """What is wrong with the secret in the environment variable ``name``, to follow ``$name``, or None."""
    value = os.environ.get(name)
    if not value:
        return "is not set: export the whsec_... secret in it, or use 'secret' instead"
    problem = _secret_problem(value)
    return f"holds no valid secret: {problem}" if problem else None


def _secret_from_env(name: str) -> str:
    """The secret the environment variable ``name`` holds; ``ConfigError`` naming it when unset or invalid."""
    problem = _env_secret_problem(name)
    if problem:
        raise ConfigError(f"${name}", [f"${name} {problem}"])
    return os.environ[name]


class FeedConfig(_Strict):
    id: str = Field(description="short stable id; used in Redis keys and logs")
    url: str
    name: str = Field(description="the outlet's display name, shown in entry sources")
    kind: Literal["auto", "rss", "ninjs"] = "auto"
    since_param: str | None = Field(
        default="since", description="ninjs feeds: query parameter that continues from the last versioncreated"
    )
    interval: float | None = Field(
        default=None, gt=0, description="seconds between polls; default polling.interval"
    )
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter/digit")
        return value

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        return _checked_url(value)


def _checked_url(value: str) -> str:
    problem = http_url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# Plain text kept per entry. The worker reads the first ~2,000 characters at most (the dedupe lead; topics
# read 1,000, the summary less), so a feed of whole articles is cut here, where its HTML is read, instead of
# carrying ~13 kB per item through the queue (and ~1.5 ms of HTML stripping per item in the poller).
MAX_TEXT_CHARS = 4_000


class PollingConfig(_Strict):
    interval: float = Field(
        default=300.0, gt=0, description="first interval of a feed; then adaptive (see min/max_interval)"
    )
    adaptive: bool = Field(default=True, description="follow each feed's posting rate between min and max")
    min_interval: float = Field(default=60.0, gt=0, description="adaptive polling: shortest interval")
    max_interval: float = Field(
        default=6 * 3600.0, gt=0, validate_default=True, description="adaptive polling: longest interval"
    )
    timeout: float = Field(default=20.0, gt=0, description="total deadline for one fetch, seconds")
    connect_timeout: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description="decoded body size cap")
    max_entries: int = Field(default=500, gt=0, description="entries kept per fetch, newest first")
    max_text_chars: int = Field(default=MAX_TEXT_CHARS, gt=0, description="plain text kept per entry")
    concurrency: int = Field(default=32, gt=0, description="fetches in flight per poller")
    per_host: int = Field(default=4, gt=0, description="fetches in flight per host")
    backoff_base: float = Field(default=60.0, gt=0, description="first retry delay after a failure")
    backoff_cap: float = Field(
        default=24 * 3600.0, gt=0, validate_default=True, description="longest retry delay"
    )
    allow_private: bool = Field(
        default=False,
        description="allow feeds and redirects to any loopback/private address (a blanket switch)",
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="exact 'host:port' pairs allowed although private (intranet feeds, tests), the host "
        "spelled as in the URL: '127.0.0.1:8080' does not allow '127.1:8080' or 'localhost:8080'",
    )
    user_agent: str = "livebrief/0.1 (+https://github.com/livebrief/livebrief)"

    # Each upper bound checked against its lower bound, validated before it (field order), so that the
    # error names the setting: polling.max_interval, polling.backoff_cap.
    @field_validator("max_interval", "backoff_cap")
    @classmethod
    def _not_below_lower_bound(cls, value: float, info: ValidationInfo) -> float:
        lower = {"max_interval": "min_interval", "backoff_cap": "backoff_base"}[info.field_name or ""]
        if lower in info.data and value < info.data[lower]:
            raise ValueError(f"{value:g} s is less than {lower} ({info.data[lower]:g} s)")
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _host_port_shape(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _HOST_PORT_RE.match(value):
                raise ValueError(f"{value!r} must be 'host:port', e.g. '10.0.0.5:8080' or '[fd00::5]:443'")
        return [value.lower() for value in values]


class WorkerConfig(_Strict):
    summary_max_chars: int = Field(default=280, ge=40)
    stream_maxlen: int = Field(default=100_000, gt=0, description="approximate cap of the stream")
    seen_ttl: int = Field(
        default=7 * 86400, gt=0,
        description="seconds a published item, URL or guid is remembered (at least; at most twice: worker/marks.py)",
    )
    story_window: int = Field(default=12 * 3600, gt=0, description="seconds a story stays open to merge")
    story_retention: int = Field(
        default=2 * 86400, gt=0, description="seconds a story stays in the index (TTL of its keys)"
    )
    story_threshold: float = Field(default=0.5, ge=0, le=1, description="same-story score to merge")
    job_items: int = Field(
        default=25, ge=1, le=1000,
        description="items per ingest job: a bigger fetch is split so that several workers share it",
    )
    busy_job_items: int = Field(
        default=100, ge=1, le=1000,
        description="items per ingest job behind a backlog (8 jobs waiting, livebrief/ingest.py): fewer, "
                    "bigger jobs cost less RQ and Redis work per item when the workers are behind",
    )
    # A finished job keeps its payload in Redis as long as RQ keeps the job: ~430 bytes per item of an ingest
    # job, ~390 per message of a delivery job (bench_memory.py). At 1,000 items/s an hour of finished
    # delivery jobs is ~1.4 GB per webhook.
    finished_job_ttl: int = Field(
        default=60, ge=0,
        description="seconds RQ keeps a finished ingest or delivery job, its payload included (what `rq info` "
                    "lists); 0 deletes it at once",
    )
    # A webhook that stays down dead-letters every message after its retries; each letter holds its entry
    # (~1 KB), so without a bound a receiver gone for good would grow Redis for as long as nobody looks.
    dead_letters_max: int = Field(
        default=100_000, ge=0,
        description="dead-lettered deliveries kept for `livebrief webhooks replay`; past it the oldest are "
                    "dropped, counted per webhook and logged; 0 keeps every one",
    )
    # Serving ingest strictly first left the webhooks of `livebrief work` (workers on both queues) further
    # behind the longer a 1,000 items/s load lasted (p99 0.35-27 s over 60 s), even with cores to spare:
    # a worker waiting for the commit turn is busy for RQ, so the ingest queue was seldom empty when one
    # looked. Alternating kept them with the stream (p99 76-578 ms), the stream no slower (benchmarks/README.md).
    queue_order: Literal["alternate", "ingest_first"] = Field(
        default="alternate",
        description="a worker serving both queues: 'alternate' takes a waiting delivery job after each ingest "
                    "job (RQ's round robin), 'ingest_first' only when no ingest job waits",
    )
    # Delivery workers serve every webhook: a job posting to a slow receiver hands the rest of its messages to
    # a job at the back of the queue after this long, so the other webhooks' jobs queued meanwhile run first
    # (worker/lanes.py).
    delivery_slice: float = Field(
        default=1.0, gt=0, le=3600,
        description="seconds a delivery job posts before it hands the rest of its messages to a job at the "
                    "back of the queue, so one slow receiver cannot keep a worker from the other webhooks",
    )
    job_timeout: int = Field(default=300, gt=0)
    retries: int = Field(default=5, ge=0, description="RQ retries of a failed ingest batch")
    story_cache: int = Field(
        default=STORY_CACHE, ge=0, le=10_000_000,
        description="decoded stories a worker process keeps for scoring (~16 kB each, with their scoring "
                    "views); raise it when the index holds many more stories than this",
    )


EventType = Literal["entry.created", "entry.updated", "entry.withdrawn"]


class _Signed(_Strict):
    """A model with a Standard Webhooks secret: ``secret`` itself, or ``secret_env`` naming a variable that
    holds it."""

    if TYPE_CHECKING:  # declared by each model, so that they keep their place and description there
        secret: str | None
        secret_env: str | None

    @field_validator("secret", check_fields=False)
    @classmethod
    def _secret_shape(cls, value: str | None) -> str | None:
        problem = None if value is None else _secret_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def resolved_secret(self) -> str | None:
        """The secret; read from ``secret_env`` when set (``ConfigError`` naming the variable when it is unset
        or not a valid secret)."""
        return _secret_from_env(self.secret_env) if self.secret_env else self.secret


class WebhookConfig(_Signed):
    id: str
    url: str
    format: Literal["standard", "slack"] = "standard"
    secret: str | None = Field(default=None, description="whsec_... Standard Webhooks secret")
    secret_env: str | None = Field(default=None, description="name of an env var holding the secret")
    topics: list[str] = Field(default_factory=list, description="deliver only these; empty = all")
    events: list[EventType] = Field(
        default_factory=lambda: list(get_args(EventType)), min_length=1,
        description="which entry versions to deliver: new entries, updates (a source added, a correction), "
                    "withdrawals; a Slack channel may want only the first and last",
    )
    updates: Literal["all", "content"] = Field(
        default="all",
        description="'content': send an entry.updated version only when its headline, summary or topics "
                    "changed, not when a source joined the story",
    )
    timeout: float = Field(default=10.0, gt=0)
    concurrency: int = Field(
        default=1, ge=1, le=64,
        description="delivery jobs of this webhook running at once, each in a delivery worker; with 1, entries "
                    "arrive in the order they were published (but for a failed delivery's retry), and a slow "
                    "receiver holds one worker at most",
    )
    # Whole seconds, as RQ's Retry takes them (its scheduled registry counts whole seconds).
    retry_intervals: list[Annotated[int, Field(ge=0, le=MAX_RETRY_INTERVAL)]] = Field(
        default_factory=lambda: [5, 30, 120, 600, 1800, 3600, 7200, 14400], max_length=MAX_RETRIES,
        description="seconds before each retry; after the last, the delivery is dead-lettered",
    )
    max_age: int | None = Field(
        default=None, gt=0,
        description="seconds after an entry version's publication past which its message is dead-lettered "
                    "instead of posted (a receiver that fell behind gets the news, not a backlog of old news); "
                    "a replayed dead letter is posted however late. Unset: every message is, too",
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        return _checked_url(value)

    @model_validator(mode="after")
    def _secret_for_standard(self) -> WebhookConfig:
        if self.format == "standard" and not (self.secret or self.secret_env):
            raise ValueError("a 'standard' webhook needs 'secret' (whsec_...) or 'secret_env'")
        return self


class PushConfig(_Signed):
    """The push receiver (``livebrief serve``, and part of ``run`` when enabled): WebSub and direct pushes."""

    enabled: bool = False
    listen: str = Field(default="127.0.0.1:8787", description="host:port the receiver binds")
    public_url: str | None = Field(
        default=None, description="how hubs reach the receiver, e.g. https://feeds.example.org/livebrief"
    )
    lease_seconds: int = Field(default=10 * 86400, gt=0, description="WebSub lease asked of hubs")
    fallback_interval: float = Field(
        default=900.0, gt=0, description="seconds between safety polls of a feed whose hub pushes"
    )
    secret: str | None = Field(default=None, description="whsec_... for signed direct pushes of ninjs items")
    secret_env: str | None = None

    @model_validator(mode="after")
    def _public_url_when_enabled(self) -> PushConfig:
        if self.enabled and not self.public_url:
            raise ValueError("push.enabled needs push.public_url (the address hubs call back)")
        return self


class Config(_Strict):
    redis_url: str | None = Field(
        default=None,
        description="redis://, rediss:// (TLS), unix:// or redis+sentinel:// URL (livebrief/redis_client.py); "
                    "unset = the private one a running `livebrief run` keeps, else localhost:6379 if it answers, "
                    "else `run` starts that private one (livebrief/redis_server.py)",
    )
    prefix: str = Field(default="livebrief", description="prefix of every Redis key and channel")
    topics_file: str = Field(default="topics.yaml", description="relative to this file's folder")
    feeds: list[FeedConfig] = Field(default_factory=list)
    opml: list[str] = Field(
        default_factory=list,
        description="OPML subscription lists (relative to this file) whose feeds are followed too",
    )
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    polling: PollingConfig = Field(default_factory=PollingConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    push: PushConfig = Field(default_factory=PushConfig)
    # Where the file was loaded from; set by load_config, not by users.
    source_path: str | None = Field(default=None, exclude=True)

    @field_validator("prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if not _PREFIX_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_', '-' or ':', starting with a letter or "
                             "digit (it begins every Redis key and RQ queue name)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_shape(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_url(value)
            except RedisUrlError as exc:
                raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> Config:
        for kind, ids in (("feeds", [f.id for f in self.feeds]), ("webhooks", [w.id for w in self.webhooks])):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} id(s): {', '.join(dupes)}")
        return self

    @property
    def folder(self) -> Path:
        """What relative paths in the config (``topics_file``, ``opml``) are relative to: the file's folder."""
        return Path(self.source_path).parent if self.source_path else SOURCE_ROOT / "config"

    @property
    def topics_path(self) -> Path:
        return (self.folder / self.topics_file).resolve()

    def feed(self, feed_id: str) -> FeedConfig | None:
        return next((f for f in self.feeds if f.id == feed_id), None)


def resolve_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the configuration is read from (see the module docstring)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("LIVEBRIEF_CONFIG")
    if env:
        return Path(env)
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    return SOURCE_ROOT / DEFAULT_CONFIG


def _format_error(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting (check its spelling)"
    return f"{loc}: {msg}"


def parse_config(data: Any, path: str) -> Config:
    """Validate already-loaded YAML data; raises ``ConfigError`` naming the file, field and problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["(top level): must be a mapping of settings"])
    try:
        config = Config.model_validate({**data, "source_path": path})
    except ValidationError as exc:
        raise ConfigError(path, [_format_error(e) for e in exc.errors()]) from exc
    if config.opml:
        config = config.model_copy(update={"feeds": [*config.feeds, *_opml_feeds(config)]})
    if os.environ.get("REDIS_URL"):
        try:
            check_url(os.environ["REDIS_URL"])
        except RedisUrlError as exc:
            raise ConfigError("$REDIS_URL", [exc.message]) from None
        config = config.model_copy(update={"redis_url": os.environ["REDIS_URL"]})
    return config


def check_webhooks(config: Config, topics: Collection[str] | None = None) -> None:
    """What the webhooks need beyond the config file, checked by the processes that deliver (``livebrief
    run``, ``work``) when they start: each ``secret_env`` variable holds a valid secret and, given the topic
    names of the topics file, each topic a webhook names is one of them (a typo would match no entry, and the
    webhook would silently get nothing). ``ConfigError`` naming the config file and field otherwise.

    Not part of ``load_config``: ``tail``, ``feeds`` or ``metrics`` need neither the secrets nor the topics."""
    problems: list[str] = []
    for n, webhook in enumerate(config.webhooks):
        if webhook.format == "standard" and webhook.secret_env:
            problem = _env_secret_problem(webhook.secret_env)
            if problem:
                problems.append(f"webhooks.{n}.secret_env: ${webhook.secret_env} {problem}")
        if topics is None:
            continue
        for i, topic in enumerate(webhook.topics):
            if topic not in topics:
                problems.append(f"webhooks.{n}.topics.{i}: unknown topic {topic!r}; {config.topics_path} "
                                f"defines {', '.join(sorted(topics)) or 'none'}")
    if problems:
        raise ConfigError(str(config.source_path or config.folder), problems)


def read_utf8(path: Path) -> str:
    """The text of a configuration file (the config, its topics file); ``ConfigError`` naming the file and
    line when it is not UTF-8. ``OSError`` is left to the caller, which says what the file is for."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(str(path), [f"line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                      "save the file as UTF-8"]) from None


def _opml_feeds(config: Config) -> list[FeedConfig]:
    """The feeds of ``config.opml``'s lists that the YAML does not already follow (by URL)."""
    from livebrief.opml import OpmlError, read_opml

    known_urls = {f.url for f in config.feeds}
    known_ids = {f.id for f in config.feeds}
    found: list[FeedConfig] = []
    for n, name in enumerate(config.opml):
        source = config.folder / name
        try:
            listed = read_opml(source.read_bytes())
        except OSError as exc:
            raise ConfigError(str(config.source_path), [f"opml.{n}: {source} cannot be read: {exc.strerror}"]) from exc
        except OpmlError as exc:
            raise ConfigError(str(source), [str(exc)]) from exc
        for feed in listed:
            if feed["url"] in known_urls:
                continue
            # A list exported from another reader may hold a feed we cannot follow (a relative URL, another
            # scheme): that one is left out and said so, the others are followed, as readers import them.
            try:
                parsed = FeedConfig.model_validate(feed)
            except ValidationError as exc:
                log.warning("opml_outline_skipped", file=str(source), outline=feed["name"],
                            problems="; ".join(_format_error(e) for e in exc.errors()))
                continue
            if parsed.id in known_ids:  # the YAML took the id for a feed of another URL
                log.warning("opml_outline_skipped", file=str(source), outline=feed["name"],
                            problems=f"its id {parsed.id!r} is taken by a feed of the YAML")
                continue
            known_urls.add(parsed.url)
            known_ids.add(parsed.id)
            found.append(parsed)
    return found


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Read, validate and return the configuration; fails loudly with file, field and reason."""
    path = resolve_config_path(explicit)
    try:
        text = read_utf8(path)
    except FileNotFoundError as exc:
        raise ConfigError(
            str(path), ["file not found (pass --config PATH or set LIVEBRIEF_CONFIG)"]
        ) from exc
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot be read: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}not valid YAML ({problem})"]) from exc
    return parse_config(data, str(path))
