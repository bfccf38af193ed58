"""Licence keys: created by the CLI, stored hashed in ``$SIGHTLINE_HOME/keys.json``.

Keys are 32 random bytes, so a plain SHA-256 is enough to make the stored file useless to a
reader; lookups compare every stored hash in constant time so timing says nothing about
which key (or which prefix) exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from workers.settings import load_settings
from workers.store import atomic_write_json, read_json

TIERS = ("pro", "basic")


@dataclass(frozen=True)
class KeyRecord:
    id: str
    label: str
    tier: str
    created: float
    hash: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyStore:
    def __init__(self, path: Path | None = None):
        self.path = path or load_settings().keys_file
        self._cache: tuple[float, list[KeyRecord]] | None = None

    def records(self) -> list[KeyRecord]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return []
        if self._cache and self._cache[0] == mtime:
            return self._cache[1]
        raw = read_json(self.path, {}) or {}
        records = [KeyRecord(**entry) for entry in raw.get("keys", [])]
        self._cache = (mtime, records)
        return records

    def _save(self, records: list[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"keys": [r.__dict__ for r in records]})
        self.path.chmod(0o600)
        self._cache = None

    def create(self, tier: str = "pro", label: str = "") -> tuple[KeyRecord, str]:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}")
        key = f"sl-{tier}-{secrets.token_urlsafe(32)}"
        record = KeyRecord(f"key-{uuid.uuid4().hex[:8]}", label, tier, time.time(), _digest(key))
        self._save([*self.records(), record])
        return record, key

    def revoke(self, id_or_label: str) -> int:
        records = self.records()
        kept = [r for r in records if id_or_label not in (r.id, r.label)]
        if len(kept) != len(records):
            self._save(kept)
        return len(records) - len(kept)

    def record_of(self, key: str) -> KeyRecord | None:
        """The key's record, or None for an unknown key. Constant time in the key's value."""
        digest = _digest(key)
        found = None
        for record in self.records():
            if hmac.compare_digest(digest, record.hash):
                found = record
        return found

    def tier_of(self, key: str) -> str | None:
        """The key's tier, or None for an unknown key."""
        record = self.record_of(key)
        return record.tier if record else None

    def find(self, id_or_label: str) -> KeyRecord | None:
        return next((r for r in self.records() if id_or_label in (r.id, r.label)), None)
