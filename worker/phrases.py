"""The topics file's phrase language, translated to regular expressions (the syntax is documented at the
top of ``config/topics.yaml``; ``worker/classify.py`` compiles topics from it)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from re import _parser as _sre_parse  # type: ignore[attr-defined]

from worker.chars import fold
from worker.scanning import LazyAlternation

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
QUOTES = (("’", "'"), ("‘", "'"), ("“", '"'), ("”", '"'), ("–", "-"), ("—", "-"), ("\u00a0", " "))


class PhraseError(ValueError):
    """A phrase the rule language cannot translate; loading reports it as a ``ConfigError`` naming the topic."""


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
                raise PhraseError(f"{phrase!r}: unbalanced ')'")
        if ch.isspace() and depth == 0 and not in_class:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(ch)
    if depth:
        raise PhraseError(f"{phrase!r}: unbalanced '('")
    if current:
        tokens.append("".join(current))
    return tokens


def _token_regex(token: str, book: PhraseBook, depth: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "*":
            out.append(r"[\w']*")
        elif ch == "?":
            if not out or out[-1] in ("(?:", "|"):
                raise PhraseError(f"{token!r}: '?' must follow a letter or a group")
            out.append("?")
        elif ch == "[":
            # a character class such as [sz] in "neutrali[sz]ed" is passed through as written
            end = token.find("]", i + 1)
            if end < 0:
                raise PhraseError(f"{token!r}: unbalanced '['")
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
                raise PhraseError(f"unknown vocabulary '@{name.group(0) if name else ''}'")
            if depth > 3:
                raise PhraseError(f"'@{name.group(0)}': vocabularies nest too deeply")
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


def _phrase_body(phrase: str, book: PhraseBook, depth: int = 0) -> str:
    """Translate one phrase of the rule language into a regex without word boundaries (use ``book.body``:
    it keeps what it translated)."""
    phrase = fold(phrase, QUOTES).strip()
    if phrase.startswith("re:"):
        raw = phrase[3:].strip()
        if "(?P" in raw:
            raise PhraseError(f"{phrase!r}: named groups are not allowed in re: phrases")
        try:
            re.compile(raw)
        except re.error as exc:
            raise PhraseError(f"{phrase!r}: not a valid regular expression ({exc})") from exc
        return f"(?:{raw})"
    words = _tokens(phrase.lower())
    if not words or words == ["..."]:
        raise PhraseError(f"{phrase!r}: empty phrase")
    if words[0] == "..." or words[-1] == "...":
        raise PhraseError(f"{phrase!r}: '...' must sit between two words")
    parts: list[str] = []
    try:
        for i, word in enumerate(words):
            if word == "...":
                parts.append(_GAP)
                continue
            if "..." in word:
                # "(of )?... talks" would otherwise look for three literal dots and never match
                raise PhraseError(f"'...' must stand alone between spaces, not in {word!r}")
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
    except PhraseError as exc:
        raise PhraseError(f"{phrase!r}: {exc}") from exc
    return "".join(parts)


def phrase_regex(phrase: str, book: PhraseBook) -> str:
    """The regex of one phrase, ending at a word end; the alternation it joins checks the word start."""
    # Whole words only: "war" must not match "warn", "aid" not "said". The matching "starts a word"
    # check is put once in front of a whole alternation (``scanning.at_word_start``) rather than per phrase:
    # then the regex engine rejects mid-word positions before trying any alternative, which is most of
    # the speed of classify().
    return book.body(phrase) + r"(?!\w)"


class PhraseBook:
    """One rule file's vocabularies, and each phrase's regex once translated: the same vocabularies fill
    many rules' context lists (~6,000 phrases, ~1,200 different, in the shipped rules)."""

    def __init__(self, vocab: Mapping[str, list[str]]) -> None:
        self.vocab = vocab
        self._bodies: dict[tuple[str, int], str] = {}  # (phrase, vocabulary depth) -> _phrase_body
        self._checked: set[str] = set()
        self._lists: dict[tuple[str, ...], LazyAlternation] = {}

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

    def context_list(self, phrases: list[str]) -> LazyAlternation | None:
        if not phrases:
            return None
        alternatives = plain_regexes(phrases, self)
        for alternative in alternatives:
            self.check(alternative)
        found = self._lists.get(key := tuple(alternatives))
        if found is None:
            found = self._lists[key] = LazyAlternation(alternatives)
        return found


def expand(phrases: Iterable[str], book: PhraseBook, where: str) -> list[str]:
    """``phrases`` with each one that is only ``@name`` replaced by that vocabulary's phrases (``where``
    names the list in the error for an unknown vocabulary)."""
    out: list[str] = []
    for phrase in phrases:
        if re.fullmatch(r"@[a-z0-9_]+", phrase):
            if phrase[1:] not in book.vocab:
                raise PhraseError(f"{where}: unknown vocabulary {phrase!r}")
            out.extend(book.vocab[phrase[1:]])
        else:
            out.append(phrase)
    return out


def plain_regexes(phrases: list[str], book: PhraseBook) -> list[str]:
    """The phrases' regexes, each once, longest first: the alternatives of a list without named groups."""
    return sorted({phrase_regex(p, book) for p in phrases}, key=len, reverse=True)
