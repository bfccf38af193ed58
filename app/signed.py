"""Signed URLs: what the editor hands out for uploads, previews and downloads.

A URL carries its own proof, like a presigned object-store URL: a payload (what it opens,
until when, and for single-use URLs a nonce) and an HMAC-SHA256 of it under a server secret
kept in ``$SIGHTLINE_HOME`` (made once, 0600, shared by every process of one home). They live
under ``/api/signed/`` (``app.auth.PUBLIC_PREFIXES``), so they need no licence key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from functools import lru_cache
from pathlib import Path

from flask import request

from app.errors import ApiError
from workers.settings import load_settings

SIGNED_PREFIX = "/api/signed"


@lru_cache(maxsize=4)
def _secret(home: str) -> bytes:
    path = Path(home) / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".signing.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        try:
            os.link(temp, path)  # first writer wins; a concurrent start reads the winner's key
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(kind: str, subject: dict, expires_in: float | None = None, nonce: str | None = None) -> tuple[str, float]:
    """A token for ``kind`` over ``subject``; (token, expiry as a Unix time)."""
    settings = load_settings()
    expires = time.time() + (expires_in if expires_in else settings.signed_url_seconds)
    payload = {"k": kind, "s": subject, "e": round(expires, 3)}
    if nonce:
        payload["n"] = nonce
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(_secret(str(settings.home)), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}", expires


def verify(token: str, kind: str) -> dict:
    """The payload of a valid, unexpired ``kind`` token; 403 otherwise."""
    body, _, mac = token.partition(".")
    try:
        expected = hmac.new(_secret(str(load_settings().home)), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise ValueError
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        raise ApiError(403, "This signed URL is not valid (bad signature)") from None
    if payload.get("k") != kind:
        raise ApiError(403, "This signed URL is not valid here")
    if float(payload.get("e", 0)) < time.time():
        raise ApiError(403, "This signed URL has expired; ask the API for a new one")
    return payload


def base_url() -> str:
    return (load_settings().public_url or request.host_url).rstrip("/")


def url_for(kind: str, subject: dict, expires_in: float | None = None, nonce: str | None = None) -> str:
    token, _ = sign(kind, subject, expires_in, nonce)
    return f"{base_url()}{SIGNED_PREFIX}/{kind}/{token}"


def file_url(path: str | os.PathLike, mime: str) -> str:
    return url_for("file", {"p": os.fspath(path), "m": mime})
