"""Topic classification: a pure function of an item's text and the topic definitions in config/topics.yaml.

The rule language is documented at the top of ``config/topics.yaml``. In short, each topic has weighted
phrases, context rules (a phrase that counts only near another), exclusions (spans that never count) and
dampeners (words that lower confidence, such as "warns" for attacks that have not happened). A topic's
score is a noisy-OR of the weights of the distinct rules that fired, times ``1 - w`` for each dampener:
a weight reads as "how sure this rule alone makes us", so a score is roughly the chance the item is on
topic, and several weak signals add up without ever passing 1.

Where several phrases match at one place the strongest wins; if it is a context rule whose context is not
there, the next phrase that matches at that place gets its turn (``_Scanner.retry``), so a strict rule
never hides a weaker one that would have counted.

``load_topics`` compiles every topic into a handful of regular expressions (one alternation per topic and
role), so ``classify`` runs a fixed, small number of regex scans per item however many phrases there are;
at each position a scan tries only the phrases that can start with the characters found there (see
``_Scanner``), which gives the same matches as the whole alternation at a fraction of the cost.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate, compress, repeat
from operator import add
from pathlib import Path
from re import _constants as _sre  # type: ignore[attr-defined]
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from typing import Any, cast

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from livebrief.errors import ConfigError
from worker.chars import fold

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


def _at_word_start(alternatives: Iterable[str]) -> str:
    """The regex every scan uses: one of ``alternatives`` (phrase regexes), starting a word."""
    return r"(?<!\w)(?:" + "|".join(alternatives) + ")"


class _LazyAlternation:
    """The case-insensitive alternation ``(?<!\\w)(?:alt|alt|...)``, compiled on first use: a context rule's
    list (shared by every rule with the same list), and the base of a ``_Scanner``. Loading had compiled
    every one: the shipped rules' context lists (~190 of ~6,000 phrases in all, mostly the same vocabularies
    again) were over half of it, and an indexed scanner never needs its whole alternation. Each alternative
    is parsed at load all the same (``_PhraseBook.check``, ``_Scanner``), so a pattern error still shows there."""

    def __init__(self, alternatives: list[str]) -> None:
        self.alternatives = alternatives
        self._pattern: re.Pattern[str] | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        pattern = self._pattern
        if pattern is None:  # two threads may both compile it: the same pattern either way
            pattern = self._pattern = re.compile(_at_word_start(self.alternatives), re.IGNORECASE)
        return pattern

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text)


@dataclass(frozen=True)
class _CompiledRule:
    label: str
    weight: float
    near: _LazyAlternation | None
    unless_near: _LazyAlternation | None
    window: int


@dataclass(frozen=True)
class _CompiledTopic:
    name: str
    threshold: float
    rules: dict[str, _CompiledRule]  # regex group name -> rule
    positive: _Scanner
    exclude: _Scanner | None
    dampen: _Scanner | None
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
        # Every alternation of every topic gets a slot in one _Dispatch, so a text is looked up once.
        scanners: list[_Scanner] = []
        self._plan: list[tuple[str, _CompiledTopic, tuple[int, int, int]]] = []
        for name, topic in self._topics.items():
            slots = []
            for scanner in (topic.exclude, topic.positive, topic.dampen):
                slots.append(len(scanners) if scanner is not None else -1)
                if scanner is not None:
                    scanners.append(scanner)
            self._plan.append((name, topic, (slots[0], slots[1], slots[2])))
        self._dispatch = _Dispatch(scanners)

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


# --- phrase syntax ---------------------------------------------------------------------------------

# "#" in a phrase: digits (with k/m/bn and a trailing "+": "30k+ soldiers"), or a number word
_NUMBER = (
    r"(?:\d[\d,.]*(?:k|bn|m)?\+?|a\s+dozen|dozens|hundreds|thousands|scores|one|two|three|four|five|six|seven"
    r"|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
)
# "air strike" also matches "air-strike" and runs of spaces; a quote may close or open at the gap, so
# 'stop senseless resistance" in Severodonetsk' still reads "resistance in severodonetsk"
_JOIN = r"[\"']?[\s\-]+[\"']?"
# "..." lets up to four words, and the punctuation around them, sit between two parts of a phrase
_GAP = r"(?:[\s\-,;:]+[^\s,;:]+){0,4}[,;:]?"
_QUOTES = (("’", "'"), ("‘", "'"), ("“", '"'), ("”", '"'), ("–", "-"), ("—", "-"), ("\u00a0", " "))
_WORD_RE = re.compile(r"\w+")


class _PhraseError(ValueError):
    pass


def _tokens(phrase: str) -> list[str]:
    """Split a phrase at spaces outside parentheses: "(russian |ukrainian )?forces" is one token."""
    tokens: list[str] = []
    current: list[str] = []
    depth = 0
    in_class = False
    for ch in phrase:
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise _PhraseError(f"{phrase!r}: unbalanced ')'")
        if ch.isspace() and depth == 0 and not in_class:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(ch)
    if depth:
        raise _PhraseError(f"{phrase!r}: unbalanced '('")
    if current:
        tokens.append("".join(current))
    return tokens


def _token_regex(token: str, book: _PhraseBook, depth: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "*":
            out.append(r"[\w']*")
        elif ch == "?":
            if not out or out[-1] in ("(?:", "|"):
                raise _PhraseError(f"{token!r}: '?' must follow a letter or a group")
            out.append("?")
        elif ch == "[":
            # a character class such as [sz] in "neutrali[sz]ed" is passed through as written
            end = token.find("]", i + 1)
            if end < 0:
                raise _PhraseError(f"{token!r}: unbalanced '['")
            out.append(token[i : end + 1])
            i = end
        elif ch == "(":
            out.append("(?:")
        elif ch in ")|":
            out.append(ch)
        elif ch == "#":
            out.append(_NUMBER)
        elif ch == "@":
            name = re.match(r"[a-z0-9_]+", token[i + 1 :])
            if not name or name.group(0) not in book.vocab:
                raise _PhraseError(f"unknown vocabulary '@{name.group(0) if name else ''}'")
            if depth > 3:
                raise _PhraseError(f"'@{name.group(0)}': vocabularies nest too deeply")
            alts = sorted(
                {book.body(p, depth + 1) for p in book.vocab[name.group(0)]},
                key=len,
                reverse=True,
            )
            out.append("(?:" + "|".join(alts) + ")")
            i += len(name.group(0))
        elif ch.isspace():
            out.append(_JOIN)
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _is_optional_group(token: str) -> bool:
    """True for a token like "(russian )?" that is one parenthesised group made optional."""
    if not (token.startswith("(") and token.endswith(")?")):
        return False
    depth = 0
    for i, ch in enumerate(token):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(token) - 2:
            return False
    return True


def _phrase_body(phrase: str, book: _PhraseBook, depth: int = 0) -> str:
    """Translate one phrase of the rule language into a regex without word boundaries (use ``book.body``:
    it keeps what it translated)."""
    phrase = fold(phrase, _QUOTES).strip()
    if phrase.startswith("re:"):
        raw = phrase[3:].strip()
        if "(?P" in raw:
            raise _PhraseError(f"{phrase!r}: named groups are not allowed in re: phrases")
        try:
            re.compile(raw)
        except re.error as exc:
            raise _PhraseError(f"{phrase!r}: not a valid regular expression ({exc})") from exc
        return f"(?:{raw})"
    words = _tokens(phrase.lower())
    if not words or words == ["..."]:
        raise _PhraseError(f"{phrase!r}: empty phrase")
    if words[0] == "..." or words[-1] == "...":
        raise _PhraseError(f"{phrase!r}: '...' must sit between two words")
    parts: list[str] = []
    try:
        for i, word in enumerate(words):
            if word == "...":
                parts.append(_GAP)
                continue
            if "..." in word:
                # "(of )?... talks" would otherwise look for three literal dots and never match
                raise _PhraseError(f"'...' must stand alone between spaces, not in {word!r}")
            body = _token_regex(word, book, depth)
            if _is_optional_group(word) and len(words) > 1:
                # An optional word takes its separator with it, so "against (a )?attack" works
                # with and without the "a".
                inner = body[:-1]
                parts.append(f"(?:{_JOIN}{inner})?" if i else f"(?:{inner}{_JOIN})?")
                continue
            if i and not (_is_optional_group(words[i - 1]) and i == 1):
                parts.append(_JOIN)
            parts.append(body)
    except _PhraseError as exc:
        raise _PhraseError(f"{phrase!r}: {exc}") from exc
    return "".join(parts)


def _phrase_regex(phrase: str, book: _PhraseBook) -> str:
    # Whole words only: "war" must not match "warn", "aid" not "said". The matching "starts a word"
    # check is put once in front of a whole alternation (see _alternation) rather than per phrase:
    # then the regex engine rejects mid-word positions before trying any alternative, which is most of
    # the speed of classify().
    return book.body(phrase) + r"(?!\w)"


class _PhraseBook:
    """One rule file's vocabularies, and each phrase's regex once translated: the same vocabularies fill
    many rules' context lists (~6,000 phrases, ~1,200 different, in the shipped rules)."""

    def __init__(self, vocab: Mapping[str, list[str]]) -> None:
        self.vocab = vocab
        self._bodies: dict[tuple[str, int], str] = {}  # (phrase, vocabulary depth) -> _phrase_body
        self._checked: set[str] = set()
        self._lists: dict[tuple[str, ...], _LazyAlternation] = {}

    def body(self, phrase: str, depth: int = 0) -> str:
        key = (phrase, depth)  # the depth decides only whether vocabularies nest too deeply
        found = self._bodies.get(key)
        if found is None:
            found = self._bodies[key] = _phrase_body(phrase, self, depth)
        return found

    def check(self, alternative: str) -> None:
        """Raise ``re.error`` if ``alternative`` is not a valid pattern alone. An alternation of valid
        alternatives is valid (each is balanced and its group references point inside it), so this is the
        error compiling the whole alternation would have raised, found without compiling it."""
        if alternative not in self._checked:
            _sre_parse.parse(alternative, re.IGNORECASE)
            self._checked.add(alternative)

    def context_list(self, phrases: list[str]) -> _LazyAlternation | None:
        if not phrases:
            return None
        alternatives = _plain_regexes(phrases, self)
        for alternative in alternatives:
            self.check(alternative)
        found = self._lists.get(key := tuple(alternatives))
        if found is None:
            found = self._lists[key] = _LazyAlternation(alternatives)
        return found


def _expand(phrases: Iterable[str], book: _PhraseBook, where: str) -> list[str]:
    out: list[str] = []
    for phrase in phrases:
        if re.fullmatch(r"@[a-z0-9_]+", phrase):
            if phrase[1:] not in book.vocab:
                raise _PhraseError(f"{where}: unknown vocabulary {phrase!r}")
            out.extend(book.vocab[phrase[1:]])
        else:
            out.append(phrase)
    return out


def _alternation(named: list[tuple[str, str, float]]) -> _Scanner:
    # At one position the first alternative that matches wins: the strongest rule, then the longest
    # pattern, so "missile strike" (0.95) is credited rather than "strike" near a war word (0.8).
    named = sorted(named, key=lambda item: (-item[2], -len(item[1])))
    return _Scanner([f"(?P<{name}>{rx})" for name, rx, _ in named], named_groups=len(named))


def _plain_regexes(phrases: list[str], book: _PhraseBook) -> list[str]:
    return sorted({_phrase_regex(p, book) for p in phrases}, key=len, reverse=True)


def _plain_scanner(phrases: list[str], book: _PhraseBook) -> _Scanner | None:
    return _Scanner(_plain_regexes(phrases, book), named_groups=0) if phrases else None


# --- loading ---------------------------------------------------------------------------------------


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
    book = _PhraseBook(spec.vocab)
    for name, topic in spec.topics.items():
        where = f"topics.{name}"
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            problems.append(f"{where}: topic names are lower-case letters, digits, '_' and '-'")
            continue
        try:
            compiled.append(_compile_topic(name, topic, d, book))
        except _PhraseError as exc:
            problems.append(f"{where}: {exc}")
        except re.error as exc:  # a re: phrase valid alone but not inside the topic's alternation
            problems.append(f"{where}: a re: phrase is not valid where it is used ({exc})")
    if problems:
        raise ConfigError(source, problems)
    return TopicSet(compiled, source=source, lead_chars=d.lead_chars)


def _compile_topic(name: str, topic: _Topic, defaults: _Defaults, book: _PhraseBook) -> _CompiledTopic:
    rules = [
        _Rule(match=phrases, weight=weight, label=None)
        for weight, phrases in sorted(topic.phrases.items(), reverse=True)
    ] + list(topic.rules)
    if not rules:
        raise _PhraseError("has no phrases and no rules: add at least one phrase")
    window = topic.window or defaults.window
    named: list[tuple[str, str, float]] = []
    by_group: dict[str, _CompiledRule] = {}
    for i, rule in enumerate(rules):
        rwhere = f"rules[{i - len(topic.phrases)}]" if i >= len(topic.phrases) else "phrases"
        matches = _expand(rule.match, book, f"{rwhere}.match")
        near = _expand(rule.near, book, f"{rwhere}.near")
        unless = _expand(rule.unless_near, book, f"{rwhere}.unless_near")
        if rule.near and not near:
            raise _PhraseError(f"{rwhere}.near: is empty")
        compiled_near = book.context_list(near)
        compiled_unless = book.context_list(unless)
        for j, phrase in enumerate(matches):
            group = f"r{i}_{j}"
            try:
                named.append((group, _phrase_regex(phrase, book), rule.weight))
            except _PhraseError as exc:
                raise _PhraseError(f"{rwhere}: {exc}") from exc
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
        for j, phrase in enumerate(_expand(phrases, book, "dampen")):
            group = f"d{i}_{j}"
            dampen_named.append((group, _phrase_regex(phrase, book), rule.weight))
            dampen_weights[group] = (phrase, weight)
    exclude = _expand(defaults.exclude + topic.exclude, book, "exclude")
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
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    topics = compile_topics(data, source=str(path))
    log.debug("topics_loaded", path=str(path), topics=topics.names)
    return topics


# --- scanning an alternation -----------------------------------------------------------------------
#
# A topic's alternation holds hundreds of phrases, and the regex engine tries every one of them, in order,
# at every position where a word starts: that was nearly all of the time classify() took. A _Scanner does
# the same scan but, at each such position, tries only the alternatives that can start with the next few
# characters there. From the parsed regex of each alternative it derives the lower-cased ASCII strings
# that its matches can begin with (a superset: whatever is hard to follow, such as a wide character class,
# just cuts a string short, which allows more), and at scan time it looks up the characters found at the
# position. The alternatives it tries keep their order and those it skips cannot match there, so every
# match, and the alternative credited with it, is the one the full alternation finds.
#
# Nearly every alternative tried that way still fails (158 tries an item, 1.5 matches, on the benchmark's
# feeds), mostly at a later word of a phrase that the text does not have at all. So a scanner also derives,
# for each alternative, the keys one of which the text must have at some later word start for it to match
# anywhere (``_requirement``), and skips it in a text that has none of them: one set look-up instead of a
# failed match, for ~70% of the tries.

_PREFIX_LEN = 4  # characters looked at per position
_PREFIX_CAP = 512  # most prefixes kept per alternative before they are cut shorter
_REQUIRED_CAP = 32  # most keys in a requirement: looking up more costs about what the failed match it saves
# In a prefix: a character class that matches no ASCII character. In a lookup key: the text has a non-ASCII
# character here (the key ends with it).
_NON_ASCII = "\x80"
_ASCII_CHARS = [chr(i) for i in range(128)]
_CATEGORIES = {
    _sre.CATEGORY_DIGIT: r"\d",
    _sre.CATEGORY_NOT_DIGIT: r"\D",
    _sre.CATEGORY_SPACE: r"\s",
    _sre.CATEGORY_NOT_SPACE: r"\S",
    _sre.CATEGORY_WORD: r"\w",
    _sre.CATEGORY_NOT_WORD: r"\W",
}
_CASE_FLAGS = re.IGNORECASE | re.ASCII
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)
_ZERO_WIDTH = (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT)
_ONE_CHAR = (_sre.LITERAL, _sre.NOT_LITERAL, _sre.IN)
_char_sets: dict[tuple[str, int], frozenset[str]] = {}
_WORD_START = re.compile(r"(?<!\w)")  # where an alternation "(?<!\w)(?:...)" may match
_GROUP_NAME = re.compile(r"\(\?P<(\w+)>")  # the named group an alternative of an alternation opens with
_UNSET: Any = object()

_Node = tuple[Any, Any, int]  # a parsed regex item (op, argument) and the flags in force there
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
# ASCII bytes -> themselves if a word character (what "\w" matches), else a space: see _word_starts
_SEPARATORS = bytes(c if chr(c).lower() in _WORD_CHARS else ord(" ") for c in range(128)) + b" " * 128


def _char(code: int) -> str:
    return f"\\U{code:08x}"


def _one_char_source(op: Any, av: Any) -> str | None:
    """A regex for one LITERAL, NOT_LITERAL or IN node of a parsed pattern; None if it has parts we skip."""
    if op is _sre.LITERAL:
        return _char(av)
    if op is _sre.NOT_LITERAL:
        return f"[^{_char(av)}]"
    parts: list[str] = []
    negate = False
    for item_op, item in av:
        if item_op is _sre.NEGATE:
            negate = True
        elif item_op is _sre.LITERAL:
            parts.append(_char(item))
        elif item_op is _sre.RANGE:
            parts.append(f"{_char(item[0])}-{_char(item[1])}")
        elif item_op is _sre.CATEGORY and item in _CATEGORIES:
            parts.append(_CATEGORIES[item])
        else:
            return None
    return f"[{'^' if negate else ''}{''.join(parts)}]"


def _char_set(op: Any, av: Any, flags: int) -> frozenset[str] | None:
    """The lower-cased ASCII characters a one-character node matches (``_NON_ASCII`` if none); None: unknown."""
    source = _one_char_source(op, av)
    if source is None:
        return None
    key = (source, flags & _CASE_FLAGS)
    chars = _char_sets.get(key)
    if chars is None:
        rx = re.compile(source, key[1])
        chars = frozenset(c.lower() for c in _ASCII_CHARS if rx.fullmatch(c)) or frozenset(_NON_ASCII)
        _char_sets[key] = chars
    return chars


def _cut(prefixes: set[str], cap: int) -> set[str]:
    """Shorten the longest prefixes until at most ``cap`` remain (a shorter prefix allows more)."""
    while len(prefixes) > max(cap, 1):
        longest = max(map(len, prefixes))
        prefixes = {p[: longest - 1] for p in prefixes}
    return prefixes


def _items(pattern: Any, flags: int) -> list[_Node]:
    """A parsed (sub)pattern's items, each with the flags in force there."""
    return [(op, av, flags) for op, av in pattern.data]


_GROUPS = (_sre.SUBPATTERN, _sre.ATOMIC_GROUP)


def _group_items(node: _Node) -> list[_Node]:
    """The items inside a group node (one of ``_GROUPS``), with the group's own flags applied."""
    op, av, flags = node
    if op is _sre.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        return _items(sub, (flags | add_flags) & ~del_flags)
    return _items(av, flags)


def _prefixes(items: list[_Node], budget: int, depth: int = 0) -> set[str]:
    """Lower-cased strings of at most ``budget`` characters such that every match of ``items`` (a parsed
    regex), lower-cased, starts with one of them. Anything not understood ends a string there."""
    if budget == 0 or not items or depth > 60:
        return {""}
    (op, av, flags), rest = items[0], items[1:]
    if op in _ONE_CHAR:
        chars = _char_set(op, av, flags)
        if chars is None or len(chars) > _PREFIX_CAP:
            return {""}
        tails = _cut(_prefixes(rest, budget - 1, depth + 1), _PREFIX_CAP // len(chars))
        return {c + t for c in chars for t in tails}
    if op in _GROUPS:
        return _prefixes(_group_items(items[0]) + rest, budget, depth + 1)
    if op is _sre.BRANCH:
        out: set[str] = set()
        for alt in av[1]:
            out |= _prefixes(_items(alt, flags) + rest, budget, depth + 1)
        return _cut(out, _PREFIX_CAP)
    if op in _REPEATS:
        low, high, sub = av
        out = _prefixes(rest, budget, depth + 1) if low == 0 else set()
        if high != 0:
            again = (op, (max(low - 1, 0), high if high == _sre.MAXREPEAT else high - 1, sub), flags)
            out |= _prefixes(_items(sub, flags) + [again] + rest, budget, depth + 1)
        return _cut(out, _PREFIX_CAP)
    if op in _ZERO_WIDTH:  # zero-width: constrains the match but consumes nothing
        return _prefixes(rest, budget, depth + 1)
    return {""}


def _opened(items: list[_Node]) -> list[_Node]:
    """``items`` with their groups opened up, so that each part of a phrase is an item of its own."""
    out: list[_Node] = []
    for node in items:
        if node[0] in _GROUPS:
            out += _opened(_group_items(node))
        else:
            out.append(node)
    return out


def _off_word_at_end(items: list[_Node], before: bool) -> bool:
    """Whether, in ASCII text, the character before the end of a match of ``items`` is sure not to be a word
    character; ``before``: whether that held where the match began. False whenever unsure. Read from the end:
    only the last character a match takes counts."""
    for k in range(len(items) - 1, -1, -1):
        op, av, flags = items[k]
        if op in _ZERO_WIDTH:
            continue
        if op in _ONE_CHAR:
            chars = _char_set(op, av, flags)
            return chars is not None and not chars & _WORD_CHARS
        if op in _GROUPS:
            return _off_word_at_end(items[:k] + _group_items(items[k]), before)
        if op in _REPEATS:
            low, high, sub = av
            if high == 0:
                continue
            # Each repetition but the first follows another: not known to be off a word there.
            end = _off_word_at_end(_items(sub, flags), False)
            return end if low > 0 else end and _off_word_at_end(items[:k], before)
        if op is _sre.BRANCH:
            prior = _off_word_at_end(items[:k], before)
            return all(_off_word_at_end(_items(alt, flags), prior) for alt in av[1])
        return False
    return before


def _starts_a_word(node: _Node) -> bool:
    """Whether a point before ``node`` is worth its ``_prefixes``: a word character, or a choice (of words,
    mostly). The other points (before an optional quote, or the spaces between words) would give the next
    word's keys and more, and looking them up made loading a topic set ~50% slower."""
    op, av, flags = node
    if op in _ONE_CHAR:
        chars = _char_set(op, av, flags)
        return chars is not None and chars <= _WORD_CHARS
    return op is _sre.BRANCH


def _requirement(alternative: list[_Node]) -> frozenset[str] | None:
    """Lookup keys (``_key_at``) such that, in ASCII text, the parsed ``alternative`` can match only where the
    text has one of them at a word start; the smallest such set found (at most ``_REQUIRED_CAP``), or None.

    Looked for at each point of the alternative, past its first part, that a match reaches only at a word
    start: after a part whose last character is never a word character (a phrase's words are joined by
    spaces, hyphens and quotes). The keys are the prefixes its matches continue with there. The first part
    is left out: the key at the place a scanner tries stands for it already. Not for other text: a non-ASCII
    character may match an ASCII letter (the Kelvin sign matches "k"), and a key there is cut short.
    """
    items = _opened(alternative)
    best: frozenset[str] | None = None
    for i in range(1, len(items)):
        # True before the first part: a match starts at a word start, "(?<!\w)(?:alternative)".
        if _starts_a_word(items[i]) and _off_word_at_end(items[:i], True):
            keys = _prefixes(items[i : i + _PREFIX_LEN], _PREFIX_LEN)
            if (len(keys) <= _REQUIRED_CAP and all(len(k) == _PREFIX_LEN and _NON_ASCII not in k for k in keys)
                    and (best is None or len(keys) < len(best))):
                best = frozenset(keys)
    return best


def _key_at(text: str, pos: int) -> str:
    """The lookup key at ``pos``: the next ``_PREFIX_LEN`` characters lower-cased, or, if one of them is not
    ASCII, those before it followed by ``_NON_ASCII``."""
    window = text[pos : pos + _PREFIX_LEN]
    if not window.isascii():
        window = next(window[:i] for i, ch in enumerate(window) if ch > "\x7f") + _NON_ASCII
    return window.lower()


def _word_starts(text: str) -> list[int]:
    r"""Where "(?<!\w)" matches in ASCII ``text``: at 0, and after each character that is not a word character.
    Found by splitting the text's bytes there, ~6x faster than a regex scan yielding a match object per place."""
    pieces = text.encode("ascii").translate(_SEPARATORS).split(b" ")
    return [0, *map(add, accumulate(map(len, pieces[:-1])), range(1, len(pieces)))]


# alternatives to try at a place, in order, each with its ``_requirement``; the first match counts
_Patterns = tuple[tuple[re.Pattern[str], frozenset[str] | None], ...]


@dataclass(slots=True)
class _Places:
    """A text's positions where some scanner has alternatives to try, with those alternatives per scanner
    (None for a scanner with nothing that can match there)."""

    at: list[tuple[int, tuple[_Patterns | None, ...]]]
    keys: set[str] | None  # the key at every word start of an ASCII text, for ``_requirement``; else None


class _Scanner(_LazyAlternation):
    """The case-insensitive alternation ``(?<!\\w)(?:alt|alt|...)``, scanned as ``finditer`` would. An indexed
    scanner tries its alternatives one by one and never needs the whole alternation (``pattern``)."""

    def __init__(self, alternatives: list[str], named_groups: int) -> None:
        super().__init__(alternatives)
        self._names = [m.group(1) if (m := _GROUP_NAME.match(a)) else "" for a in alternatives]
        self._group_index = {name: i for i, name in enumerate(self._names) if name}
        self._retry: dict[tuple[str, int], tuple[int, ...]] = {}  # (key, alternative) -> those tried after it
        self._single: dict[int, re.Pattern[str]] = {}
        # Each alternative's _requirement, found on first use: for a whole topic set, finding them (0.1 s) and
        # keeping the parsed regexes they are found from (0.1 s more, the garbage collector's) would have
        # taken loading past a second on a slow machine.
        self._required: list[frozenset[str] | None] = [_UNSET] * len(alternatives)
        # prefix -> the alternatives whose matches can start with it
        self._starts: dict[str, set[int]] = {}
        # proper prefix of those prefixes -> their alternatives (for a text with a non-ASCII character there)
        self._inside: dict[str, set[int]] = {}
        self._by_node: dict[tuple[str, bool], tuple[int, ...]] = {}
        self._by_choice: dict[tuple[int, ...], _Patterns | None] = {}
        # Numbered groups (and so back-references) would change meaning in a shorter alternation, and an
        # alternative that matches the empty string would need finditer's rules for empty matches: such an
        # alternation is scanned whole.
        self.indexed = False
        starts: dict[str, set[int]] = {}
        inside: dict[str, set[int]] = {}
        groups, whole = 0, False
        for i, alt in enumerate(alternatives):
            # Every alternative is parsed, so that a pattern error (re.error) is the rules' and shows at load, as
            # compiling the whole alternation showed it.
            parsed = _sre_parse.parse(alt, re.IGNORECASE)
            groups += parsed.state.groups - 1
            whole = whole or parsed.getwidth()[0] == 0
            if whole:
                continue
            try:
                for prefix in _prefixes(_items(parsed, parsed.state.flags), _PREFIX_LEN):
                    starts.setdefault(prefix, set()).add(i)
                    for k in range(len(prefix)):
                        inside.setdefault(prefix[:k], set()).add(i)
            except Exception:  # re's parse tree is internal: should it ever change shape, scan the slow way
                log.warning("alternation_not_indexed", exc_info=True)
                whole = True
        if whole or groups != named_groups:
            return
        self._starts, self._inside = starts, inside
        self.indexed = True

    def choice(self, key: str) -> tuple[int, ...]:
        """The alternatives that can match where the text continues as ``key`` says, in order."""
        non_ascii = key.endswith(_NON_ASCII)
        known = key[:-1] if non_ascii else key
        # Only the longest prefix of `known` that some alternative's prefix starts with matters.
        size = len(known)
        while size and known[:size] not in self._starts and known[:size] not in self._inside:
            size -= 1
        node = (known[:size], non_ascii and size == len(known))
        choice = self._by_node.get(node)
        if choice is None:
            chosen: set[int] = set()
            if node[1]:
                chosen.update(self._inside.get(node[0], ()))
            for k in range(size + 1):
                chosen.update(self._starts.get(node[0][:k], ()))
            choice = self._by_node[node] = tuple(sorted(chosen))
        return choice

    def for_key(self, key: str) -> _Patterns | None:
        """The alternatives to try where the text continues as ``key`` says, each compiled on its own.

        Trying a few alternatives one by one finds what their alternation would (its first alternative
        that matches there), and compiling each alternative once costs far less than compiling an
        alternation for each of the hundreds of different choices: news text keeps bringing new words,
        and a worker compiled new alternations for its first few thousand items.
        """
        choice = self.choice(key)
        patterns = self._by_choice.get(choice, _UNSET)
        if patterns is _UNSET:
            patterns = self._by_choice[choice] = tuple((self._one(i), self._requirement(i)) for i in choice) or None
        return cast(_Patterns | None, patterns)

    def _requirement(self, i: int) -> frozenset[str] | None:
        required = self._required[i]
        if required is _UNSET:
            try:
                parsed = _sre_parse.parse(self.alternatives[i], re.IGNORECASE)
                required = _requirement(_items(parsed, parsed.state.flags))
            except Exception:  # re's parse tree is internal (see __init__): then the alternative is always tried
                log.warning("alternative_not_gated", exc_info=True)
                required = None
            self._required[i] = required
        return required

    def _one(self, i: int) -> re.Pattern[str]:
        rx = self._single.get(i)
        if rx is None:
            rx = self._single[i] = re.compile(_at_word_start([self.alternatives[i]]), re.IGNORECASE)
        return rx

    def retry(self, text: str, pos: int, after: str) -> re.Match[str] | None:
        """The match at ``pos`` of the first alternative listed after the named group ``after`` (the one the
        alternation would have credited had ``after`` not been there), or None. For a context rule that
        matched but did not count there: a weaker phrase at the same place may still count."""
        index = self._group_index.get(after)
        if index is None:
            return None
        key = _key_at(text, pos)
        later = self._retry.get((key, index))
        if later is None:
            if self.indexed:
                later = tuple(i for i in self.choice(key) if i > index and self._names[i])
            else:
                later = tuple(range(index + 1, len(self.alternatives)))
            if len(self._retry) >= 50_000:
                self._retry.clear()
            self._retry[(key, index)] = later
        for i in later:
            m = self._one(i).match(text, pos)
            if m is not None:
                return m
        return None

    def scan(self, text: str, places: _Places, slot: int) -> list[re.Match[str]]:
        """The matches ``self.pattern.finditer(text)`` yields; ``places`` is ``_Dispatch.places(text)`` and
        ``slot`` this scanner's place in it."""
        if not self.indexed:
            return list(self.pattern.finditer(text))
        found: list[re.Match[str]] = []
        end = 0
        keys = places.keys
        for pos, choices in places.at:
            patterns = choices[slot]
            if patterns is not None and pos >= end:
                for rx, required in patterns:
                    if required is not None and keys is not None and required.isdisjoint(keys):
                        continue
                    m = rx.match(text, pos)
                    if m is not None:
                        found.append(m)
                        end = m.end()
                        break
        return found


class _Dispatch:
    """For all the scanners of a topic set: which alternatives each tries at each position of a text.

    Remembers that per lookup key (``_key_at``), a few characters, so a text costs one dictionary look-up
    per position where a word starts. Filling in a key adds to dictionaries, which is safe from several
    threads.
    """

    _MAX_KEYS = 100_000

    def __init__(self, scanners: list[_Scanner]) -> None:
        self.scanners = scanners
        self._by_key: dict[str, tuple[_Patterns | None, ...] | None] = {}
        self._same: dict[tuple[_Patterns | None, ...], tuple[_Patterns | None, ...]] = {}
        # Every prefix any scanner looks up. A key that is none of them is decided by its longest proper
        # prefix that is (see _Scanner.choice), so it shares that shorter key's entry: most words a
        # worker meets for the first time then cost a dictionary look-up, not a walk over every scanner.
        self._prefixes: set[str] = set()
        for s in scanners:
            self._prefixes.update(s._starts, s._inside)

    def _choices(self, key: str) -> tuple[_Patterns | None, ...] | None:
        if key and not key.endswith(_NON_ASCII) and key not in self._prefixes:
            shorter = self._by_key.get(key[:-1], _UNSET)
            found = self._choices(key[:-1]) if shorter is _UNSET else shorter
        else:
            choices = tuple(s.for_key(key) if s.indexed else None for s in self.scanners)
            found = self._same.setdefault(choices, choices) if any(rx is not None for rx in choices) else None
        if len(self._by_key) >= self._MAX_KEYS:
            self._by_key.clear()
        self._by_key[key] = found
        return found

    def places(self, text: str) -> _Places:
        """The positions of ``text`` where some scanner has an alternation to try, with those alternations."""
        if not text.isascii():
            return self._places_any(text)
        by_key = self._by_key
        low = text.lower()
        starts = _word_starts(low)
        n = _PREFIX_LEN
        keys = [low[pos : pos + n] for pos in starts]
        found = list(map(by_key.get, keys, repeat(_UNSET)))
        if _UNSET in found:
            found = [self._choices(key) if choices is _UNSET else choices
                     for key, choices in zip(keys, found, strict=True)]
        # A position's choices are None or a tuple with an entry per scanner (never empty): kept when a tuple.
        at = list(compress(zip(starts, found, strict=True), found))
        return _Places(cast(list[tuple[int, tuple[_Patterns | None, ...]]], at), set(keys))

    def _places_any(self, text: str) -> _Places:
        """``places`` for text that is not all ASCII (its keys are cut at the first non-ASCII character)."""
        by_key = self._by_key
        at: list[tuple[int, tuple[_Patterns | None, ...]]] = []
        for m in _WORD_START.finditer(text):
            pos = m.start()
            key = _key_at(text, pos)
            choices = by_key.get(key, _UNSET)
            if choices is _UNSET:
                choices = self._choices(key)
            if choices is not None:
                at.append((pos, choices))
        return _Places(at, None)


# --- classification --------------------------------------------------------------------------------


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


def _mask(text: str, places: _Places, exclude: _Scanner | None, slot: int, dispatch: _Dispatch) -> tuple[str, _Places]:
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
    topic: _CompiledTopic, slots: tuple[int, int, int], text: str, places: _Places, dispatch: _Dispatch
) -> tuple[float, list[str]]:
    exclude_slot, positive_slot, dampen_slot = slots
    masked, places = _mask(text, places, topic.exclude, exclude_slot, dispatch)
    words = _Words(masked)
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

    ``title`` and the lead of ``text`` (its first ``topics.lead_chars`` characters, cut at a space) are read
    as one passage; ``text`` may be empty (headline-only items).
    """
    text = lead(text, topics.lead_chars)
    blob = f"{title}\n{text}" if text else title
    if not blob.isascii():  # every character _QUOTES maps is non-ASCII
        blob = fold(blob, _QUOTES)
    dispatch = topics._dispatch
    places = dispatch.places(blob)
    result = Classification()
    for name, topic, slots in topics._plan:
        score, evidence = _score_topic(topic, slots, blob, places, dispatch)
        result.scores[name] = score
        if evidence:
            result.evidence[name] = evidence
        if score >= topic.threshold:
            result.topics.append(name)
    return result
