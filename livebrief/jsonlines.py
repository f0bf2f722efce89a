"""JSON lines as the commands read them (``livebrief classify`` on stdin, ``eval-topics`` label files): one
object per line, UTF-8, each line judged on its own so one bad line is reported without losing the rest.

Lines are split on ``\\n`` bytes only: ``str.splitlines`` would also split inside a JSON string at a U+2028
or a form feed, which JSON allows raw.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from livebrief.errors import BadLineError

__all__ = ["numbered_lines", "parse_object", "optional_string", "string_list"]


def numbered_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for each line of a binary file (or ``sys.stdin.buffer``) that is not blank,
    numbered from 1 as an editor shows them."""
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield number, raw


def parse_object(raw: bytes) -> dict[str, Any]:
    """One line as a JSON object; raises ``BadLineError`` saying why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLineError(f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadLineError(f"not JSON ({exc.msg}, column {exc.colno})") from exc
    except ValueError as exc:  # valid JSON Python will not read: an integer of more than 4,300 digits
        raise BadLineError(f"not usable JSON ({str(exc).partition(':')[0]})") from exc  # without Python's advice
    except RecursionError as exc:  # the C decoder recurses once per nested array or object
        raise BadLineError("not usable JSON: nested too deeply") from exc
    if not isinstance(value, dict):
        raise BadLineError(f"expected a JSON object, not {_kind(value)}")
    return value


def optional_string(record: Mapping[str, Any], field: str) -> str:
    """``record[field]`` when a string, ``""`` when absent or null; raises ``BadLineError`` otherwise (a number
    or an object would be classified as its Python repr)."""
    value = record.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadLineError(f"'{field}' must be a string, not {_kind(value)}")
    return value


def string_list(record: Mapping[str, Any], field: str) -> list[str]:
    """``record[field]``, which must be a list of strings (a bare string would be read as its characters)."""
    value = record.get(field)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        odd = [v for v in value if not isinstance(v, str)] if isinstance(value, list) else []
        shown = "absent" if field not in record else f"a list holding {_kind(odd[0])}" if odd else _kind(value)
        raise BadLineError(f"'{field}' must be a list of strings ([] for none), not {shown}")
    return value


def _kind(value: object) -> str:
    """A JSON value's kind as a user would name it."""
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)
