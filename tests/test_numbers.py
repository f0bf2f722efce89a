"""Whole numbers in headers and fields (livebrief/numbers.py): ASCII digits only, so a '²' or a
5,000-digit value is "absent" to every reader of them instead of a ValueError."""

from __future__ import annotations

import pytest

from feeds.health import cache_hint
from livebrief.errors import RedisUrlError
from livebrief.numbers import ascii_int
from livebrief.redis_client import parse_sentinel_url
from livebrief.retry_after import parse_retry_after
from livebrief.signing import sign, verify

ODD = ["²", "①", "٣", "３", "9" * 5000, "", " ", "-1", "+1", "1.5", "1e3", "0x10"]


@pytest.mark.parametrize("text", ODD)
def test_anything_but_ascii_digits_is_not_a_number(text: str) -> None:
    assert ascii_int(text) is None


@pytest.mark.parametrize(("text", "value"), [("0", 0), (" 42 ", 42), ("007", 7), ("9" * 18, 10**18 - 1)])
def test_ascii_digits_are_read(text: str, value: int) -> None:
    assert ascii_int(text) == value


def test_more_digits_than_allowed_is_not_a_number() -> None:
    assert ascii_int("1234567", max_digits=6) is None and ascii_int("123456", max_digits=6) == 123456


@pytest.mark.parametrize("text", ODD)
def test_a_retry_after_or_max_age_in_odd_digits_is_absent(text: str) -> None:
    assert parse_retry_after(text) is None
    assert cache_hint({"cache-control": f"max-age={text}"}, 0.0) is None


def test_plain_retry_after_and_max_age_still_count() -> None:
    assert parse_retry_after(" 120 ") == 120.0 and cache_hint({"cache-control": "public, max-age=300"}, 0.0) == 300.0


@pytest.mark.parametrize("stamp", ["²", "9" * 5000, "1e9"])
def test_a_webhook_timestamp_in_odd_digits_fails_verification_without_raising(stamp: str) -> None:
    secret = "whsec_c2VjcmV0"
    headers = {"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": sign(secret, "msg_1", 1, b"x")}
    assert verify(secret, headers, b"x", now=1.0) is False
    assert verify(secret, {**headers, "webhook-timestamp": "1"}, b"x", now=1.0) is True


def test_a_sentinel_database_in_odd_digits_is_a_clear_error() -> None:
    with pytest.raises(RedisUrlError, match="must be a number"):
        parse_sentinel_url("redis+sentinel://127.0.0.1:26379/mymaster/²")
