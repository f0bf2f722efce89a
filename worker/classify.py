"""Topic classification: a pure function of an item's text and the topic definitions in config/topics.yaml.

The rule language is documented at the top of ``config/topics.yaml``. In short, each topic has weighted
phrases, context rules (a phrase that counts only near another), exclusions (spans that never count) and
dampeners (words that lower confidence, such as "warns" for attacks that have not happened). A topic's
score is a noisy-OR of the weights of the distinct rules that fired, times ``1 - w`` for each dampener:
a weight reads as "how sure this rule alone makes us", so a score is roughly the chance the item is on
topic, and several weak signals add up without ever passing 1.

Where several phrases match at one place the strongest wins; if it is a context rule whose context is not
there, the next phrase that matches at that place gets its turn (``Scanner.retry``), so a strict rule
never hides a weaker one that would have counted.

``load_topics`` compiles every topic into a handful of regular expressions (one alternation per topic and
role; each phrase translated by ``worker/phrases.py``), so ``classify`` runs a fixed, small number of regex
scans per item however many phrases there are; at each position a scan tries only the phrases that can
start with the characters found there (``Scanner``, ``worker/scanning.py``), which gives the same matches
as the whole alternation at a fraction of the cost.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from livebrief.config import read_utf8
from livebrief.errors import ConfigError
from worker.chars import fold
from worker.condense import POINTER_LABELS
from worker.phrases import QUOTES, PhraseBook, PhraseError, expand, phrase_regex, plain_regexes
from worker.scanning import Dispatch, LazyAlternation, Places, Scanner

__all__ = ["LEAD_CHARS", "Classification", "TopicSet", "classify", "compile_topics", "lead", "load_topics"]

log = structlog.get_logger(__name__)


# How much of an item's text is read: a headline with its summary is what the annotation guide labels, and
# a feed that carries whole articles (content:encoded) would otherwise cost ~20x more per item (~13,000
# characters of text: classify 11.6 ms an item instead of 0.53, ``benchmarks/bench_stages.py --desc-chars
# 20000``) and label passing mentions deep in the background. Overridden by ``defaults.lead_chars`` in the topics file.
LEAD_CHARS = 1000


class Classification(BaseModel):
    topics: list[str] = Field(default_factory=list, description="topics at or above their threshold")
    scores: dict[str, float] = Field(default_factory=dict, description="topic -> score in [0, 1]")
    evidence: dict[str, list[str]] = Field(default_factory=dict, description="topic -> matched phrases")


# --- the file format -------------------------------------------------------------------------------

Weight = float
PhraseList = list[str]


class _Rule(BaseModel):
    """One rule in its long form; the ``phrases`` shorthand expands to rules without ``near``."""

    model_config = ConfigDict(extra="forbid")

    match: PhraseList = Field(min_length=1)
    weight: Weight = Field(gt=0, le=1)
    near: PhraseList = Field(default_factory=list)
    unless_near: PhraseList = Field(default_factory=list)
    window: int | None = Field(default=None, ge=1, le=50)
    label: str | None = None

    @field_validator("match", "near", "unless_near", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def _check_weighted(value: dict[float, list[str]]) -> dict[float, list[str]]:
    for weight, phrases in value.items():
        if not 0 < weight <= 1:
            raise ValueError(f"weight {weight} must be in (0, 1]")
        if not phrases:
            raise ValueError(f"weight {weight} has an empty phrase list")
    return value


class _Topic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    threshold: float | None = Field(default=None, gt=0, le=1)
    window: int | None = Field(default=None, ge=1, le=50)
    phrases: dict[Weight, PhraseList] = Field(default_factory=dict)
    rules: list[_Rule] = Field(default_factory=list)
    exclude: PhraseList = Field(default_factory=list)
    dampen: dict[Weight, PhraseList] = Field(default_factory=dict)

    _weights = field_validator("phrases", "dampen")(_check_weighted)


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.5, gt=0, le=1)
    window: int = Field(default=6, ge=1, le=50)
    lead_chars: int = Field(default=LEAD_CHARS, ge=200)
    exclude: PhraseList = Field(default_factory=list)
    dampen: dict[Weight, PhraseList] = Field(default_factory=dict)

    _weights = field_validator("dampen")(_check_weighted)


class _TopicsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    defaults: _Defaults = Field(default_factory=_Defaults)
    vocab: dict[str, PhraseList] = Field(default_factory=dict)
    topics: dict[str, _Topic] = Field(min_length=1)


# --- compiled form ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledRule:
    label: str
    weight: float
    near: LazyAlternation | None
    unless_near: LazyAlternation | None
    window: int


@dataclass(frozen=True)
class _CompiledTopic:
    name: str
    threshold: float
    rules: dict[str, _CompiledRule]  # regex group name -> rule
    positive: Scanner
    exclude: Scanner | None
    dampen: Scanner | None
    dampen_weights: dict[str, tuple[str, float]] = field(default_factory=dict)  # group -> (label, w)


class TopicSet:
    """Compiled topic definitions; build once with ``load_topics`` (or ``compile_topics``) and share.

    Immutable and safe to use from several threads: classification only reads it (and fills in a cache).
    """

    def __init__(
        self, topics: Iterable[_CompiledTopic], source: str = "<memory>", lead_chars: int = LEAD_CHARS
    ) -> None:
        self._topics = {t.name: t for t in topics}
        self.source = source
        self.lead_chars = lead_chars
        # Every alternation of every topic gets a slot in one Dispatch, so a text is looked up once.
        scanners: list[Scanner] = []
        self._plan: list[tuple[str, _CompiledTopic, tuple[int, int, int]]] = []
        for name, topic in self._topics.items():
            slots = []
            for scanner in (topic.exclude, topic.positive, topic.dampen):
                slots.append(len(scanners) if scanner is not None else -1)
                if scanner is not None:
                    scanners.append(scanner)
            self._plan.append((name, topic, (slots[0], slots[1], slots[2])))
        self._dispatch = Dispatch(scanners)

    @property
    def names(self) -> list[str]:
        return list(self._topics)

    def compile_all(self) -> None:
        """Compile now what is otherwise compiled on first use (the context rules' lists).
        A forking worker calls this before it forks: a work-horse would compile them again for each job and
        lose them when it exits."""
        for topic in self._topics.values():
            for rule in topic.rules.values():
                for context in (rule.near, rule.unless_near):
                    if context is not None:
                        _ = context.pattern  # compiled on first access

    @property
    def thresholds(self) -> dict[str, float]:
        return {name: t.threshold for name, t in self._topics.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._topics

    def __repr__(self) -> str:
        return f"TopicSet({self.names!r}, source={self.source!r})"


# --- loading ---------------------------------------------------------------------------------------


def _alternation(named: list[tuple[str, str, float]]) -> Scanner:
    # At one position the first alternative that matches wins: the strongest rule, then the longest
    # pattern, so "missile strike" (0.95) is credited rather than "strike" near a war word (0.8).
    named = sorted(named, key=lambda item: (-item[2], -len(item[1])))
    return Scanner([f"(?P<{name}>{rx})" for name, rx, _ in named], named_groups=len(named))


def _plain_scanner(phrases: list[str], book: PhraseBook) -> Scanner | None:
    return Scanner(plain_regexes(phrases, book), named_groups=0) if phrases else None


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f", got {got!r}"
        problems.append(f"{loc}: {err['msg']}{shown}")
    return problems


def compile_topics(data: Any, source: str = "<memory>") -> TopicSet:
    """Validate and compile already-parsed topic definitions (the YAML document as Python data).

    Raises ``ConfigError(source, problems)`` naming each bad topic or field.
    """
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping with a 'topics' key"])
    try:
        spec = _TopicsFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _pydantic_problems(exc)) from exc

    problems: list[str] = []
    compiled: list[_CompiledTopic] = []
    d = spec.defaults
    book = PhraseBook(spec.vocab)
    for name, topic in spec.topics.items():
        where = f"topics.{name}"
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            problems.append(f"{where}: topic names are lower-case letters, digits, '_' and '-'")
            continue
        try:
            compiled.append(_compile_topic(name, topic, d, book))
        except PhraseError as exc:
            problems.append(f"{where}: {exc}")
        except re.error as exc:  # a re: phrase valid alone but not inside the topic's alternation
            problems.append(f"{where}: a re: phrase is not valid where it is used ({exc})")
    if problems:
        raise ConfigError(source, problems)
    return TopicSet(compiled, source=source, lead_chars=d.lead_chars)


def _compile_topic(name: str, topic: _Topic, defaults: _Defaults, book: PhraseBook) -> _CompiledTopic:
    rules = [
        _Rule(match=phrases, weight=weight, label=None)
        for weight, phrases in sorted(topic.phrases.items(), reverse=True)
    ] + list(topic.rules)
    if not rules:
        raise PhraseError("has no phrases and no rules: add at least one phrase")
    window = topic.window or defaults.window
    named: list[tuple[str, str, float]] = []
    by_group: dict[str, _CompiledRule] = {}
    for i, rule in enumerate(rules):
        rwhere = f"rules[{i - len(topic.phrases)}]" if i >= len(topic.phrases) else "phrases"
        matches = expand(rule.match, book, f"{rwhere}.match")
        near = expand(rule.near, book, f"{rwhere}.near")
        unless = expand(rule.unless_near, book, f"{rwhere}.unless_near")
        if rule.near and not near:
            raise PhraseError(f"{rwhere}.near: is empty")
        compiled_near = book.context_list(near)
        compiled_unless = book.context_list(unless)
        for j, phrase in enumerate(matches):
            group = f"r{i}_{j}"
            try:
                named.append((group, phrase_regex(phrase, book), rule.weight))
            except PhraseError as exc:
                raise PhraseError(f"{rwhere}: {exc}") from exc
            by_group[group] = _CompiledRule(
                label=rule.label or phrase,
                weight=rule.weight,
                near=compiled_near,
                unless_near=compiled_unless,
                window=rule.window or window,
            )
    dampen_named: list[tuple[str, str, float]] = []
    dampen_weights: dict[str, tuple[str, float]] = {}
    all_dampen = list(defaults.dampen.items()) + list(topic.dampen.items())
    for i, (weight, phrases) in enumerate(all_dampen):
        for j, phrase in enumerate(expand(phrases, book, "dampen")):
            group = f"d{i}_{j}"
            dampen_named.append((group, phrase_regex(phrase, book), rule.weight))
            dampen_weights[group] = (phrase, weight)
    exclude = expand(defaults.exclude + topic.exclude, book, "exclude")
    return _CompiledTopic(
        name=name,
        threshold=topic.threshold or defaults.threshold,
        rules=by_group,
        positive=_alternation(named),
        exclude=_plain_scanner(exclude, book),
        dampen=_alternation(dampen_named) if dampen_named else None,
        dampen_weights=dampen_weights,
    )


# libyaml's parser when PyYAML was built with it: it reads the shipped topics file ~8x faster (26 against
# 222 ms), a fifth of what loading the topics took.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """A safe loader that refuses a mapping with the same key twice (YAML would keep only the last: two
    ``0.45:`` lists under ``phrases`` silently lose the first)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, list | dict):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (merge the two lists)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_topics(path: Path) -> TopicSet:
    """Read and compile a topics YAML file. Raises ``ConfigError`` naming each bad topic or field."""
    try:
        data = yaml.load(read_utf8(path), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    topics = compile_topics(data, source=str(path))
    log.debug("topics_loaded", path=str(path), topics=topics.names)
    return topics


# --- classification --------------------------------------------------------------------------------


_WORD_RE = re.compile(r"\w+")


class _Words:
    """Word offsets of one text, computed only if a context rule needs them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._spans: list[tuple[int, int]] | None = None
        self._starts: list[int] = []

    def around(self, start: int, end: int, window: int) -> tuple[str, str]:
        """The text up to ``window`` words before and after [start, end)."""
        if self._spans is None:
            self._spans = [m.span() for m in _WORD_RE.finditer(self.text)]
            self._starts = [s for s, _ in self._spans]
        starts = self._starts
        first = bisect.bisect_left(starts, start)
        last = bisect.bisect_left(starts, end)
        lo = self._spans[max(first - window, 0)][0] if self._spans else 0
        hi_index = min(last + window, len(self._spans)) - 1
        hi = self._spans[hi_index][1] if hi_index >= 0 else len(self.text)
        return self.text[lo:start], self.text[end : max(hi, end)]


def _mask(text: str, places: Places, exclude: Scanner | None, slot: int, dispatch: Dispatch) -> tuple[str, Places]:
    """Blank out the excluded spans; same-length blanks keep every offset valid for the context windows."""
    found = exclude.scan(text, places, slot) if exclude is not None else None
    if not found:
        return text, places
    parts: list[str] = []
    done = 0
    for m in found:
        start, end = m.span()
        parts.append(text[done:start])
        parts.append(" " * (end - start))
        done = end
    parts.append(text[done:])
    masked = "".join(parts)
    return masked, dispatch.places(masked)


def _score_topic(
    topic: _CompiledTopic, slots: tuple[int, int, int], text: str, places: Places, dispatch: Dispatch, words: _Words
) -> tuple[float, list[str]]:
    exclude_slot, positive_slot, dampen_slot = slots
    masked, places = _mask(text, places, topic.exclude, exclude_slot, dispatch)
    # Topics that exclude nothing read the same text: its word offsets are found once for all of them.
    words = words if masked is text else _Words(masked)
    fired: dict[str, float] = {}  # label -> weight; a rule counts once however often it matches
    evidence: list[str] = []
    for first in topic.positive.scan(masked, places, positive_slot):
        m: re.Match[str] | None = first
        # A context rule that does not count here hands the place to the next phrase that matches there.
        while m is not None:
            rule = topic.rules[m.lastgroup or ""]
            if rule.label in fired:
                break
            phrase = m.group(0).lower()
            if rule.near is not None or rule.unless_near is not None:
                before, after = words.around(m.start(), m.end(), rule.window)
                if rule.unless_near is not None:
                    blocker = rule.unless_near.search(before) or rule.unless_near.search(after)
                    if blocker:
                        evidence.append(f"{phrase} (ignored near '{blocker.group(0).lower()}')")
                        m = topic.positive.retry(masked, m.start(), m.lastgroup or "")
                        continue
                if rule.near is not None:
                    ctx = rule.near.search(before) or rule.near.search(after)
                    if not ctx:
                        m = topic.positive.retry(masked, m.start(), m.lastgroup or "")
                        continue
                    phrase = f"{phrase} (near '{ctx.group(0).lower()}')"
            fired[rule.label] = rule.weight
            evidence.append(phrase)
            break
    if not fired:
        return 0.0, evidence
    miss = 1.0
    for weight in fired.values():
        miss *= 1.0 - weight
    score = 1.0 - miss
    if topic.dampen is not None:
        seen: set[str] = set()
        for m in topic.dampen.scan(masked, places, dampen_slot):
            label, weight = topic.dampen_weights[m.lastgroup or ""]
            if label in seen:
                continue
            seen.add(label)
            score *= 1.0 - weight
            evidence.append(f"-{m.group(0).lower()} (dampens x{1 - weight:.2f})")
    return round(min(max(score, 0.0), 1.0), 4), evidence


# Lines that point to other stories ("Related: <its headline>", "See also: ..."): their words are another
# story's, and gave an item that story's topics. Summaries drop them too (``condense.is_boilerplate``, which
# drops also the labels that may open news, "Live:", "Watch:": those are read).
_POINTER = r"[ \t]*" + POINTER_LABELS + r"[ \t]*[:>»|][^\n]*"
# Each line but the first found by its newline: a pattern opening with a literal lets the regex engine skip
# to the next newline, where one anchored with MULTILINE's ^ was tried at every character. Over 1,500
# characters in 19 lines that took 11.5 us more than ``lead`` alone; this takes 6.5 (4 in 6 paragraphs).
_POINTER_LINES = re.compile("\n" + _POINTER, re.IGNORECASE)
_POINTER_FIRST_LINE = re.compile(_POINTER + "\n?", re.IGNORECASE)


def read_text(text: str, limit: int) -> str:
    """What of ``text`` is read with the headline: its lead (``lead``), without the lines pointing to other
    stories."""
    head = _POINTER_LINES.sub("", text[: 2 * limit])
    first = _POINTER_FIRST_LINE.match(head)
    return lead(head[first.end() :] if first else head, limit)


def lead(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, cut at the last whitespace before it (a word cut in two could
    match as another word: "attack" from "attacker")."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    cut = max(head.rfind(" "), head.rfind("\n"))
    return head[:cut] if cut > 0 else text[:limit]


def classify(title: str, text: str, topics: TopicSet) -> Classification:
    """Score every topic for one item and keep those at or above their threshold.

    ``title`` and the lead of ``text`` (its first ``topics.lead_chars`` characters, cut at a space, without
    lines such as "Related: ...") are read as one passage; ``text`` may be empty (headline-only items).
    """
    text = read_text(text, topics.lead_chars)
    blob = f"{title}\n{text}" if text else title
    if not blob.isascii():  # every character QUOTES maps is non-ASCII
        blob = fold(blob, QUOTES)
    dispatch = topics._dispatch
    places = dispatch.places(blob)
    result = Classification()
    words = _Words(blob)
    for name, topic, slots in topics._plan:
        score, evidence = _score_topic(topic, slots, blob, places, dispatch, words)
        result.scores[name] = score
        if evidence:
            result.evidence[name] = evidence
        if score >= topic.threshold:
            result.topics.append(name)
    return result
