"""Dedupe signatures and decisions: pure functions on items, no Redis here.

Three levels, each stricter about what it needs and looser about what it accepts:

1. exact: canonical URL and guid digests (``exact_keys``).
2. near-duplicate text: a ``TextSignature`` holds 12-bit fingerprints of the first ``SIG_TOKENS`` distinct
   content words. Two texts are near-duplicates when their fingerprint sets differ in at most 2 elements
   (3 for longer texts): one word changed, added or removed, an outlet suffix, case and punctuation.
   ``lsh_buckets`` splits the fingerprints into ``GROUPS`` groups by value and emits one bucket per group
   (a whole short signature is one bucket); a near-duplicate touches at most 3 groups and so leaves one
   untouched, and shares that bucket (``is_near_duplicate`` checks that too, so the guarantee holds by
   construction). Four buckets per item keep the index small: each is one Redis key. Texts of
   ``MIN_EXACT_TOKENS`` to ``MIN_TOKENS`` content words (most headlines) match only with the same words.
3. same story: ``StoryFeatures`` keeps the significant terms of a headline (stopwords out, light stemming,
   number words as digits, spelling variants folded: "U.S."/"United States", "Pakistani"/"Pakistan",
   "GOP"/"Republicans", "$2M"/"2 million"; capitalised names marked as entities); ``story_score`` is an
   IDF-weighted overlap that needs shared names and is cut when each side names a place or person the
   other lacks, or when each names only armed conflicts the other does not (``_THEATRES_TEXT``). A story
   remembers up to ``MAX_ALSO`` other wordings of later members (``also``) and scores the best of its
   descriptions, so a paraphrase of any member can join.

The Redis index that stores these is written by ``worker/publish.py`` as ``worker/stories.py`` decides.
IDF statistics come from ``worker/data/idf.json``, built offline by ``python -m worker.evaluate_dedupe build-idf``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from importlib import resources
from itertools import chain
from typing import NamedTuple, cast

from pydantic import BaseModel, Field

from livebrief.config import STORY_CACHE
from livebrief.models import Item
from livebrief.urls import canonical_url, url_hash

__all__ = [
    "StoryFeatures",
    "TextSignature",
    "exact_keys",
    "index_terms",
    "is_near_duplicate",
    "lsh_buckets",
    "merge_features",
    "story_features",
    "story_score",
    "story_scorer",
    "text_signature",
]

# Level 2 parameters.
MIN_TOKENS = 8  # fewer distinct content words than this: only an exact match (same words) counts
MIN_EXACT_TOKENS = 5  # fewer than this: no signature at all, texts this short match by accident
SIG_TOKENS = 24  # fingerprints kept: the first distinct content words of title + text
LONG_TOKENS = 16  # at this size both sides may differ by MAX_DIFF_LONG fingerprints instead of MAX_DIFF
MAX_DIFF = 2
# A name this rare (IDF, as ``_View.rare_entities``) swapped for another one makes texts of otherwise the
# same words two events; a common one (Trump, Ukraine) is as often an added word on each side.
RARE_NAME_IDF = 4.0
MAX_DIFF_LONG = 3
GROUPS = 4  # GROUPS > MAX_DIFF_LONG: a near-duplicate leaves at least one group of fingerprints untouched
# Only the start of a text is read (its first words decide both levels); cleaning a whole 20 kB article
# per item would cost more than everything else the worker does.
LEAD_CHARS = 2000
LEAD_WORDS = 40  # of the lead, story features read only these: the rest drifts off the event
MIN_BUCKET = 2  # a bucket of one fingerprint would be one common word shared by thousands of items
_FP_BITS = 12

# Level 3 parameters.
MAX_TERMS = 12  # terms kept per story, highest IDF first
# Eight, not fewer: a candidate must be found under two of them (worker/stories.py, MIN_TERM_HITS). With
# six, the corpus replay (worker/evaluate_dedupe.py) missed 6 merges that it made with no such rule; with
# eight it makes them all.
INDEX_TERMS = 8
MIN_SHARED = 2
MAX_ALSO = 2  # other wordings a story remembers besides its first item's
ALSO_MAX_JACCARD = 0.5  # an item whose terms overlap a kept description more than this adds nothing

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64_INDEX = {c: i for i, c in enumerate(_B64)}

_WORD = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*", re.UNICODE)
_ORDINAL = re.compile(r"^\d+(?:st|nd|rd|th)$")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
# " - Reuters", " | BBC News", " — The Guardian": a short trailing outlet name after a separator.
_OUTLET_SUFFIX = re.compile(r"\s+[-–—|:]\s+(?:[A-Z][\w.&']*\.?\s?){1,4}\s*$")
# Everything from a trailer to the end of the text goes, so a trailer must not match news: a credit names
# someone ("Reporting by Tomas Weller", not "reporting by journalists has been ..."), and one signs up for a
# newsletter or an account ("sign up for our ...", not "sign up for the army").
_BOILERPLATE = re.compile(
    r"(?:the post\b.{0,200}?\bappeared first on .*$|continue reading.*$|read more.*$|click here.*$|"
    r"\(?(?:reporting|editing|writing) by (?-i:[A-Z]).*$|sign up for (?:our|my|(?:a )?free|e-?mail|newsletters?"
    r"|the (?:\w+ ){0,3}(?:newsletter|briefing|alerts?|digest|podcast|email|edition)s?)\b.*$|subscribe to .*$|"
    r"all rights reserved.*$|©.*$)",
    re.IGNORECASE | re.DOTALL,
)
# One of these occurs (lower-cased) wherever _BOILERPLATE can match; most texts have none.
_BOILERPLATE_NEEDLES = ("appeared first on", "continue reading", "read more", "click here", "ing by ", "sign up for",
                        "subscribe to", "all rights reserved", "©")

_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
    "twenty": "20",
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "hundred": "100",
    "dozen": "12",
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
    "fourth": "4th",
    "fifth": "5th",
    "sixth": "6th",
    "seventh": "7th",
    "eighth": "8th",
    "ninth": "9th",
    "tenth": "10th",
    "eleventh": "11th",
    "twelfth": "12th",
}

_STOPWORDS_TEXT = """
    a about above according across after again against ago ahead all almost along already also although
    am among amid amidst an and another any anyone anything are around as at away back be became because
    become been before behind being below between both but by can cannot could did do does doing done
    down during each either else even ever every few for from further get gets getting got had has have
    having he her here hers herself him himself his how however i if in inside instead into is it its
    itself just last least less like likely many may me might more most much must my myself near nearly
    neither never new next no nor not now of off often on once one only onto or other others our ours out
    outside over own per perhaps rather really same says said say saying see seen she should since so
    some still such than that the their theirs them themselves then there these they this those though
    through thus to today too toward towards under until up upon us use used very via want wants was we
    week were what whatever when where whether which while who whom whose why will with within without
    would yet you your yours yesterday tomorrow tonight day days year years time times amp s t don doesn
    didn isn aren wasn weren won wouldn couldn shouldn hasn haven hadn ll ve re d m o news report reports
    reported update updates live breaking video watch photos opinion analysis exclusive via
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

# Spelling variants of one name or thing: demonyms to their country ("Pakistani" -> "pakistan", so
# "Pakistani government approves" meets "Pakistan passes"), party nicknames, abbreviations. Keys are
# lower-case words after the possessive is cut; values go through the usual normalisation.
_SYNONYMS_TEXT = """
    afghan:afghanistan american:america americans:america australian:australia austrian:austria
    belarusian:belarus brazilian:brazil british:uk britain:uk canadian:canada chilean:chile chinese:china
    colombian:colombia cuban:cuba danish:denmark dutch:netherlands egyptian:egypt ethiopian:ethiopia
    european:europe finnish:finland french:france german:germany greek:greece hungarian:hungary
    indian:india iranian:iran iraqi:iraq irish:ireland israeli:israel italian:italy japanese:japan
    kenyan:kenya korean:korea lithuanian:lithuania mexican:mexico nigerian:nigeria norwegian:norway
    pakistani:pakistan palestinian:palestine polish:poland russian:russia saudi:saudi scottish:scotland
    spanish:spain swedish:sweden swiss:switzerland syrian:syria taiwanese:taiwan turkish:turkey
    ukrainian:ukraine venezuelan:venezuela welsh:wales
    gop:republican republicans:republican dems:democrat democrats:democrat
    coronavirus:covid guv:governor gov:governor govt:government prez:president
    vaccination:vaccine vaccinations:vaccine vaccinated:vaccine vax:vaccine jab:vaccine jabs:vaccine
    pm:minister premier:minister thai:thailand
    jan:january feb:february apr:april aug:august sep:september sept:september oct:october nov:november
    dec:december
"""
_SYNONYMS = dict(pair.split(":") for pair in _SYNONYMS_TEXT.split())
# Several-word names folded into one word before tokenising (also in near-duplicate signatures).
# (what the text must contain for the pattern to match: one of these, or ``_SCALED`` when none; pattern,
# replacement): the cheap substring tests skip most passes, and every item's text goes through these twice.
# Not "U" alone: nearly every text about Ukraine holds one.
_PHRASES = [
    (("United", "U.S", "US"), re.compile(r"\bUnited\s+States(?:\s+of\s+America)?\b|\bU\.S\.(?:A\.?)?|\bUSA?\b"), "USA"),
    (("United", "U.K"), re.compile(r"\bUnited\s+Kingdom\b|\bU\.K\.?"), "UK"),
    (("United", "U.N"), re.compile(r"\bUnited\s+Nations\b|\bU\.N\.?"), "UN"),
    (("European",), re.compile(r"\bEuropean\s+Union\b"), "EU"),
    (("-19",), re.compile(r"\bCOVID-19\b|\bCovid-19\b|\bcovid-19\b"), "Covid"),
    ((), re.compile(r"\b(\d+(?:[.,]\d+)?)\s*(?:million|mln|m)\b", re.IGNORECASE), r"\1m"),
    ((), re.compile(r"\b(\d+(?:[.,]\d+)?)\s*(?:billion|bn|b)\b", re.IGNORECASE), r"\1b"),
]
# The two patterns without needles need a number followed by "m" or "b" (in any case): most news has
# numbers, few with a scale, and each of those two passes cost ~4 us.
_SCALED = re.compile(r"\d\s*[mb]", re.IGNORECASE)


class TextSignature(BaseModel):
    """Near-duplicate signature: ``fp`` packs sorted 12-bit word fingerprints, two URL-safe base64
    characters each (about 60 bytes of JSON for a long text); ``keys`` those of its numbers and names."""

    fp: str = Field(description="sorted 12-bit fingerprints of content words, 2 base64 chars each")
    # Empty in records written before it existed: their near-duplicates are then matched as before.
    keys: str = Field(default="", description="which fingerprints of fp are numbers, rare names or names "
                                              "of a conflict: their places in it, one base64 char each")


class StoryFeatures(BaseModel):
    """What a story is about, compact enough to store per story: ``terms`` are normalised significant
    words, highest IDF first; ``entities`` is the subset that came from capitalised names."""

    terms: list[str]
    entities: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    published: float = 0.0
    also: list[list[str]] = Field(
        default_factory=list,
        description="terms of up to MAX_ALSO later items worded differently, entities marked with '@'",
    )


def exact_keys(item: Item) -> list[tuple[str, str]]:
    """("url", digest) and ("guid", digest) pairs that identify the item exactly."""
    keys: list[tuple[str, str]] = []
    canonical = canonical_url(item.url)
    if canonical:
        keys.append(("url", url_hash(canonical)))
    # A permalink guid names the same URL: one key (one long-term mark, worker/marks.py) is enough.
    if item.guid and (canonical is None or canonical_url(item.guid) != canonical):
        keys.append(("guid", url_hash(item.guid.strip())))
    return keys


# --- normalisation -------------------------------------------------------------------------------


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    scaled = _SCALED.search(text) is not None
    for needles, pattern, repl in _PHRASES:
        if any(needle in text for needle in needles) if needles else scaled:
            text = pattern.sub(repl, text)
    return text


def _strip_title(title: str) -> str:
    title = _clean(title).strip()
    stripped = _OUTLET_SUFFIX.sub("", title)
    # Keep the suffix when stripping it would leave almost nothing ("Ukraine - Live").
    return stripped if len(stripped.split()) >= 3 else title


def _strip_text(text: str) -> str:
    text = _clean(text)
    low = text.lower()
    if any(needle in low for needle in _BOILERPLATE_NEEDLES):
        text = _BOILERPLATE.sub("", text)
    return text


@lru_cache(maxsize=65536)
def _normalise(word: str) -> str:
    """Lower-case and fold spelling variants and regular inflections: "Zelenskyy's" -> "zelensky",
    "strikes" -> "strike", "killed" -> "kil", "seven" -> "7", "1,000" -> "1000"."""
    w = word.lower()
    if w.endswith("'s"):
        w = w[:-2]
    w = w.replace("'", "")
    w = _SYNONYMS.get(w, w)
    if _NUMBER.match(w):
        return w.replace(",", "")
    if w in _NUMBER_WORDS:
        return _NUMBER_WORDS[w]
    w = w.replace(".", "")
    if len(w) > 4:
        if w.endswith("ies") and len(w) > 5:
            w = w[:-3] + "y"
        elif w.endswith("sses"):
            w = w[:-2]
        elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        if w.endswith("ing") and len(w) > 6:
            w = w[:-3]
        elif w.endswith("ed") and len(w) > 5:
            w = w[:-2]
    # Collapse doubled letters so transliterations agree: "Zelenskyy" and "Zelensky".
    out: list[str] = []
    for ch in w:
        if not out or out[-1] != ch:
            out.append(ch)
    w = "".join(out)
    if w.endswith("y") and w[-2:] in ("iy", "yy"):
        w = w[:-2] + "y"
    return w


def _content_words(cleaned: str) -> list[tuple[str, str]]:
    """(original word, normalised word) pairs for the words that carry content, in text order, of a text
    already through ``_clean`` (``_strip_title``/``_strip_text``)."""
    return list(_iter_content_words(cleaned))


# Word as written -> its normalised form, or "" for a word that carries no content. Every item's words
# pass here twice (signature, features) and news repeats its vocabulary: one dictionary look-up per word
# instead of lower-casing, two stop-word tests and a call through _normalise's cache.
_CONTENT: dict[str, str] = {}
_CONTENT_SIZE = 200_000
_CONTENT_WORD_MAX = 40  # longer "words" are rare in news and could be a hostile feed's: not kept


def _content_form(raw: str) -> str:
    norm = "" if raw.lower() in _STOPWORDS else _normalise(raw)
    if norm in _STOPWORDS or (len(norm) == 1 and not norm.isdigit()):
        norm = ""
    if len(raw) <= _CONTENT_WORD_MAX:
        if len(_CONTENT) >= _CONTENT_SIZE:
            _CONTENT.clear()
        _CONTENT[raw] = norm
    return norm


def _content_of(raw_words: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(word, normalised word) for those of ``raw_words`` that carry content, lazily."""
    forms = _CONTENT
    for raw in raw_words:
        norm = forms.get(raw)
        if norm is None:
            norm = _content_form(raw)
        if norm:
            yield raw, norm


def _iter_content_words(cleaned: str) -> Iterator[tuple[str, str]]:
    """``_content_words`` lazily: a signature needs only the first few of a long text's words."""
    return _content_of(m.group() for m in _WORD.finditer(cleaned))


# --- level 2: near-duplicate text ------------------------------------------------------------------


@lru_cache(maxsize=65536)  # ~24 words an item, from a vocabulary news keeps repeating
def _fingerprint(word: str) -> int:
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=2).digest()
    return int.from_bytes(digest, "big") >> (16 - _FP_BITS)


def _encode(fps: list[int]) -> str:
    return "".join(_B64[f >> 6] + _B64[f & 63] for f in fps)


def _decode(fp: str) -> list[int]:
    return [_B64_INDEX[fp[i]] << 6 | _B64_INDEX[fp[i + 1]] for i in range(0, len(fp), 2)]


def text_signature(title: str, text: str) -> TextSignature | None:
    """The near-duplicate signature of an item, or None when it has fewer than ``MIN_EXACT_TOKENS``
    distinct content words (short texts collide by accident, so they never match at this level).
    Below ``MIN_TOKENS`` words only the same set of words matches (a re-posted headline)."""
    title_words, head_words, rest, title_case = _words_of(title, text)
    # After a lead's first words, the rest of it, read only as far as needed (a lead of few words).
    rest_words = (raw for chunk in rest for raw in _WORD.findall(chunk))
    words: dict[str, None] = {}  # distinct, in order
    names: list[str] = []  # those of them that name someone or something, by ``_is_name``
    # The title, the lead's first words, the rest of the lead (in none of Title Case, nor a first word).
    for raw_words, in_title_case in ((title_words, title_case[0]), (head_words, title_case[1]), (rest_words, False)):
        first = raw_words[0] if isinstance(raw_words, list) and raw_words else None
        for raw, norm in _content_of(raw_words):
            if norm in words:
                continue
            words[norm] = None
            # A key's name is written with a capital, even where the rule asks the corpus (in Title Case).
            if raw[0].isupper() and _is_name(raw, norm, in_title_case or raw is first):
                names.append(norm)
            if len(words) == SIG_TOKENS:
                break
        else:
            continue
        break
    fps = sorted({_fingerprint(w) for w in words})
    if len(fps) < MIN_EXACT_TOKENS:
        return None
    weight = _idf().weights.__getitem__
    rare = (name for name in names if weight(name) >= RARE_NAME_IDF)
    conflicts = (word for word in words if word in _THEATRE)  # names, however written
    keys = {_fingerprint(w) for w in chain(filter(str.isdigit, words), rare, conflicts)}
    return TextSignature(fp=_encode(fps), keys="".join(_B64[i] for i, f in enumerate(fps) if f in keys))


def _is_name(raw: str, norm: str, capitals_say_nothing: bool) -> bool:
    """Whether a content word (as written, normalised) names someone or something: by its capital, except
    where capitals say nothing (Title Case, a sentence's first word), where the corpus statistics decide
    (``proper``: words the corpus mostly capitalises). Story entities and signature keys both use it."""
    if capitals_say_nothing:
        return norm in _idf().proper
    return raw[:1].isupper() or (raw.isupper() and len(raw) > 1)


def _keys(sig: TextSignature) -> set[int]:
    """The fingerprints of ``sig`` that are numbers, rare names or names of a conflict."""
    fp = sig.fp
    return {_B64_INDEX[fp[2 * i]] << 6 | _B64_INDEX[fp[2 * i + 1]] for i in map(_B64_INDEX.__getitem__, sig.keys)}


def lsh_buckets(sig: TextSignature) -> list[tuple[int, str]]:
    """(band, bucket) pairs: one per fingerprint group holding at least ``MIN_BUCKET`` fingerprints (one for
    a whole short signature). Every pair ``is_near_duplicate`` accepts shares at least one of them."""
    return _buckets(sig.fp)


@lru_cache(maxsize=8192)
def _buckets(fp: str) -> list[tuple[int, str]]:
    groups: list[list[str]] = [[] for _ in range(GROUPS)]
    for i in range(0, len(fp), 2):
        value = _B64_INDEX[fp[i]] << 6 | _B64_INDEX[fp[i + 1]]
        groups[value % GROUPS].append(fp[i : i + 2])
    if len(fp) // 2 < MIN_TOKENS:
        return [(0, fp)]  # short texts match only with the very same words: one bucket holds them all
    return [(band + 1, "".join(members)) for band, members in enumerate(groups) if len(members) >= MIN_BUCKET]


def is_near_duplicate(a: TextSignature, b: TextSignature) -> bool:
    """True when the two texts differ by at most a couple of words (see module docstring)."""
    fa, fb = set(_decode(a.fp)), set(_decode(b.fp))
    smaller = min(len(fa), len(fb))
    if smaller < MIN_EXACT_TOKENS:
        return False
    if smaller < MIN_TOKENS and fa != fb:
        return False
    limit = MAX_DIFF_LONG if smaller >= LONG_TOKENS else MAX_DIFF
    if len(fa ^ fb) > limit:
        return False
    # A number or a rare name swapped for another is another event told in the same words: "day 100" and
    # "day 101" of a daily summary, the same shelling report for Kharkiv and for Donetsk; so is a conflict's
    # name ("Security Council to meet on Ukraine", "... on Gaza"), however common. The story
    # level may still join them, within its window and with its checks on names and numbers.
    if _keys(a) - fb and _keys(b) - fa:
        return False
    return bool(set(_buckets(a.fp)) & set(_buckets(b.fp)))


# --- level 3: same story ---------------------------------------------------------------------------


class _Weights(dict[str, float]):
    """Term -> IDF weight; indexed with a term the corpus never saw, the weight of such a term (``get`` is
    unchanged). Its ``__getitem__`` is a sort key looked up in C for every term the corpus saw."""

    def __init__(self, weights: dict[str, float], unseen: float) -> None:
        super().__init__(weights)
        self.unseen = unseen

    def __missing__(self, term: str) -> float:
        return self.unseen


class _Idf:
    def __init__(self, n_docs: int, df: dict[str, int], proper: frozenset[str]) -> None:
        self.proper = proper
        # Scoring weighs every term of both sides of every candidate pair: one dict.get per term, with
        # the value for a word the corpus never saw as its default, beats a log or a memo per term.
        self.unseen = math.log((n_docs + 1) / 1.5)
        self.weights = _Weights({term: math.log((n_docs + 1) / (count + 0.5)) for term, count in df.items()},
                                self.unseen)

    def __call__(self, term: str) -> float:
        return self.weights.get(term, self.unseen)


@lru_cache(maxsize=1)
def _idf() -> _Idf:
    raw = resources.files("worker").joinpath("data/idf.json").read_text(encoding="utf-8")
    data = json.loads(raw)
    return _Idf(int(data["n_docs"]), dict(data["df"]), frozenset(data.get("proper", [])))


def _is_title_case(words: list[str]) -> bool:
    letters = [w for w in words if w[:1].isalpha() and w.lower() not in _STOPWORDS]
    if len(letters) < 3:
        return False
    return sum(w[:1].isupper() for w in letters) >= 0.7 * len(letters)


class _Words(NamedTuple):
    title: list[str]  # the words of the stripped title
    head: list[str]  # those of the lead's first ``LEAD_WORDS`` words
    rest: list[str]  # the rest of the lead, split at whitespace only (a signature may read on into it)
    title_case: tuple[bool, bool]  # whether the title, the head, are in Title Case (``_is_title_case``)


@lru_cache(maxsize=64)  # prepare reads an item's words twice: for its signature, then for its features
def _words_of(title: str, text: str) -> _Words:
    lead = _strip_text(text[:LEAD_CHARS]).split()
    title_words, head_words = _WORD.findall(_strip_title(title)), _WORD.findall(" ".join(lead[:LEAD_WORDS]))
    return _Words(title_words, head_words, lead[LEAD_WORDS:], (_is_title_case(title_words), _is_title_case(head_words)))


# Armed conflicts in the news, each named by its places, parties and leaders. Two items that each name only
# conflicts the other does not ("UN Security Council meets on Ukraine", "... on Gaza") report two events,
# however alike the rest: names this common are no rare names (``RARE_NAME_IDF``), so nothing else cuts them.
_THEATRES_TEXT = {
    "russia-ukraine": """ukraine ukrainian russia russian kyiv kiev kharkiv kharkov odesa odessa mariupol lviv donbas
        donbass donetsk luhansk lugansk crimea kherson zaporizhzhia zaporizhia mykolaiv chernihiv sumy dnipro bucha
        irpin severodonetsk sievierodonetsk lysychansk izium melitopol azovstal belgorod kremlin moscow putin
        zelensky zelenskyy zelenskiy lavrov kuleba shoigu belarus belarusian minsk lukashenko""",
    "israel-palestine": "israel israeli gaza palestine palestinian palestinians hamas jerusalem jenin netanyahu idf",
    "lebanon": "lebanon lebanese beirut hezbollah",
    "syria": "syria syrian damascus aleppo idlib assad",
    "yemen": "yemen yemeni houthi houthis sanaa",
    "ethiopia": "ethiopia ethiopian tigray tigrayan amhara abiy eritrea eritrean",
    "afghanistan": "afghanistan afghan kabul taliban",
    "myanmar": "myanmar burma rohingya",
    "sudan": "sudan sudanese khartoum darfur",
    "sahel": "mali malian burkina sahel",
    "iraq": "iraq iraqi baghdad",
    "libya": "libya libyan tripoli",
    "somalia": "somalia somali mogadishu shabaab",
}


# normalised term -> its conflict
_THEATRE = {_normalise(word): name for name, words in _THEATRES_TEXT.items() for word in words.split()}


def _terms_and_entities(title: str, text: str) -> tuple[list[str], set[str]]:
    entities: set[str] = set()
    terms: dict[str, None] = {}
    words = _words_of(title, text)
    for raw_words, title_case in zip((words.title, words.head), words.title_case, strict=True):
        first = raw_words[0] if raw_words else ""
        for raw, norm in _content_of(raw_words):
            terms.setdefault(norm, None)
            if not norm.isdigit() and _is_name(raw, norm, title_case or raw == first):
                entities.add(norm)
    return list(terms), entities


def story_features(title: str, text: str, topics: list[str], published: float) -> StoryFeatures:
    """The significant terms of an item (title first, then the lead of its text), highest IDF first."""
    words, entities = _terms_and_entities(title, text)
    # Python's sort stays stable when reversed: terms of equal weight stay in text order.
    ranked = sorted(words, key=_idf().weights.__getitem__, reverse=True)[:MAX_TERMS]
    return StoryFeatures(
        terms=ranked,
        entities=[t for t in ranked if t in entities],
        topics=sorted(topics),
        published=published,
    )


def merge_features(story: StoryFeatures, item: StoryFeatures) -> StoryFeatures:
    """The story's features after ``item`` joined it. The first item's terms stay the story's main
    description (a union drifts: each merge widens the story until unrelated events match it); an
    item worded differently from every description kept so far is remembered in ``also`` (the
    ``MAX_ALSO`` most recent), so a later report that paraphrases it can still match, each description
    scored on its own. ``published`` becomes the latest, so a developing story stays within the window."""
    also = story.also
    if not item.also and all(_jaccard(item.terms, terms) < ALSO_MAX_JACCARD for terms in _descriptions(story)):
        packed = [f"@{t}" if t in item.entities else t for t in item.terms]
        also = [*story.also, packed][-MAX_ALSO:]
    return story.model_copy(update={"published": max(story.published, item.published), "also": also})


def _jaccard(a: list[str], b: list[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def _descriptions(story: StoryFeatures) -> list[list[str]]:
    return [story.terms, *([t.lstrip("@") for t in terms] for terms in story.also)]


class _View:
    """One description of a story (terms, the names among them) with what scoring needs precomputed.

    ``base`` is each term's weight before the name boost (its IDF, halved for a number); a pair's weight
    of a side is then ``base_sum`` plus 0.3 x the base of its terms that either side marks as names.
    The weights are computed on a view's first pair that shares enough terms (``fill``): about three
    pairs in four share fewer and are decided on the term sets alone.
    """

    __slots__ = ("terms", "entities", "base", "base_sum", "entity_boost", "rare", "rare_entities", "ordinals",
                 "theatres")

    def __init__(self, terms: set[str], entities: set[str]) -> None:
        self.terms = terms
        self.entities = entities
        self.base: dict[str, float] | None = None

    def fill(self) -> dict[str, float]:
        idf = _idf()
        weight, unseen = idf.weights.get, idf.unseen
        terms, entities = self.terms, self.entities
        full = {t: weight(t, unseen) for t in terms}
        self.base = base = {t: w * 0.5 if t.isdigit() else w for t, w in full.items()}
        self.base_sum = sum(base.values())
        self.entity_boost = 0.3 * sum(base[t] for t in entities if t in base and not t.isdigit())
        self.rare = {t for t, w in full.items() if w >= 5.0}
        self.rare_entities = {t for t in entities if weight(t, unseen) >= 4.0}
        self.ordinals = {t for t in terms if _ORDINAL.match(t)}
        self.theatres = {_THEATRE[t] for t in terms if t in _THEATRE}
        return base

    def weight(self, other: _View) -> float:
        """Sum of this side's term weights, names being those of either side (both sides filled)."""
        base = cast(dict[str, float], self.base)
        extra = sum(base[t] for t in self.terms & other.entities if t not in self.entities and not t.isdigit())
        return self.base_sum + self.entity_boost + 0.3 * extra


# Features object id -> (that object, its views), least recently used first. A candidate story is scored
# against many items while its record stays cached (see worker/records.py); the object is kept so its id
# cannot be reused meanwhile. Evicted one at a time: clearing the lot when full made every cached story
# compute its weights again.
_VIEWS: OrderedDict[int, tuple[StoryFeatures, list[_View]]] = OrderedDict()
_VIEWS_SIZE = 2 * STORY_CACHE  # as ``worker.records.cache_stories`` sets it


def cache_views(count: int) -> None:
    """Keep the scoring views of up to ``count`` story versions (set by ``worker.records.cache_stories``)."""
    global _VIEWS_SIZE
    _VIEWS_SIZE = count
    while len(_VIEWS) > count:
        _VIEWS.popitem(last=False)


def _views(story: StoryFeatures) -> list[_View]:
    """Each description of the story: the first item's, then ``also``."""
    key = id(story)
    cached = _VIEWS.get(key)
    if cached is not None and cached[0] is story:
        try:
            _VIEWS.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile (tests race workers in threads)
            pass
        return cached[1]
    out = [_View(set(story.terms), set(story.entities))]
    for terms in story.also:
        out.append(_View({t.lstrip("@") for t in terms}, {t[1:] for t in terms if t.startswith("@")}))
    _VIEWS[key] = (story, out)
    if len(_VIEWS) > _VIEWS_SIZE:
        try:
            _VIEWS.popitem(last=False)
        except KeyError:
            pass
    return out


def index_terms(features: StoryFeatures) -> list[str]:
    """A few discriminative terms to look candidates up by: entities and rare words, highest IDF first."""
    idf = _idf()
    ranked = [t for t in features.terms if not t.isdigit() and idf(t) >= 3.0]
    entities = [t for t in ranked if t in features.entities]
    rest = [t for t in ranked if t not in features.entities]
    return (entities + rest)[:INDEX_TERMS]


def story_score(a: StoryFeatures, b: StoryFeatures) -> float:
    """How likely two items report the same event, in [0, 1]; symmetric. A story that remembers other
    wordings (``also``) scores the best of its descriptions (see ``_pair_score``)."""
    views_a, views_b = _views(a), _views(b)
    return max(_pair_score(va, vb) for va in views_a for vb in views_b)


def story_scorer(item: StoryFeatures) -> Callable[[StoryFeatures], float]:
    """``story_score`` of ``item`` against stories, one call per story: an item is scored against ~20
    candidates per batch, so its side is looked up once, and pairs sharing too few terms to score are
    skipped before any call."""
    mine = _views(item)

    def score(story: StoryFeatures) -> float:
        best = 0.0
        for theirs in _views(story):
            for view in mine:
                if len(view.terms & theirs.terms) >= MIN_SHARED:
                    best = max(best, _pair_score(view, theirs))
        return best

    return score


def _pair_score(a: _View, b: _View) -> float:
    """How likely two items report the same event, in [0, 1]; symmetric.

    IDF-weighted overlap of significant terms (the mean of overlap over the smaller side and over the
    larger), zero unless at least ``MIN_SHARED`` terms are shared including a name or a rare word, and
    cut when both sides name someone or somewhere the other does not (Kharkiv vs Odesa), give different
    ordinals ("second round" vs "third round") or name different conflicts only (Ukraine vs Gaza). Names
    weigh 1.3x, numbers 0.5x (they change as a story develops: "7 killed" then "12 killed").
    """
    shared = a.terms & b.terms
    if len(shared) < MIN_SHARED:
        return 0.0
    base = a.base if a.base is not None else a.fill()
    if b.base is None:
        b.fill()
    ea, eb = a.entities, b.entities
    if not any(t in ea or t in eb or t in a.rare for t in shared):
        return 0.0
    wa, wb = a.weight(b), b.weight(a)
    ws = sum(base[t] * 1.3 if (t in ea or t in eb) and not t.isdigit() else base[t] for t in shared)
    if wa <= 0 or wb <= 0:
        return 0.0
    score = 0.5 * (ws / min(wa, wb)) + 0.5 * (ws / max(wa, wb))
    if a.rare_entities - b.terms and b.rare_entities - a.terms:
        score *= 0.6
    # "second round of talks" vs "third round": ordinals that disagree name different events.
    if a.ordinals and b.ordinals and not a.ordinals & b.ordinals:
        score *= 0.5
    # "Security Council meets on Ukraine" vs "... on Gaza": conflicts that disagree, the same.
    if a.theatres and b.theatres and not a.theatres & b.theatres:
        score *= 0.5
    return max(0.0, min(1.0, score))
