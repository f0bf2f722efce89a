"""Message signatures: Standard Webhooks (our outgoing webhooks and incoming direct pushes) and WebSub's
``X-Hub-Signature``. Pure functions, shared by ``feeds`` (receiving) and ``worker`` (sending)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from livebrief.numbers import ascii_int


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` value per Standard Webhooks: ``v1,`` + base64 HMAC-SHA256 of id.timestamp.body,
    keyed with the base64-decoded part of the ``whsec_`` secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, tolerance: int = 300, now: float | None = None
) -> bool:
    """Receiver side of ``sign`` (header names lower-case): one signature matches and the timestamp is
    within ``tolerance`` seconds (replays of old messages are refused)."""
    msg_id = headers.get("webhook-id", "")
    ts = ascii_int(headers.get("webhook-timestamp", ""))
    if not msg_id or ts is None:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
    for candidate in headers.get("webhook-signature", "").split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


_HUB_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
                   "sha512": hashlib.sha512}


def hub_signature(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    """``X-Hub-Signature`` value for a WebSub content distribution: ``method=hexdigest``."""
    return f"{algorithm}=" + hmac.new(secret.encode(), body, _HUB_ALGORITHMS[algorithm]).hexdigest()


def verify_hub_signature(secret: str, header: str | None, body: bytes) -> bool:
    if not header or "=" not in header:
        return False
    algorithm, _, digest = header.partition("=")
    if algorithm.lower() not in _HUB_ALGORITHMS:
        return False
    return hmac.compare_digest(hub_signature(secret, body, algorithm.lower()).split("=", 1)[1], digest.lower())
