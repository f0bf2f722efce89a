"""Scanning an alternation of phrase regexes only where it can match (the classifier's engine; ``Scanner.match``
for condense's boilerplate lines).

A topic's alternation holds hundreds of phrases, and the regex engine tries every one of them, in order,
at every position where a word starts: that was nearly all of the time classify() took. A Scanner does
the same scan but, at each such position, tries only the alternatives that can start with the next few
characters there. From the parsed regex of each alternative it derives the lower-cased ASCII strings
that its matches can begin with (a superset: whatever is hard to follow, such as a wide character class,
just cuts a string short, which allows more), and at scan time it looks up the characters found at the
position. The alternatives it tries keep their order and those it skips cannot match there, so every
match, and the alternative credited with it, is the one the full alternation finds.

Nearly every alternative tried that way still fails (158 tries an item, 1.5 matches, on the benchmark's
feeds), mostly at a later word of a phrase that the text does not have at all. So a scanner also derives,
for each alternative, the keys one of which the text must have at some later word start for it to match
anywhere (``_requirement``), and skips it in a text that has none of them: one set look-up instead of a
failed match, for ~70% of the tries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import add
from re import _constants as _sre  # type: ignore[attr-defined]
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from typing import Any, cast

import structlog

log = structlog.get_logger(__name__)


def at_word_start(alternatives: Iterable[str]) -> str:
    """The regex every scan uses: one of ``alternatives`` (phrase regexes), starting a word."""
    return r"(?<!\w)(?:" + "|".join(alternatives) + ")"


class LazyAlternation:
    """The case-insensitive alternation ``(?<!\\w)(?:alt|alt|...)``, compiled on first use: a context rule's
    list (shared by every rule with the same list), and the base of a ``Scanner``. Loading had compiled
    every one: the shipped rules' context lists (~190 of ~6,000 phrases in all, mostly the same vocabularies
    again) were over half of it, and an indexed scanner never needs its whole alternation. Each alternative
    is parsed at load all the same (``PhraseBook.check``, ``Scanner``), so a pattern error still shows there."""

    def __init__(self, alternatives: list[str]) -> None:
        self.alternatives = alternatives
        self._pattern: re.Pattern[str] | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        pattern = self._pattern
        if pattern is None:  # two threads may both compile it: the same pattern either way
            pattern = self._pattern = re.compile(at_word_start(self.alternatives), re.IGNORECASE)
        return pattern

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text)


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
WORD_START = re.compile(r"(?<!\w)")  # where an alternation "(?<!\w)(?:...)" may match
_GROUP_NAME = re.compile(r"\(\?P<(\w+)>")  # the named group an alternative of an alternation opens with
_UNSET: Any = object()

_Node = tuple[Any, Any, int]  # a parsed regex item (op, argument) and the flags in force there
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
# ASCII bytes -> themselves if a word character (what "\w" matches), else a space: see word_starts
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


def word_starts(text: str) -> list[int]:
    r"""Where "(?<!\w)" matches in ASCII ``text``: at 0, and after each character that is not a word character.
    Found by splitting the text's bytes there, ~6x faster than a regex scan yielding a match object per place."""
    pieces = text.encode("ascii").translate(_SEPARATORS).split(b" ")
    return [0, *map(add, accumulate(map(len, pieces[:-1])), range(1, len(pieces)))]


# alternatives to try at a place, in order, each with its ``_requirement``; the first match counts
_Patterns = tuple[tuple[re.Pattern[str], frozenset[str] | None], ...]


@dataclass(slots=True)
class Places:
    """A text's positions where some scanner has alternatives to try, with those alternatives per scanner
    (None for a scanner with nothing that can match there)."""

    at: list[tuple[int, tuple[_Patterns | None, ...]]]
    keys: set[str] | None  # the key at every word start of an ASCII text, for ``_requirement``; else None


class Scanner(LazyAlternation):
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
        self._at_key: dict[str, _Patterns | None] = {}  # ``match``'s look-ups
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
            rx = self._single[i] = re.compile(at_word_start([self.alternatives[i]]), re.IGNORECASE)
        return rx

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        """What ``self.pattern.match(text, pos)`` finds, trying only the alternatives that can begin at ``pos``:
        for whole-line patterns (``condense``'s boilerplate lines), which a line can begin as few of."""
        if not self.indexed:
            return self.pattern.match(text, pos)
        key = _key_at(text, pos)
        patterns = self._at_key.get(key, _UNSET)
        if patterns is _UNSET:
            if len(self._at_key) >= 50_000:
                self._at_key.clear()
            patterns = self._at_key[key] = self.for_key(key)
        for rx, _required in patterns or ():  # a requirement needs the whole text's keys: not worth it here
            m = rx.match(text, pos)
            if m is not None:
                return m
        return None

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

    def scan(self, text: str, places: Places, slot: int) -> list[re.Match[str]]:
        """The matches ``self.pattern.finditer(text)`` yields; ``places`` is ``Dispatch.places(text)`` and
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


class Dispatch:
    """For all the scanners of a topic set: which alternatives each tries at each position of a text.

    Remembers that per lookup key (``_key_at``), a few characters, so a text costs one dictionary look-up
    per position where a word starts. Filling in a key adds to dictionaries, which is safe from several
    threads.
    """

    _MAX_KEYS = 100_000

    def __init__(self, scanners: list[Scanner]) -> None:
        self.scanners = scanners
        self._by_key: dict[str, tuple[_Patterns | None, ...] | None] = {}
        self._same: dict[tuple[_Patterns | None, ...], tuple[_Patterns | None, ...]] = {}
        # Every prefix any scanner looks up. A key that is none of them is decided by its longest proper
        # prefix that is (see Scanner.choice), so it shares that shorter key's entry: most words a
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

    def places(self, text: str) -> Places:
        """The positions of ``text`` where some scanner has an alternation to try, with those alternations."""
        if not text.isascii():
            return self._places_any(text)
        by_key = self._by_key
        low = text.lower()
        starts = word_starts(low)
        n = _PREFIX_LEN
        keys = [low[pos : pos + n] for pos in starts]
        found = list(map(by_key.get, keys, repeat(_UNSET)))
        if _UNSET in found:
            found = [self._choices(key) if choices is _UNSET else choices
                     for key, choices in zip(keys, found, strict=True)]
        # A position's choices are None or a tuple with an entry per scanner (never empty): kept when a tuple.
        at = list(compress(zip(starts, found, strict=True), found))
        return Places(cast(list[tuple[int, tuple[_Patterns | None, ...]]], at), set(keys))

    def _places_any(self, text: str) -> Places:
        """``places`` for text that is not all ASCII (its keys are cut at the first non-ASCII character)."""
        by_key = self._by_key
        at: list[tuple[int, tuple[_Patterns | None, ...]]] = []
        for m in WORD_START.finditer(text):
            pos = m.start()
            key = _key_at(text, pos)
            choices = by_key.get(key, _UNSET)
            if choices is _UNSET:
                choices = self._choices(key)
            if choices is not None:
                at.append((pos, choices))
        return Places(at, None)
