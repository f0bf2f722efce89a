"""Condensation: a clean headline and a short summary made only of whole sentences of the source.

``condense`` is a pure function that runs once per item in the worker's hot path, so every pattern is
compiled once at import and the text is read lazily: it stops as soon as the summary is full.

Headline. Outlet and section labels are taken off the ends of a title ("... - Reuters", "... | AP News",
"The Guardian: ...", "Live updates: ...", "UPDATE 2-..."); a dash-separated part is removed only when it
names the item's outlet (or, with no outlet given, a well-known one), because dashes also separate real
content ("Russia-Ukraine talks - what we know"). A pipe separates a headline from labels or from a packed
summary, so the first part that is not a label is the headline (a word or two before a much longer headline,
"Pakistan | Mob attacks ...", is a section name, so a label).

Summary. A line that breaks a sentence off (text hard-wrapped at a fixed width, a <br> in mid-sentence) is
joined with the line that continues it. Boilerplate lines are dropped (``is_boilerplate``), then sentences
are taken in source order from the start (the lead of a news text is its best summary) while they fit in
``max_chars``, and never ending inside a quotation. The summary only ever contains whole sentences of the
source, with one documented exception: when the first usable sentence alone (or the quotation it opens) is
longer than ``max_chars`` it is cut at a word boundary and ends with "…".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache

from pydantic import BaseModel

from worker.chars import fold
from worker.scanning import Scanner

__all__ = [
    "ELLIPSIS",
    "MAX_HEADLINE_CHARS",
    "Condensed",
    "clean_headline",
    "condense",
    "is_boilerplate",
]

ELLIPSIS = "…"
# Titles are bounded like every other input: a longer one is cut at a word boundary with "…".
MAX_HEADLINE_CHARS = 300


class Condensed(BaseModel):
    headline: str
    summary: str


# --------------------------------------------------------------------------------------------------
# Outlet and section labels

# Alias groups: naming any member as the outlet lets every member be stripped. With no outlet given,
# any member is stripped from a title's ends (they are outlets, not content, in that position).
_OUTLET_ALIASES: tuple[tuple[str, ...], ...] = (
    ("Reuters", "reuters.com"),
    ("AP", "AP News", "Associated Press", "The Associated Press", "apnews.com"),
    ("AFP", "Agence France-Presse", "France 24", "france24.com"),
    ("BBC", "BBC News", "BBC World Service", "bbc.co.uk", "bbc.com"),
    ("The Guardian", "Guardian", "theguardian.com"),
    ("The Observer",),
    ("CNN", "CNN International", "cnn.com"),
    ("NPR", "npr.org"),
    ("Al Jazeera", "Al Jazeera English", "aljazeera.com"),
    ("The New York Times", "New York Times", "NYT", "nytimes.com"),
    ("The Washington Post", "Washington Post", "washingtonpost.com"),
    ("The Wall Street Journal", "Wall Street Journal", "WSJ", "wsj.com"),
    ("Financial Times", "FT", "ft.com"),
    ("Bloomberg", "Bloomberg News", "bloomberg.com"),
    ("RFE/RL", "Radio Free Europe/Radio Liberty", "Radio Free Europe", "rferl.org"),
    ("Current Time", "currenttime.tv"),
    ("The Moscow Times", "themoscowtimes.com"),
    ("The Kyiv Independent", "Kyiv Independent", "kyivindependent.com"),
    ("Kyiv Post", "kyivpost.com"),
    ("Ukrainska Pravda", "pravda.com.ua"),
    ("Ukrinform", "ukrinform.net"),
    ("Meduza", "meduza.io"),
    ("TASS", "tass.com"),
    ("Interfax", "interfax.com"),
    ("Sky News", "news.sky.com"),
    ("CBC News", "CBC", "cbc.ca"),
    ("Global News", "globalnews.ca"),
    ("Fox News", "foxnews.com"),
    ("NBC News", "nbcnews.com"),
    ("CBS News", "cbsnews.com"),
    ("ABC News", "abcnews.go.com"),
    ("Politico", "politico.com", "politico.eu"),
    ("Axios", "axios.com"),
    ("The Hill", "thehill.com"),
    ("Euronews", "euronews.com"),
    ("DW", "Deutsche Welle", "dw.com"),
    ("The Independent", "independent.co.uk"),
    ("The Telegraph", "telegraph.co.uk"),
    ("Daily Mail", "Mail Online", "dailymail.co.uk"),
    ("The Times of Israel", "Times of Israel", "timesofisrael.com"),
    ("The Jerusalem Post", "Jerusalem Post", "jpost.com"),
    ("Haaretz", "haaretz.com"),
    ("Hindustan Times", "hindustantimes.com"),
    ("The Times of India", "Times of India", "timesofindia.indiatimes.com"),
    ("Eurosport", "eurosport.co.uk"),
    ("Rolling Stone", "rollingstone.com"),
    ("TechCrunch", "techcrunch.com"),
    ("The Verge", "theverge.com"),
    ("Ars Technica", "arstechnica.com"),
    ("Engadget", "engadget.com"),
    ("Business Insider", "Insider", "businessinsider.com"),
    ("Forbes", "forbes.com"),
    ("Newsweek", "newsweek.com"),
    ("USA Today", "usatoday.com"),
    ("Los Angeles Times", "LA Times", "latimes.com"),
    ("Yahoo News", "news.yahoo.com"),
    ("The Atlantic", "theatlantic.com"),
    ("The Economist", "economist.com"),
    ("HuffPost", "huffpost.com"),
    ("The Daily Beast", "thedailybeast.com"),
    ("Quanta Magazine", "quantamagazine.org"),
)

# Section labels that sit before a headline ("Opinion | ...", "Live updates: ...") or after it.
_SECTION_LABELS = frozenset(
    {
        "opinion", "analysis", "editorial", "comment", "commentisfree", "explainer", "factcheck",
        "factbox", "live", "liveupdates", "liveblog", "livebriefing", "livecoverage", "breaking",
        "breakingnews", "exclusive", "watch", "video", "photos", "inpictures", "podcast", "update",
        "updated", "news", "worldnews", "latestnews", "latest", "justin", "developing", "urgent",
    }
)  # fmt: skip

# Generic words an outlet adds to its name ("CBC News", "CNN Video", "The Guardian").
_GENERIC_SUFFIXES = ("news", "online", "video", "videos", "live", "com", "international")
_TLD_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "gov", "ac", "edu", "go"})
_HOST_PREFIXES = frozenset({"www", "www2", "m", "mobile", "amp", "edition", "en"})
_NON_ALNUM = re.compile(r"[\W_]+")
_MAX_LABEL_WORDS = 6
_MAX_LABEL_CHARS = 60


def _core(name: str) -> str:
    """The comparable core of a label: lowercase letters and digits, without "the" or "News"."""
    key = _NON_ALNUM.sub("", name.lower().replace("&", "and"))
    if key.startswith("the") and len(key) > 5:
        key = key[3:]
    stripped = True
    while stripped:
        stripped = False
        for suffix in _GENERIC_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix) + 1:
                key = key[: -len(suffix)]
                stripped = True
    return key


def _domain_cores(outlet: str) -> set[str]:
    """Cores of a domain-like outlet: "news.sky.com" gives sky, skynews and newssky."""
    host = outlet.lower().split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) < 2:
        return set()
    parts = parts[:-1]  # the TLD
    if len(parts) > 1 and parts[-1] in _TLD_SECOND_LEVEL:
        parts = parts[:-1]
    parts = [p for p in parts if p not in _HOST_PREFIXES] or parts
    cores = {_core("".join(parts)), _core("".join(reversed(parts)))}
    cores.update(_core(p) for p in parts if len(p) >= 3)
    return {c for c in cores if c}


_ALIAS_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset().union(*({_core(a)} | _domain_cores(a) if "." in a else {_core(a)} for a in group))
    for group in _OUTLET_ALIASES
)
_KNOWN_OUTLET_CORES: frozenset[str] = frozenset().union(*_ALIAS_GROUPS)


@lru_cache(maxsize=4096)
def _outlet_cores(outlet: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """Label cores naming ``outlet`` (its name or domain, plus its alias group), and those plus the
    well-known outlets. With no outlet, both are the well-known outlets."""
    if not outlet or not outlet.strip():
        return _KNOWN_OUTLET_CORES, _KNOWN_OUTLET_CORES
    cores = {_core(outlet)} | _label_domain_cores(outlet)
    for group in _ALIAS_GROUPS:
        if cores & group:
            cores |= group
    cores.discard("")
    return frozenset(cores), frozenset(cores) | _KNOWN_OUTLET_CORES


def _label_domain_cores(part: str) -> set[str]:
    return _domain_cores(part) if "." in part and " " not in part.strip() else set()


def _is_label(part: str, outlet_cores: frozenset[str], sections: bool) -> bool:
    """True when ``part`` of a title names the outlet (or, with ``sections``, a section)."""
    part = part.strip()
    if not part or len(part) > _MAX_LABEL_CHARS or part.count(" ") >= _MAX_LABEL_WORDS:
        return False
    if sections and _NON_ALNUM.sub("", part.lower()) in _SECTION_LABELS:
        return True
    return _core(part) in outlet_cores or not _label_domain_cores(part).isdisjoint(outlet_cores)


# A section name before a pipe ("Pakistan | Mob attacks ...", "Perspective | ..."): a word or two, then a
# headline of at least _MIN_HEADLINE_WORDS words and at least three times as many. A headline before a
# packed summary ("Grain talks resume | Negotiators met ...") is longer, and a summary ends as a sentence.
_MIN_HEADLINE_WORDS = 6
_SECTION_NAME = re.compile(r"[^\W\d_][\w&'’.-]*(?: [^\W\d_][\w&'’.-]*)?")


def _is_section_before(part: str, following: str) -> bool:
    """True when ``part`` reads as a section name placed before the headline ``following``."""
    if not _SECTION_NAME.fullmatch(part) or part[-1] in _TERMINAL:
        return False
    words = following.count(" ") + 1
    return (
        words >= _MIN_HEADLINE_WORDS
        and words >= 3 * (part.count(" ") + 1)
        and following.rstrip(_CLOSERS)[-1:] != "."
    )


_NEWSY = re.compile(r"\b(?:news|times|post|tv|radio|daily|journal|herald|tribune|gazette|press|magazine|wire)\b", re.I)


def _is_colon_label(prefix: str, outlet_cores: frozenset[str]) -> bool:
    """A "Label: headline" prefix is stricter than a suffix: "Star Trek: Discovery ..." on startrek.com
    and "Blinken: Russia ..." are content, so only sections, well-known outlets, and the item's own
    outlet when it reads as a news outlet ("KTLA News:") are labels here."""
    if _is_label(prefix, _KNOWN_OUTLET_CORES, sections=True):
        return True
    return _NEWSY.search(prefix) is not None and _is_label(prefix, outlet_cores, sections=False)


# --------------------------------------------------------------------------------------------------
# Headline

_QUOTES = (("‘", "'"), ("’", "'"), ("‛", "'"), ("‚", "'"), ("“", '"'), ("”", '"'), ("„", '"'), ("‟", '"'))
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_PIPE = re.compile(r"\s*\|\s*")
_DASH_SUFFIX = re.compile(r"^(.+?)\s+[-–—]\s+([^-–—|]+?)$")
_DASH_PREFIX = re.compile(r"^([^-–—|:]+?)\s+[-–—]\s+(.+)$")
_COLON_PREFIX = re.compile(r"^([^:|]{1,60}?)\s*:\s+(.+)$")
_PAREN_SUFFIX = re.compile(r"^(.+?)\s*[(\[]([^()\[\]]{1,40})[)\]]$")
# Wire-service slugs: "UPDATE 2-", "EXCLUSIVE-", "RPT-", "FACTBOX-" (upper case only: content never is).
_WIRE_SLUG = re.compile(
    r"^(?:UPDATE(?: \d+)?|EXCLUSIVE|RPT|REFILE|CORRECTED|CORRECTED-UPDATE \d+|FACTBOX|ANALYSIS|"
    r"EXPLAINER|INSIGHT|FOCUS|WRAPUP(?: \d+)?|BREAKINGVIEWS|TIMELINE|POLL|PRESS DIGEST|BREAKING|"
    r"URGENT|FLASH)\s*[-:]\s*"
)
_MEDIA_TAG = re.compile(r"\s*[(\[](?:video|videos|photos?|pictures|watch|live|updated?|audio)[)\]]$", re.I)


def _normalise(text: str) -> str:
    # Titles and text are plain text already (feeds.text.html_to_text decoded them, double escaping
    # included): decoding again turned "&copy=2" in a URL into "©=2" and an escaped "&lt;b&gt;" into "<b>".
    if not text.isascii() and _INVISIBLE.search(text):
        text = _INVISIBLE.sub("", text)
    return " ".join(text.split())


def _unwrap_quotes(text: str) -> str:
    if len(text) > 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1]:
        return text[1:-1].strip()
    return text


def clean_headline(title: str, outlet: str | None = None) -> str:
    """Return ``title`` without outlet or section labels, with whitespace and quotes normalised.

    ``outlet`` is the item's outlet (display name or domain); without it, a list of well-known outlets is
    used. A summary packed after " | " is dropped. Returns the whitespace-normalised title when cleaning
    would leave nothing, so the result is empty only when ``title`` has no letters or digits. Longer than
    ``MAX_HEADLINE_CHARS``, it is cut at a word boundary and ends with "…".
    """
    original = fold(_normalise(title), _QUOTES)
    if not _WORD.search(original):
        return ""
    cores, any_outlet = _outlet_cores(outlet)
    headline = _WIRE_SLUG.sub("", original)

    if "|" in headline:
        parts = [p for p in _PIPE.split(headline) if p.strip()]
        while len(parts) > 1 and (
            _is_label(parts[0], any_outlet, sections=True) or _is_section_before(parts[0], parts[1])
        ):
            parts.pop(0)
        headline = parts[0] if parts else ""

    changed = True
    while changed and headline:
        changed = False
        if m := _MEDIA_TAG.search(headline):
            headline = headline[: m.start()]
            changed = True
        if (m := _DASH_SUFFIX.match(headline)) and _is_label(m.group(2), cores, sections=False):
            headline, changed = m.group(1), True
        if (m := _PAREN_SUFFIX.match(headline)) and _is_label(m.group(2), cores, sections=False):
            headline, changed = m.group(1), True
        if (m := _DASH_PREFIX.match(headline)) and _is_label(m.group(1), cores, sections=True):
            headline, changed = m.group(2), True
        if (m := _COLON_PREFIX.match(headline)) and _is_colon_label(m.group(1), cores):
            headline, changed = m.group(2), True
        headline = _WIRE_SLUG.sub("", headline).strip(" -–—|:")

    headline = _unwrap_quotes(headline.strip())
    if not _WORD.search(headline):
        headline = _unwrap_quotes(original)
    return _cut(headline, MAX_HEADLINE_CHARS)


# --------------------------------------------------------------------------------------------------
# Boilerplate

_APOS = "['’]"
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?"
_TIME = r"\d{1,2}(?:[:.]\d{2})?\s*(?:[ap]\.?m\.?)?(?:\s*[a-z]{2,4})?"
_DATE = (
    rf"(?:{_WEEKDAY},?\s+)?(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?(?:\s+\d{{4}})?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?(?:\s+\d{{4}})?|\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}})"
)
_AGENCY = r"(?:AP|Reuters|AFP|RFE/RL|dpa|UPI|Xinhua|TASS|Interfax|CNN|BBC|Bloomberg|Kyodo|Yonhap|ANI|PTI)"

# What a newsletter or account promotion asks to sign up for ("... for our briefing", "... to receive ...").
_PROMO_OBJECT = (
    r"(?:our|my|(?:a )?free (?:\w+ )?(?:newsletter|trial|account|updates)|e-?mail|newsletters?|receive|get"
    r"|the (?:\w+ ){0,3}(?:newsletter|briefing|alerts?|digest|podcast|email|e-mail|edition)s?)\b"
)

# Labels of a line that points to other stories ("Related: <a headline>"), case-insensitive: the classifier
# leaves such lines out too (``classify.read_text``).
POINTER_LABELS = (
    r"(?:see also|also see|read more|read also|also read|related|related (?:stories|articles|content|coverage"
    r"|topics|reading)|recommended|further reading|more on this(?: story)?|most read|top stories|editor'?s picks?)"
)

# Whole-line patterns (matched from the start, case-insensitive), each tried only on lines that can begin as
# its matches do (``Scanner.match``): trying them all took half of ``is_boilerplate``'s time on a line of news.
_BOILERPLATE_LINE = Scanner(
    [
        # Promotion and navigation: "SEE ALSO: ...", "Read more", "Related: ...", "Watch: ...".
        r"(?:" + POINTER_LABELS + r"|more|watch|listen|live)\s*(?:[:>»|]|$)",
        r"live (?:briefing|blog|updates?|coverage|page|tv)\s*[:|]",
        r"(?:continue|keep|start) reading\b",
        r"read (?:the )?(?:full|whole|original|complete) (?:story|article|report|interview)\b",
        r"(?:click|tap) (?:here|the link)\b",
        r"(?:share|share this(?: article| story| post| page)?|share on \w+|tweet|email|e-mail|print"
        r"|copy link|comments?|whatsapp|facebook|twitter|telegram|linkedin|pinterest|advertisement"
        r"|ad|sponsored|skip (?:to )?(?:main )?content|skip advert(?:isement)?|loading\.*|image|photo"
        r"|video|audio|play|play video|close|menu|search|back to top)\s*$",
        r"story continues below\b",
        r"scroll (?:down )?to continue\b",
        r"listen to (?:this|the) (?:article|story)\b",
        # "Sign up for the army" and "Register of deeds" are news: sign up and register only as promotion.
        r"subscribe\b(?! (?:with|as) )",
        r"(?:sign up|register)(?: now| today| here| for free)?(?:\s*(?:[:!.>»|]|$)| (?:for|to) " + _PROMO_OBJECT + ")",
        r"(?:get|receive) (?:our|the) .{0,40}\bnewsletter\b",
        r"follow (?:us|our|the latest|@\w+|\S+(?: \S+)? on (?:twitter|x|facebook|instagram|telegram"
        r"|youtube|tiktok|linkedin|threads|mastodon))\b",
        r"download (?:our|the) (?:free )?(?:\w+ )?app\b",
        r"the post .+ appeared first on\b",
        r"this (?:article|story|post) (?:was|has been) (?:originally |first )?(?:published|updated"
        r"|amended|corrected)\b",
        r"this is a (?:developing|breaking) (?:story|news story)\b",
        r"(?:copyright\s*(?:©|\(c\)|\d{4})|©|\(c\)\s*\d{4})",
        # Credits and captions: "(Photo: ...)", "Photo: Reuters", "Image source, Getty Images".
        r"\(?(?:photo|photograph|image|picture|file photo|video|graphic|illustration|credit)s?"
        r"(?: credit)?\s*[:/]",
        r"(?:image source|image caption|media caption)\b",
        r"(?:getty images|afp via getty images|shutterstock|ap photo|afp photo|epa-efe|reuters"
        r"|associated press|afp|tass|rfe/rl)\s*\W*$",
        # Agency trailers: "With additional reporting by ...", "(Reporting by ...; Editing by ...)".
        # A credit names someone ("Reporting by Tomas Weller"); "Written by hand" and "Reporting by
        # journalists has been ..." are news.
        r"\(?(?:with )?(?:additional )?(?:reporting|writing|editing|compiled|written|translated"
        r"|fact-checked)(?: (?:and|&) \w+)? by (?-i:[A-Z])",
        r"based on (?:reporting|reports) (?:by|from) (?:the )?(?-i:[A-Z])[^,;.!?]{0,60}\.?\s*$",
        # Bylines with a role: "By Jane Doe, Staff Writer".
        r"by [A-Z][\w.'’-]+(?: [A-Z][\w.'’-]+){0,3},? (?:staff|senior|chief|special)? ?"
        r"(?:writer|reporter|correspondent|editor)s?\s*$",
        # Datelines and timestamps alone on a line.
        rf"(?:(?:updated|published|posted|last updated|first published|modified|created)\s*:?\s*"
        rf"(?:on\s+)?)?{_DATE}(?:,?\s*(?:at\s+)?{_TIME})?\s*(?:\|.*)?$",
        r"(?:updated|published|posted|last updated)\s*:?\s*(?:\d+|an?|one) (?:seconds?|minutes?|"
        r"mins?|hours?|hrs?|days?|weeks?) ago\s*$",
        r"(?:updated|published|posted)\s*:?\s*" + _TIME + r"\s*$",
        # Embeds and stray links.
        r"(?:https?://|www\.)\S+\s*$",
        r"(?:pic\.twitter\.com/\S+|— .{1,60} \(@\w+\) " + _MONTH + r" \d{1,2}, \d{4})",
        r"your browser does(?:n" + _APOS + r"t| not) support\b",
        r"(?:enable|please enable) javascript\b",
        r"to view this (?:content|video|embed)\b",
    ],
    named_groups=0,
)

# More whole-line patterns, each with substrings (lower-case) a matching line must contain: these scan
# ahead or backtrack over the line, and trying them only where they can match halves the cost of
# checking a line of news.
_GUARDED_LINE = [
    (("all rights reserved",), re.compile(r".{0,80}\ball rights reserved\b", re.I)),
    (("/", "via "), re.compile(
        r"[\w .'’-]{0,60}(?:/|\bvia )(?:getty images|afp|ap|reuters|epa|shutterstock|sputnik|tass)\b[^.!?]{0,40}$",
        re.I)),
    # A whole credit: "... contributed to this report.", not "... contributed to reporting that revealed ...".
    ((" contributed ",), re.compile(
        r"\w[\w ,.'’-]{0,60} contributed (?:to )?(?:this |the )?report(?:ing)?(?: (?:from|in) [^.;]{1,60})?[.)]?\s*$",
        re.I)),
    # A dateline alone: "KYIV, Ukraine (AP) —".
    (("(",), re.compile(rf"[A-Z][A-Z.'’ -]+(?:,\s*[\w.'’ -]+)*\s*\({_AGENCY}\)\s*[-–—:]?\s*$", re.I)),
]

# Patterns that mark a line as boilerplate wherever they occur in it.
_BOILERPLATE_ANYWHERE = re.compile(
    "|".join(
        [
            r"\byour browser does(?:n" + _APOS + r"t| not) support (?:html5?|the video|video|iframes)",
            r"\b(?:click|tap) here\b",
            r"\blive (?:briefing|blog|page|updates) .{0,60}\b(?:gives|brings|keeps) you\b",
            r"\bfor (?:all|more) of (?:our|\S+" + _APOS + r"s) (?:coverage|reporting)\b",
            r"\bappeared first on\b",
            r"\bsign up (?:for|to) " + _PROMO_OBJECT,
            r"\bsubscribe (?:to|for) (?:our|the) (?:\w+ )?(?:newsletter|channel|podcast|updates)\b",
            r"\bdelivered (?:straight |directly )?to your inbox\b",
            r"[(\[](?:photo|photograph|image|picture|credit|file photo)s?(?: credit)?(?::| by)\s[^)\]]*[)\]]",
            r"\bvia getty images\b",
            r"\b(?:photograph|photo|picture|image)s?(?: credit)?:\s[^.!?]{0,80}$",
            r"©\s*\d{4}",
        ]
    ),
    re.I,
)

# A line can only match _BOILERPLATE_ANYWHERE if it holds one of these (lowercase) substrings; testing
# them with ``in`` first is several times faster than running the search on every line of news.
_ANYWHERE_TRIGGERS = (
    "browser", "click here", "tap here", "gives you", "brings you", "keeps you", "coverage",
    "reporting", "appeared first", "sign up", "subscribe", "inbox", "photo", "image", "picture",
    "credit", "getty", "©",
)  # fmt: skip

# Every needle above: a line holding none of them (~97% of lines in news) skips those checks after one loop
# over them, not one pass per group (5.1 -> 3.5 us a call; ~10 calls an item).
_NEEDLES = tuple(sorted({n for needles, _ in _GUARDED_LINE for n in needles} | set(_ANYWHERE_TRIGGERS)))
# Needles of a photo credit: only a paragraph holding one can be a caption.
_CREDIT_NEEDLES = ("credit", "getty", "image", "photo", "picture")

# "By Jane Doe", "By JOHN SMITH and Anna Roe, Reuters": capitalised names after "By", nothing else.
# Possessive quantifiers keep this linear on long capitalised runs.
_BYLINE = re.compile(r"^[Bb][Yy]\s++(?:[A-Z][\w.'’-]*+|and|&|de|da|van|von|der|al|el|bin|le|la|[,\s|/·•-])++$")

_TERMINAL = frozenset(".!?。！？؟।")  # with the full stops and marks of Chinese/Japanese, Arabic, Hindi
_CLOSERS = "\"'’”“)]»"  # “ closes a German „quote“


def is_boilerplate(line: str) -> bool:
    """True when ``line`` (one paragraph or sentence of plain text) carries no news.

    Detects player and browser notices, promotion and navigation ("SEE ALSO:", "Read more", "Related:",
    "Follow us on ...", "Subscribe ...", "Click here"), credits and captions ("(Photo: ...)", "AFP via
    Getty Images", a caption sentence with its credit), copyright lines, bylines, agency trailers ("With
    additional reporting by ..."), lines holding only a dateline or timestamp, and stray links. A line that
    opens as none of these is boilerplate only when each of its sentences is: a credit or a promotion after
    news does not make the news boilerplate.
    """
    line = line.strip()
    if _opens_as_boilerplate(line):
        return True
    news, caption = _news_in(line, _needles_in(line))
    return caption or not any(True for _ in news)


def _needles_in(paragraph: str) -> Sequence[str]:
    """The ``_NEEDLES`` a paragraph holds: all that any of its sentences can hold."""
    lower = paragraph.lower()
    return [needle for needle in _NEEDLES if needle in lower]


def _opens_as_boilerplate(line: str) -> bool:
    """Whether a stripped line is boilerplate from its start ("Read more: ...", "Photo: ...", a byline):
    what follows such an opening belongs to it, so the whole line goes."""
    if not line or _BOILERPLATE_LINE.match(line) is not None:
        return True
    return len(line) < 120 and _BYLINE.match(line) is not None


def _is_boilerplate(line: str, needles: Sequence[str]) -> bool:
    """``is_boilerplate`` of one stripped sentence, given a superset of the ``_NEEDLES`` it holds."""
    return _opens_as_boilerplate(line) or _holds_boilerplate(line, needles)


def _holds_boilerplate(line: str, needles: Sequence[str]) -> bool:
    """The checks of a sentence that ``_opens_as_boilerplate`` leaves: credits, trailers and promotion."""
    if not needles:
        return False
    lower = line.lower()
    if not any(needle in lower for needle in needles):
        return False
    for group, pattern in _GUARDED_LINE:
        if any(needle in lower for needle in group) and pattern.match(line):
            return True
    return any(trigger in lower for trigger in _ANYWHERE_TRIGGERS) and _BOILERPLATE_ANYWHERE.search(line) is not None


def _news_in(paragraph: str, needles: Sequence[str]) -> tuple[Iterator[str], bool]:
    """The sentences of a paragraph that does not open as boilerplate, without its boilerplate sentences;
    and whether they are a caption: one sentence followed by a photo credit, as a picture's caption sits
    above an article's lead (its sentence describes the picture, not the news)."""
    if not any(word in needles for word in _CREDIT_NEEDLES):
        # Its sentences are parts of it: they hold none of the needles it does not (most paragraphs hold none),
        # and a paragraph of one sentence (a feed's description often is one) was checked for its opening.
        return (
            s for s in _sentences(paragraph)
            if not (_holds_boilerplate(s, needles) if s == paragraph else _is_boilerplate(s.strip(), needles))
        ), False
    sentences = list(_sentences(paragraph))
    boiler = [_is_boilerplate(s.strip(), needles) for s in sentences]
    news = [s for s, b in zip(sentences, boiler, strict=True) if not b]
    # The second must be a credit, not any boilerplate: "Photos of the flood. More" is a headline and its link.
    caption = (
        len(sentences) == 2
        and boiler == [False, True]
        and any(word in sentences[1].lower() for word in _CREDIT_NEEDLES)
    )
    return iter(news), caption


# --------------------------------------------------------------------------------------------------
# Sentences

# A candidate boundary: terminal punctuation, optional closing quotes or brackets, then whitespace.
# Latin punctuation ends a sentence before a space; a Chinese or Japanese full stop needs none after it,
# and sentences joined after one take none either.
_CJK_SPACE = re.compile(r"(?<=[。！？」』）]) (?=[^\x00-\x7f])")
_BOUNDARY = re.compile(r"((?:[.!?…؟।]+[\"'’”“)\]»]*(?=\s))|(?:[。！？]+[」』）”]*))\s*")
# After a question or exclamation in quotes, a speaker and a verb of saying carry the sentence on:
# '"Where are the weapons?" Zelensky asked on Tuesday.' (after a lower-case word it never ends).
_ATTRIBUTION = re.compile(
    r"(?:[A-Z][\w'’.-]*\s+){1,4}(?:said|says|asked|asks|added|adds|told|wrote|writes|tweeted|replied|"
    r"responded|insisted|warned|noted|explained|continued|declared|shouted|cried|wondered|demanded|urged)\b"
)
_QUOTE_CLOSERS = "\"”“»"
# Abbreviations that never end a sentence before a capitalised word ("Dr. Smith", "Jan. 5").
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "prof", "sen", "rep", "reps", "gov", "gen", "lt", "col", "sgt",
        "capt", "cmdr", "maj", "adm", "cpl", "pvt", "st", "ste", "mt", "ft", "rev", "hon", "pres",
        "supt", "insp", "det", "atty", "amb", "fr", "sr", "jan", "feb", "mar", "apr", "jun", "jul",
        "aug", "sep", "sept", "oct", "nov", "dec", "vs", "v", "approx", "dept", "univ", "assn", "ave",
        "blvd", "rd", "fig", "vol", "ch", "al", "cf", "e.g", "i.e", "p", "pp", "op",
    }
)  # fmt: skip
# Abbreviations that often do end a sentence ("... Apple Inc. The company said"): split before a
# word that typically starts one, not before a name ("U.S. President", "Inc. shares").
_AMBIGUOUS = frozenset({"inc", "corp", "ltd", "co", "jr", "bros", "plc", "llc", "etc", "no", "a.m", "p.m"})
_SENTENCE_STARTERS = frozenset(
    {
        "the", "a", "an", "he", "she", "it", "they", "we", "i", "you", "his", "her", "its", "their",
        "our", "this", "that", "these", "those", "there", "but", "and", "so", "yet", "or", "in", "on",
        "at", "after", "before", "earlier", "later", "meanwhile", "however", "also", "since", "while",
        "when", "if", "as", "some", "many", "more", "most", "both", "one", "two", "three", "officials",
        "authorities", "police", "no", "not", "according", "last", "next", "for", "with",
    }
)  # fmt: skip
_DOTTED_ACRONYM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")
_WORD = re.compile(r"\w+")

# A dateline that opens the lead: "KYIV, Ukraine (AP) — ", "MOSCOW, March 29 (Reuters) - ", "KYIV — ".
_DATELINE_PREFIX = re.compile(
    r"^[A-Z][A-Z.'’-]+(?: [A-Z][A-Z.'’-]+)*(?:,\s*[A-Z][\w.'’-]*(?: [\w.'’-]+){0,3})*\s*"
    rf"(?:\({_AGENCY}\)\s*[-–—:]|[-–—])\s+(?=\S)"
)


def _starts_sentence(rest: str) -> bool:
    for char in rest[:3]:
        if char in "\"'‘“„([«「『（":
            continue
        # A letter of a script without case (Hebrew, Arabic, Chinese, Hindi) may start one too.
        return char.isupper() or char.isdigit() or (char.isalpha() and not char.islower())
    return False


def _is_boundary(paragraph: str, start: int, match: re.Match[str]) -> bool:
    if not _starts_sentence(paragraph[match.end() : match.end() + 3]):
        return False
    punctuation = match.group(1)
    if punctuation != ".":
        return not (
            punctuation[0] in "?!" and punctuation[-1] in _QUOTE_CLOSERS and _ATTRIBUTION.match(paragraph, match.end())
        )
    before = paragraph[start : match.start()].rsplit(None, 1)
    if not before:
        return True
    word = before[-1].lstrip("\"'‘“([«")
    lower = word.lower()
    if lower in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):
        return False
    if lower in _AMBIGUOUS or _DOTTED_ACRONYM.match(word):
        nxt = _WORD.match(paragraph, match.end())
        if lower == "no" and nxt is not None and nxt.group(0).isdigit():
            return False
        return nxt is not None and nxt.group(0).lower() in _SENTENCE_STARTERS
    return True


def _sentences(paragraph: str) -> Iterator[str]:
    """Split one paragraph into sentences; abbreviations, initials and decimals do not split."""
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        if match.start() < start or not _is_boundary(paragraph, start, match):
            continue
        yield paragraph[start : match.end(1)]
        start = match.end()
    tail = paragraph[start:].strip()
    if tail:
        yield tail


def _is_whole(sentence: str) -> bool:
    """True for a sentence that ends as one: not a subhead, a title or a fragment ending in "[…]". An ellipsis
    ends a sentence ("... on Tuesday... Three people were killed."); a text cut with one ends in a paragraph's
    last sentence, which ``_content_sentences`` holds back."""
    end = sentence.rstrip(_CLOSERS)
    return bool(end) and (end[-1] in _TERMINAL or end[-1] == ELLIPSIS) and not end.endswith(("[…", "[..."))


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def _only_words_of(sentence: str, words: frozenset[str]) -> bool:
    """Whether every word of ``sentence`` is in ``words``; read only up to its first other word."""
    return all(m.group() in words for m in _WORD.finditer(sentence.lower()))


def _cut(sentence: str, max_chars: int) -> str:
    """Cut at the last word boundary that leaves room for "…"; documented exception to whole sentences."""
    if len(sentence) <= max_chars:
        return sentence
    limit = max_chars - len(ELLIPSIS)
    head = sentence[: limit + 1]
    space = head.rfind(" ")
    head = head[:space] if space > 0 else sentence[:limit]
    return head.rstrip(" ,;:-–—\"'“‘(") + ELLIPSIS


# Words a line can end on only in the middle of a sentence. Not "for", "on", "with", "to", ...: a heading
# can end on one ("... more clearly than its engineers hoped for").
_OPEN_ENDINGS = frozenset(
    {
        "a", "an", "the", "of", "and", "or", "but", "nor", "than", "its", "their", "our", "your", "my", "whose",
        "during",
    }
)  # fmt: skip
_FIRST_WORD = re.compile(r"[^\W\d_]+")
# A line of fewer words is a label, a heading or a list item even when it ends without punctuation.
_MIN_WRAPPED_WORDS = 3


def _continues(line: str, following: str) -> bool:
    """Whether ``following`` carries on the sentence ``line`` breaks off: text hard-wrapped at a fixed width,
    or a <br> in mid-sentence. Headings, captions, list items and datelines are lines too, so only a line
    without terminal punctuation that ends on a word like "of" or is followed by an all lower-case word is
    joined (not one that ends on a comma before a capital: that is how a feed cuts a long title)."""
    tail = line.rstrip(_CLOSERS)
    if not tail or tail[-1] in ".!?…:" or line.count(" ") + 1 < _MIN_WRAPPED_WORDS:
        return False
    end = max(tail.rfind(". "), tail.rfind("? "), tail.rfind("! "))
    unfinished = (tail[end + 2 :] if end >= 0 else tail).strip()  # what follows the line's last sentence
    if not unfinished:  # the line ends with a sentence after all, then a stray bracket or quote: '... city. )'
        return False
    last = unfinished.rsplit(None, 1)[-1].lstrip("\"'‘“„([«")
    # A title-case heading ends on a capital ("... You've Never Heard Of"), a sentence's first word may.
    if (last if " " in unfinished else last.lower()) in _OPEN_ENDINGS:
        return following[0].isalnum()
    first = _FIRST_WORD.match(following)
    # A lone word after the line's last sentence ("... try'. More") is a link's text, not a sentence.
    return first is not None and first.group().islower() and " " in unfinished


def _paragraphs(text: str) -> Iterator[str]:
    """The non-empty lines of ``text``, normalised, each joined with the lines that continue its sentence."""
    held = ""
    for raw in text.split("\n"):
        line = _normalise(raw)
        if not line:
            if held:  # a blank line always ends a paragraph
                yield held
                held = ""
            continue
        if held:
            if _continues(held, line):
                held = f"{held} {line}"
                continue
            yield held
        held = line
    if held:
        yield held


_PARAGRAPH_END = ""


def _content_sentences(text: str) -> Iterator[str]:
    """Sentences of ``text`` in order, boilerplate lines and sentences left out. Captions and a paragraph's
    last sentence when it ends with an ellipsis (a feed cut its text there) come last, and only when the
    text has no whole sentence of its own. An empty string marks the end of a paragraph."""
    first = True
    held_back: list[str] = []
    whole = False
    for paragraph in _paragraphs(text):
        if _opens_as_boilerplate(paragraph):
            continue
        if first:
            paragraph = _DATELINE_PREFIX.sub("", paragraph, count=1)
            first = False
        news, caption = _news_in(paragraph, _needles_in(paragraph))
        if caption:
            held_back.extend(news)
            continue
        last: str | None = None  # yielded once the next one shows it is not the paragraph's last
        for sentence in news:
            if last is not None:
                whole = whole or _is_whole(last)
                yield last
            last = sentence
        if last is not None:
            if last.rstrip(_CLOSERS).endswith(("..", ELLIPSIS)):
                held_back.append(last)
            else:
                whole = whole or _is_whole(last)
                yield last
        yield _PARAGRAPH_END
    if not whole:
        for sentence in held_back:
            yield sentence
            yield _PARAGRAPH_END


_QUOTE_MARK = re.compile("[\"“”„«»]")
# What closes a quotation opened by each mark: a German „quote“ closes with “ (or ”).
_QUOTE_CLOSE = {'"': '"', "“": "”", "„": "“”", "«": "»"}


def _open_quote(sentence: str, quote: str | None) -> str | None:
    """The mark of the quotation left open after ``sentence``, given the one open before it (None: none).
    Single quotes are left alone: they double as apostrophes. A straight double quote opens at the start of
    a word and closes elsewhere, so a quotation that runs over paragraphs (each opens again, only the last
    closes) stays open."""
    if '"' not in sentence and sentence.isascii():
        return quote
    for match in _QUOTE_MARK.finditer(sentence):
        mark = match.group()
        at = match.start()
        opens = mark != '"' or at == 0 or sentence[at - 1] in " ([—–-"
        if quote is None:
            if mark in _QUOTE_CLOSE and opens:
                quote = mark
        elif mark in _QUOTE_CLOSE[quote] or (mark == '"' and not opens):
            quote = None  # a straight quote closes a curly one too: sources mix them
    return quote


def _summarise(sentences: Iterator[str], headline: str, max_chars: int) -> str:
    """Whole sentences from the start while they fit, skipping any that only repeat ``headline``."""
    headline_words = _words(headline)
    headline_chars = 2 * len(headline) + 20 if headline_words else -1
    chosen: list[str] = []
    length = 0
    fallback: str | None = None  # first non-sentence line, used only if the text has no sentence
    quote: str | None = None  # the mark of a quotation the chosen sentences leave open
    quote_from = 0  # the chosen sentence that opened it
    paragraph_ended = False
    for sentence in sentences:
        if not sentence:  # _PARAGRAPH_END
            paragraph_ended = True
            continue
        if paragraph_ended and quote is not None and sentence[0] not in _QUOTE_CLOSE:
            # A quotation runs on into a paragraph only if that opens with a quote mark again: this one
            # was never closed (sources do that), so a summary may end after it.
            quote = None
        paragraph_ended = False
        # Only a sentence of about the headline's length can repeat it; skip the word sets otherwise.
        if len(sentence) <= headline_chars and _only_words_of(sentence, headline_words):
            continue
        if not _is_whole(sentence):
            if fallback is None and not chosen:
                fallback = sentence
            continue
        added = len(sentence) + (1 if chosen else 0)
        if not chosen and added > max_chars:
            return _cut(sentence, max_chars)
        if length + added > max_chars:
            if quote is not None and quote_from == 0:
                # The lead opens a quotation that does not close in time: cut it, as a long lead is.
                return _cut(" ".join([*chosen, sentence]), max_chars)
            break
        if quote is None:
            quote_from = len(chosen)
        chosen.append(sentence)
        length += added
        quote = _open_quote(sentence, quote)
    else:
        quote = None  # the text ended: whatever it left open, it never closes
    if quote is not None:
        # Never end inside a quotation: end before the sentence that opened it.
        chosen = chosen[:quote_from] or chosen
    if chosen:
        return _CJK_SPACE.sub("", " ".join(chosen))
    return _cut(fallback, max_chars) if fallback else ""


def condense(title: str, text: str, outlet: str | None = None, max_chars: int = 280) -> Condensed:
    """Return a clean headline and a summary of at most ``max_chars`` characters.

    The summary is made of whole sentences of ``text`` (plain text, paragraphs separated by "\\n"),
    taken from the start, skipping boilerplate and a sentence that only repeats the headline. If the
    first usable sentence alone is longer than ``max_chars`` it is cut at a word boundary and ends
    with "…". Lines that are not sentences (subheads, titles) are used only when the text has none.

    The headline is never empty: without a title it is the first sentence of the text (cut the same
    way), and without either it is the outlet's name, or "Untitled".
    """
    if max_chars < 2:
        raise ValueError(f"max_chars must be at least 2, got {max_chars}")
    headline = clean_headline(title, outlet)
    if not headline:
        first = next((s for s in _content_sentences(text) if s), None)
        headline = (
            _cut(first, min(max_chars, MAX_HEADLINE_CHARS)) if first else (_normalise(outlet or "") or "Untitled")
        )
    summary = _summarise(_content_sentences(text), headline, max_chars)
    return Condensed(headline=headline, summary=summary)
