"""Canonical and clean URLs (livebrief/urls.py): what folds together, and the fast path for plain links."""

from __future__ import annotations

from urllib.parse import urlencode, urlunsplit

import pytest

from livebrief import urls
from livebrief.urls import canonical_url, clean_url

_SPELLINGS = [
    "https://www.example.org/news/story-1",
    "http://example.org/news/story-1/",
    "https://m.example.org/news/story-1",
    "https://example.org/news/story-1/amp",
    "https://EXAMPLE.org./news/story-1?utm_source=rss&fbclid=x",
    "https://example.org:443/news/story-1#comments",
    "  https://amp.example.org/news/story-1  ",
]


def test_every_spelling_of_one_article_folds_to_one_key() -> None:
    assert {canonical_url(u) for u in _SPELLINGS} == {"https://example.org/news/story-1"}


def test_a_clean_link_keeps_its_scheme_host_and_real_query() -> None:
    assert clean_url("http://Example.org/a?id=7&utm_medium=x#top") == "http://example.org/a?id=7"
    assert clean_url("https://example.org") == "https://example.org/"
    assert clean_url("https://example.org:8443/a") == "https://example.org:8443/a"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "ftp://example.org/a", "", None,
                                 "https://", "not a url", "https://:80/a", "https://[::1/a"])
def test_only_http_links_with_a_host_are_kept(url: str | None) -> None:
    assert clean_url(url) is None and canonical_url(url) is None


# Links the fast path reads and links it leaves to urlsplit, side by side.
_LINKS = [
    *_SPELLINGS,
    "https://news0.example.org/f0-e0-n0", "HTTPS://Example.ORG/Path/To", "http://example.org", "https://a.b.c.d/",
    "https://example.org//double//slash", "https://example.org/caf\u00e9", "https://example.org/a\u00a0b",
    "https://example.org/a b", "https://example.org/a\tb", "https://example.org/a\nb", "https://example.org/a\x01b",
    "https://user@example.org/a", "https://example.org:80/a", "https://example.org:99999/a", "https://ex_ample.org/a",
    "https://xn--e1afmkfd.xn--p1ai/a", "https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/a",
    "https://./a", "https://../a", "https://-/a", "https://example.org/amp", "https://example.org/story.amp.html",
    "https://example.org/a;params", "https://example.org/%20a", "\x00https://example.org/a", "https://example.org/a?",
    "https://example.org/a#", "https://example.org/a?b=1&a=2", "https://m.example.org", "https://www.m.example.org/a",
]


def _reference_clean(url: str) -> str | None:
    split = urls._split_any(url)
    if split is None:
        return None
    scheme, host, port, path, query = split
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def _reference_canonical(url: str) -> str | None:
    split = urls._split_any(url)
    if split is None:
        return None
    _, host, port, path, query = split
    if host.count(".") >= 2:
        host = urls._MOBILE_HOST.sub("", host)
    host = urls._ascii_host(host.removeprefix("www."))
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    path = urls._AMP_SEGMENT.sub("", urls._one_spelling(path)) or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return urlunsplit(("https", netloc, path, urlencode(sorted(query)), ""))


@pytest.mark.parametrize("url", _LINKS)
def test_a_plain_link_is_split_as_urlsplit_splits_it(url: str) -> None:
    if urls._PLAIN.fullmatch(url.strip()):
        assert urls._split(url) == urls._split_any(url)
    assert clean_url(url) == _reference_clean(url)
    assert canonical_url(url) == _reference_canonical(url)


@pytest.mark.parametrize(("url", "clean", "canonical"), [
    ("http://[2606:4700::1]/x", "http://[2606:4700::1]/x", "https://[2606:4700::1]/x"),
    ("https://[2606:4700::1]:8443/x?utm_source=a&id=2", "https://[2606:4700::1]:8443/x?id=2",
     "https://[2606:4700::1]:8443/x?id=2"),
])
def test_an_ipv6_host_keeps_its_brackets(url: str, clean: str, canonical: str) -> None:
    assert (clean_url(url), canonical_url(url)) == (clean, canonical)


@pytest.mark.parametrize(("one", "other"), [
    ("https://news.example.ua/2022/03/01/обстріл-харкова/",
     "https://www.news.example.ua/2022/03/01/"
     "%D0%BE%D0%B1%D1%81%D1%82%D1%80%D1%96%D0%BB-%D1%85%D0%B0%D1%80%D0%BA%D0%BE%D0%B2%D0%B0"),
    ("https://example.org/%7euser/story", "https://example.org/~user/story"),
    ("https://example.org/a%c3%a9", "https://example.org/aé"),
    ("https://новини.укр/статья", "https://xn--b1amarcd.xn--j1amh/%D1%81%D1%82%D0%B0%D1%82%D1%8C%D1%8F"),
])
def test_a_path_or_host_written_escaped_or_not_folds_to_one_key(one: str, other: str) -> None:
    assert canonical_url(one) == canonical_url(other)


def test_an_escaped_slash_and_bytes_that_are_not_utf8_keep_their_meaning() -> None:
    assert canonical_url("https://example.org/a%2Fb") != canonical_url("https://example.org/a/b")
    assert canonical_url("https://example.org/x%FFy") != canonical_url("https://example.org/x%FEy")
