"""OPML subscription lists: followed through `opml:` in the config (end to end, on real feed servers),
written back by `livebrief feeds --opml`, and refused with the file and the reason when unreadable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import structlog
import structlog.testing
import yaml

from livebrief.config import load_config
from livebrief.errors import ConfigError
from livebrief.feedserver import FeedServer
from livebrief.opml import OpmlError, feed_id, read_opml
from tests.conftest import FIXTURES, REPO
from tests.test_pipeline import latest_versions, run_once, serve_fixtures, stream_entries


def desk_opml(tmp_path: Path, server: FeedServer) -> Path:
    path = tmp_path / "desk.opml"
    path.write_text((FIXTURES / "opml" / "desk.opml").read_text().replace("FEEDSERVER", server.url("").rstrip("/")))
    return path


def write_config(tmp_path: Path, feeds: list[dict[str, str]], opml: list[str]) -> Path:
    path = tmp_path / "livebrief.yaml"
    path.write_text(yaml.safe_dump({
        "topics_file": str(REPO / "config" / "topics.yaml"), "feeds": feeds, "opml": opml,
        "polling": {"allow_private": True, "timeout": 10},
    }))
    return path


def test_the_feeds_of_an_opml_list_are_followed_like_configured_ones(
    tmp_path: Path, client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    serve_fixtures(feed_server)
    desk_opml(tmp_path, feed_server)
    config = write_config(tmp_path, [], ["desk.opml"])

    result = run_once(config, redis_url)

    assert result.returncode == 0, result.stderr
    # The same three feeds as the pipeline test's YAML list, so the same six stories.
    assert len(latest_versions(stream_entries(client))) == 6
    assert {f.name for f in load_config(config).feeds} == {"Wire A", "Paper B", "Українська правда"}


def test_a_feed_in_both_the_yaml_and_a_list_is_followed_once_under_its_yaml_id(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    desk_opml(tmp_path, feed_server)
    yaml_feed = {"id": "wire-a", "name": "Wire A (desk)", "url": feed_server.url("/a.xml")}

    feeds = load_config(write_config(tmp_path, [yaml_feed], ["desk.opml"])).feeds

    assert [f.url for f in feeds].count(feed_server.url("/a.xml")) == 1
    assert feeds[0].id == "wire-a"
    assert len(feeds) == 3


def test_ids_from_a_list_are_stable_and_distinct() -> None:
    assert feed_id("Wire A", "https://a.example/rss") == feed_id("Wire A", "https://a.example/rss")
    assert feed_id("Wire A", "https://a.example/rss") != feed_id("Wire A", "https://a.example/world.rss")
    assert feed_id("Українська правда", "https://up.example/rss").startswith("feed-")
    assert feed_id("Le Monde — International", "https://lm.example/rss").startswith("le-monde-international-")


def test_feeds_opml_writes_a_list_that_reads_back_to_the_configured_feeds(tmp_path: Path) -> None:
    feeds = [{"id": "wire-a", "name": "Wire A", "url": "https://wire-a.example/rss"},
             {"id": "kyiv", "name": "Kyiv & Co <daily>", "url": "https://kyiv.example/feed?x=1&y=2"}]
    config = write_config(tmp_path, feeds, [])

    result = subprocess.run([sys.executable, "-m", "livebrief.cli", "feeds", "--opml", "--config", str(config)],
                            env={k: v for k, v in os.environ.items() if k != "REDIS_URL"}, cwd=REPO,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert [(f["name"], f["url"]) for f in read_opml(result.stdout.encode())] == [
        ("Wire A", "https://wire-a.example/rss"), ("Kyiv & Co <daily>", "https://kyiv.example/feed?x=1&y=2")]


@pytest.mark.parametrize(("body", "says"), [
    (b"<opml><body><outline xmlUrl='https://a.example/rss'", "not valid XML"),
    (b"<rss version='2.0'><channel/></rss>", "not an OPML document"),
    (b"<!DOCTYPE opml [<!ENTITY a 'aaaa'>]><opml><body/></opml>", "DOCTYPE is not accepted"),
])
def test_an_unreadable_list_is_refused_with_the_reason(body: bytes, says: str) -> None:
    with pytest.raises(OpmlError, match=says):
        read_opml(body)


def test_a_list_that_cannot_be_read_fails_the_config_naming_the_list(tmp_path: Path) -> None:
    (tmp_path / "bad.opml").write_bytes(b"<opml><body><outline text='Unclosed'")
    with pytest.raises(ConfigError, match=r"not valid XML") as bad:
        load_config(write_config(tmp_path, [], ["bad.opml"]))
    assert bad.value.path == str(tmp_path / "bad.opml")

    with pytest.raises(ConfigError, match=r"opml.0: .*missing.opml cannot be read"):
        load_config(write_config(tmp_path, [], ["missing.opml"]))


@pytest.mark.parametrize(("outline", "says"), [
    (b"<outline text='Gopher' xmlUrl='gopher://old.example/feed'/>", r"url: must be an absolute http"),
    (b"<outline text='Relative' xmlUrl='/feeds/rel.xml'/>", r"url: must be an absolute http"),
    (b"<outline xmlUrl='http://[::1/feed'/>", r"url: is not a valid URL \(Invalid IPv6"),
    (b"<outline text='Port' xmlUrl='http://a.example:99999/feed'/>", r"url: .*Port out of range"),
])
def test_an_outline_that_cannot_be_followed_is_left_out_and_said_so_and_the_others_followed(
    tmp_path: Path, outline: bytes, says: str
) -> None:
    # As readers import lists: one feed we cannot follow no longer stops every other.
    (tmp_path / "list.opml").write_bytes(
        b"<opml><body>" + outline + b"<outline text='Good' xmlUrl='https://good.example/feed'/></body></opml>")

    with structlog.testing.capture_logs() as logs:
        config = load_config(write_config(tmp_path, [], ["list.opml"]))

    assert [f.url for f in config.feeds] == ["https://good.example/feed"]
    skipped = [e for e in logs if e["event"] == "opml_outline_skipped"]
    assert len(skipped) == 1 and re.search(says, skipped[0]["problems"])
    assert skipped[0]["file"] == str(tmp_path / "list.opml")


@pytest.mark.parametrize(("written", "url"), [
    ("feed://news.example/rss", "http://news.example/rss"),
    ("feed:https://news.example/rss", "https://news.example/rss"),
    ("HTTPS://news.example/RSS", "https://news.example/RSS"),
])
def test_feed_pseudo_urls_and_upper_case_schemes_are_read_as_their_http_url(
    tmp_path: Path, written: str, url: str
) -> None:
    (tmp_path / "list.opml").write_bytes(f"<opml><body><outline text='N' xmlUrl='{written}'/></body></opml>".encode())
    assert [f.url for f in load_config(write_config(tmp_path, [], ["list.opml"])).feeds] == [url]


def test_a_feed_listed_twice_in_two_spellings_is_followed_once() -> None:
    # Two folders of one export often list a feed twice, with and without its trailing slash.
    listed = read_opml(b"<opml><body><outline text='World'><outline text='A' xmlUrl='https://a.example/rss/'/>"
                       b"</outline><outline text='Home'><outline text='A again' xmlUrl='https://a.example/rss'/>"
                       b"<outline text='B' xmlUrl='https://b.example/rss'/></outline></body></opml>")
    assert [f["url"] for f in listed] == ["https://a.example/rss/", "https://b.example/rss"]
