"""The installation's data-encryption keys (keys.datakeys), opened once per process from the
settings: the audit chain and personal data at rest take their keys from here.

Purposes in use: `RECORDS` (the HMAC-SM3 chain of audit rows, use records and status changes) and
`PII` (personal data at rest: SM4-GCM values and blind indexes), `FILES` (the file store's
SM4-GCM-sealed files, store/filestore.py). A caller protects new data with
`ring.current(PURPOSE)`, stores `key.version` beside it and reads it back with
`ring.get(PURPOSE, version)`; `ecas keys rotate PURPOSE` adds a version without touching old data.
"""

from __future__ import annotations

import threading

from cert_authority.settings import Settings
from keys.datakeys import DataKeyRing

__all__ = ["FILES", "PII", "RECORDS", "data_key_ring", "open_keys_early"]

RECORDS = "records"
PII = "pii"
FILES = "files"

_rings: dict[str, DataKeyRing] = {}
_lock = threading.Lock()


def data_key_ring(settings: Settings) -> DataKeyRing:
    """The ring of these settings' key directory, one per process and path (deriving the KEK costs
    a fraction of a second)."""
    path = settings.data_keys_path.resolve()
    key = str(path)
    with _lock:
        ring = _rings.get(key)
        if ring is None:
            ring = _rings[key] = DataKeyRing(path, settings.require_kek())
        return ring


def open_keys_early(settings: Settings) -> None:
    """Derive the KEK and open the ring now (PBKDF2: a fraction of a second, seconds on a loaded
    host) rather than in the first request that writes an audit row. Without a KEK nothing is
    opened: the first chained write then says what is missing."""
    if settings.kek is not None or settings.demo_kek_path.exists():
        data_key_ring(settings).current(RECORDS)
