"""The issuance transparency log: an append-only Merkle tree (RFC 9162 §2.1 with SM3) of every
licence event, with signed tree heads, inclusion and consistency proofs, and tiles.

    event's transaction ──queue_leaves──► log_entry (leaf_index NULL): insert only, no shared row
    sequencer (`integrate`, one at a time: an advisory lock on PostgreSQL, the write lock on
    SQLite) ──► the pending leaves in id order get the next indices, the rightmost tiles grow,
    a new head is signed and kept ──► proofs and tiles are read from log_tile at a head's size

This is the shape of Trillian's and Tessera's sequencers: appenders never contend on a counter
row, and one sequencer orders everything committed so far in one batch. A leaf whose transaction
commits while a batch runs is simply taken by the next one.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Insert, Table, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement, Label

from cert_authority.pki.service import PkiService
from cert_authority.store.models import LogEntryRow, LogHeadRow, LogTileRow
from cert_authority.timeutil import utc_now
from cert_authority.transparency.tiles import (
    HASH_SIZE,
    TILE_WIDTH,
    TileCache,
    TileError,
    TileNodes,
    tile_path,
    tile_width,
)
from keys.signer import Signer
from verification.merkle import SM3_TREE, consistency_proof, inclusion_proof, root_hash
from verification.transparency import AnchorLeaf, LogLeaf, SignedTreeHead, decode_leaf

log = logging.getLogger("ecas.transparency")

_ENTRIES: Table = LogEntryRow.__table__  # type: ignore[attr-defined]
_TILES: Table = LogTileRow.__table__  # type: ignore[attr-defined]
_HEADS: Table = LogHeadRow.__table__  # type: ignore[attr-defined]
_ADVISORY_KEY = 0x45434153_544C4F47  # "ECASTLOG": one sequencer at a time on PostgreSQL
_SET_INDEX = update(_ENTRIES).where(_ENTRIES.c.id == bindparam("entry_id")).values(leaf_index=bindparam("index"))
_SET_INDICES_PG = text(
    "UPDATE log_entry SET leaf_index = v.leaf_index FROM unnest(CAST(:ids AS bigint[]), CAST(:indices AS bigint[]))"
    " AS v(id, leaf_index) WHERE log_entry.id = v.id"
)
# A licence's leaves and the latest head, in one round trip (a proof's only query once tiles are cached).
_ENTRIES_AND_HEAD = text(
    "SELECT e.id, e.event, e.leaf, e.leaf_index, h.tree_size, h.root_hash, h.timestamp, h.origin, h.signature"
    " FROM log_entry e LEFT JOIN (SELECT * FROM log_head ORDER BY tree_size DESC LIMIT 1) h ON true"
    " WHERE e.identifier = :identifier ORDER BY e.id"
)
BATCH_LIMIT = 50_000
# The latest head as a subquery, to be joined `ON true` by a statement that reads `log_state_of`.
LATEST_HEAD = select(_HEADS).order_by(_HEADS.c.tree_size.desc()).limit(1).subquery("latest_head")


def log_state_of(identifier: ColumnElement[str], counted: Sequence[str]) -> tuple[Label[Any], ...]:
    """What a caller reads with a licence row (its `identifier` column) to know whether the log's
    answer for that licence can have changed since it last worked it out (`checking.logged`): the
    licence's entries (how many, how many of the `counted` events, how many sequenced, the newest)
    and the latest head, every column. An event recorded for the licence, its sequencing, a new
    head, an edited head, and an entry refiled under another identifier or into or out of the
    counted events each change it; a leaf or tile edited in place does not (the caller bounds how
    long it trusts its answer)."""
    mine = _ENTRIES.c.identifier == identifier
    return (
        select(func.count()).select_from(_ENTRIES).where(mine).scalar_subquery().label("log_entries"),
        select(func.count())
        .select_from(_ENTRIES)
        .where(mine, _ENTRIES.c.event.in_(counted))
        .scalar_subquery()
        .label("log_counted"),
        select(func.count(_ENTRIES.c.leaf_index)).where(mine).scalar_subquery().label("log_sequenced"),
        select(func.max(_ENTRIES.c.id)).where(mine).scalar_subquery().label("log_newest"),
        *(column.label(f"log_head_{column.name}") for column in LATEST_HEAD.c),
    )


def log_state(entries: Sequence[LoggedEntry], head: SignedTreeHead | None, counted: Sequence[str]) -> tuple[Any, ...]:
    """`log_state_of` as worked out from what `proofs_of` read: equal to the columns read with a
    licence row only if both reads saw the same entries and head."""
    return (
        len(entries),
        sum(entry.event in counted for entry in entries),
        sum(entry.leaf_index is not None for entry in entries),
        max((entry.entry_id for entry in entries), default=None),
        *(getattr(head, column.name) if head is not None else None for column in LATEST_HEAD.c),
    )


ANCHOR_IDENTIFIER = "audit-chain"  # log_entry.identifier and .event of chain-anchor leaves
ANCHOR_EVENT = "anchor"


def leaf_labels(leaf: LogLeaf | AnchorLeaf) -> tuple[str, str]:
    """The identifier and event a leaf is filed under in `log_entry` (what a licence's leaves are
    found by), as its own content says."""
    return (leaf.identifier, leaf.event) if isinstance(leaf, LogLeaf) else (ANCHOR_IDENTIFIER, ANCHOR_EVENT)


def queue_leaves(connection: Connection, leaves: Sequence[LogLeaf | AnchorLeaf], now: dt.datetime) -> None:
    """Queue the leaves of events recorded in the caller's transaction (they are logged with it,
    or not at all); the sequencer gives them their places."""
    if leaves:
        connection.execute(
            insert(_ENTRIES),
            [
                {
                    **dict(zip(("identifier", "event"), leaf_labels(leaf), strict=True)),
                    "leaf": leaf.encode(),
                    "created_at": now,
                }
                for leaf in leaves
            ],
        )


@dataclass(frozen=True)
class Inclusion:
    """A leaf's inclusion proof under a signed head."""

    leaf_index: int
    leaf: bytes
    hashes: list[bytes]
    head: SignedTreeHead

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.head.tree_size,
            "leaf": base64.b64encode(self.leaf).decode(),
            "leaf_data": decode_leaf(self.leaf).to_json(),
            "hashes": [base64.b64encode(h).decode() for h in self.hashes],
            "root_hash": base64.b64encode(self.head.root_hash).decode(),
        }


@dataclass(frozen=True)
class LoggedEntry:
    entry_id: int
    event: str
    leaf: bytes
    leaf_index: int | None  # None: queued, not yet sequenced


class TransparencyLog:
    def __init__(self, engine: Engine, pki: PkiService, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.pki = pki
        self.clock = clock
        self.hasher = SM3_TREE
        self.tiles = TileCache(self.hasher)
        self._postgresql = engine.dialect.name == "postgresql"
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")  # no BEGIN/ROLLBACK round trips
        self._local = threading.Lock()  # one sequencer per process (SQLite's lock serialises processes)
        # The rightmost tiles this process last wrote: the next batch extends them. A tile only
        # grows, so a kept copy is good for any width up to its own; a longer one is read again.
        self._edges: dict[tuple[int, int], bytes] = {}
        self._signed_heads: set[tuple[bytes, bytes]] = set()  # heads whose signature checked, this process
        self._origin: str | None = None  # the log's name, once its first head is read

    @property
    def origin(self) -> str:
        """The log's name in its heads, fixed by its first head: the service address at that time
        without its scheme, and /log. Witnesses tell logs apart by it, so it stays when the address
        in the settings changes (a command run without the server's ECAS_BASE_URL, a moved host)."""
        if self._origin is None:
            with self._reads.connect() as connection:
                first = connection.execute(select(_HEADS.c.origin).order_by(_HEADS.c.tree_size).limit(1)).scalar()
            if first is None:
                return self.pki.settings.base_url.split("://", 1)[1] + "/log"
            self._origin = str(first)
        return self._origin

    # --- sequencing ------------------------------------------------------------------------------
    def integrate(
        self, now: dt.datetime | None = None, limit: int = BATCH_LIMIT, wait: bool = True
    ) -> SignedTreeHead | None:
        """Give the queued leaves their places (in the order they were queued), grow the tiles and
        sign a head: the new head, or None when nothing was queued. Another sequencer running is
        waited for (its batch may hold the leaves the caller is after), or with `wait` False
        skipped (None): the timer's way, where any worker's turn will do."""
        now = (now or self.clock()).astimezone(dt.timezone.utc)
        if not self._local.acquire(blocking=wait):
            return None
        try:
            # Before the transaction: made on first use, the service key writes its certificate
            # record, which would wait for the write lock this transaction holds on SQLite.
            signer = self.pki.service_signer(now)
            with self.engine.begin() as connection:
                if not self._lock(connection, wait):
                    return None
                size = self._size(connection)
                pending = connection.execute(
                    select(_ENTRIES.c.id, _ENTRIES.c.leaf)
                    .where(_ENTRIES.c.leaf_index.is_(None))
                    .order_by(_ENTRIES.c.id)
                    .limit(limit)
                ).all()
                if not pending:
                    return None
                self._set_indices(connection, [entry_id for entry_id, _ in pending], size)
                written = self._grow_tiles(connection, size, [self.hasher.leaf(leaf) for _, leaf in pending])
                new_size = size + len(pending)

                def load(level: int, index: int) -> bytes:
                    width = tile_width(new_size >> (8 * level), index)
                    return written.get((level, index)) or self._edge(connection, level, index, width)

                root = root_hash(self.hasher, TileNodes(TileCache(self.hasher), new_size, load), new_size)
                head = self._sign(signer, new_size, root, now)
                connection.execute(
                    insert(_HEADS),
                    {
                        "tree_size": head.tree_size,
                        "root_hash": head.root_hash,
                        "timestamp": head.timestamp,
                        "origin": head.origin,
                        "signature": head.signature,
                    },
                )
            log.info("transparency log: %d leaves sequenced, tree size %d", len(pending), new_size)
            return head
        finally:
            self._local.release()

    def _set_indices(self, connection: Connection, ids: list[int], size: int) -> None:
        """leaf_index = size, size + 1, ... for `ids` in order: one statement on PostgreSQL."""
        if self._postgresql:
            connection.execute(_SET_INDICES_PG, {"ids": ids, "indices": list(range(size, size + len(ids)))})
        else:
            connection.execute(
                _SET_INDEX, [{"entry_id": entry_id, "index": size + n} for n, entry_id in enumerate(ids)]
            )

    def _lock(self, connection: Connection, wait: bool) -> bool:
        if self._postgresql:
            if wait:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
                return True
            taken = connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
            return bool(taken.scalar())
        # SQLite: a write first, so this transaction holds the database's write lock from here on.
        connection.execute(text("UPDATE log_head SET tree_size = tree_size WHERE 0"))
        return True

    @staticmethod
    def _size(connection: Connection) -> int:
        return int(connection.execute(select(func.coalesce(func.max(_HEADS.c.tree_size), 0))).scalar_one())

    def _grow_tiles(self, connection: Connection, size: int, hashes: list[bytes]) -> dict[tuple[int, int], bytes]:
        """Append `hashes` to tile level 0 of a tree of `size` leaves; every tile filled passes its
        root up a level. Returns the tiles written, by (level, index)."""
        written: dict[tuple[int, int], bytes] = {}
        level, count, added = 0, size, hashes
        while added:
            index = count // TILE_WIDTH
            kept = count % TILE_WIDTH
            data = self._edge(connection, level, index, kept) if kept else b""
            data += b"".join(added)
            roots = []
            tile_bytes = TILE_WIDTH * HASH_SIZE
            for offset in range(0, len(data), tile_bytes):
                chunk = data[offset : offset + tile_bytes]
                written[(level, index + offset // tile_bytes)] = chunk
                if len(chunk) == tile_bytes:
                    roots.append(self.hasher.root([chunk[i : i + HASH_SIZE] for i in range(0, tile_bytes, HASH_SIZE)]))
            level, count, added = level + 1, count // TILE_WIDTH, roots
        connection.execute(
            self._upsert_tile(), [{"level": lv, "idx": ix, "hashes": data} for (lv, ix), data in written.items()]
        )
        # Partial tiles stay the edge until filled; a full tile not written now is never used again.
        self._edges = {key: data for key, data in self._edges.items() if len(data) < TILE_WIDTH * HASH_SIZE} | written
        return written

    def _edge(self, connection: Connection, level: int, index: int, width: int) -> bytes:
        kept = self._edges.get((level, index))
        if kept is None or len(kept) < width * HASH_SIZE:
            kept = self._load_tile(connection, level, index)
        return kept[: width * HASH_SIZE]

    def _upsert_tile(self) -> Insert:
        statement = (postgresql_insert if self._postgresql else sqlite_insert)(_TILES)
        return statement.on_conflict_do_update(
            index_elements=[_TILES.c.level, _TILES.c.idx], set_={"hashes": statement.excluded.hashes}
        )

    @staticmethod
    def _load_tile(connection: Connection, level: int, index: int) -> bytes:
        data = connection.execute(
            select(_TILES.c.hashes).where(_TILES.c.level == level, _TILES.c.idx == index)
        ).scalar_one_or_none()
        if data is None:
            raise TileError(f"tile {level}/{index} is missing")
        return bytes(data)

    def _sign(self, signer: Signer, size: int, root: bytes, now: dt.datetime) -> SignedTreeHead:
        unsigned = SignedTreeHead(self.origin, size, root, int(now.timestamp() * 1000), b"")
        return SignedTreeHead(unsigned.origin, size, root, unsigned.timestamp, signer.sign(unsigned.body))

    def is_signed(self, head: SignedTreeHead, now: dt.datetime) -> bool:
        """The head's SM2 signature checks with the service certificate. Remembered per head, so
        verifications under the same head do not each spend an SM2 verify on it."""
        key = (head.body, head.signature)
        if key in self._signed_heads:
            return True
        if not head.verify(self.pki.service_signer(now).certificate_chain[0]):
            return False
        if len(self._signed_heads) >= 1000:
            self._signed_heads.clear()  # a bound, not an eviction policy
        self._signed_heads.add(key)
        return True

    def published(self, head: SignedTreeHead) -> dict[str, Any]:
        """A head as `GET /log/head` publishes it and a witness keeps it: its fields, the signed
        note, and the service certificate to check it with (a witness pins its own copy)."""
        certificate = self.pki.service_signer(self.clock()).certificate_chain[0]
        return head.to_json() | {"checkpoint": head.note(certificate).decode(), "certificate": certificate.pem.decode()}

    # --- reading -------------------------------------------------------------------------------
    def latest_head(self) -> SignedTreeHead | None:
        with self._reads.connect() as connection:
            row = connection.execute(select(_HEADS).order_by(_HEADS.c.tree_size.desc()).limit(1)).first()
        return _head(row) if row is not None else None

    def head_at(self, size: int) -> SignedTreeHead | None:
        with self._reads.connect() as connection:
            row = connection.execute(select(_HEADS).where(_HEADS.c.tree_size == size)).first()
        return _head(row) if row is not None else None

    def heads(self, limit: int = 100) -> list[SignedTreeHead]:
        with self._reads.connect() as connection:
            rows = connection.execute(select(_HEADS).order_by(_HEADS.c.tree_size.desc()).limit(limit)).all()
        return [_head(row) for row in rows]

    def nodes(self, size: int, connection: Connection) -> TileNodes:
        """The tree of `size` leaves as a node oracle, tiles read on `connection` unless cached."""
        return TileNodes(self.tiles, size, lambda level, index: self._load_tile(connection, level, index))

    def inclusion(
        self, leaf_index: int, leaf: bytes, head: SignedTreeHead, connection: Connection | None = None
    ) -> Inclusion:
        if connection is None:
            with self._reads.connect() as fresh:
                return self.inclusion(leaf_index, leaf, head, fresh)
        hashes = inclusion_proof(self.hasher, self.nodes(head.tree_size, connection), leaf_index, head.tree_size)
        return Inclusion(leaf_index, leaf, hashes, head)

    def proofs_of(self, identifier: str) -> tuple[list[LoggedEntry], list[tuple[str, Inclusion]]]:
        """A licence version's leaves and, for those under the latest head, their inclusion proofs:
        one query (and the tiles not yet cached)."""
        with self._reads.connect() as connection:
            rows = connection.execute(_ENTRIES_AND_HEAD, {"identifier": identifier}).all()
            entries = [LoggedEntry(row.id, row.event, bytes(row.leaf), row.leaf_index) for row in rows]
            if not rows or rows[0].tree_size is None:
                return entries, []
            head = _head(rows[0])
            return entries, [
                (entry.event, self.inclusion(entry.leaf_index, entry.leaf, head, connection))
                for entry in entries
                if entry.leaf_index is not None and entry.leaf_index < head.tree_size
            ]

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """PROOF(old_size, D[new_size]) from the tiles (empty when the sizes are equal)."""
        if old_size == new_size:
            return []
        with self._reads.connect() as connection:
            return consistency_proof(self.hasher, self.nodes(new_size, connection), old_size, new_size)

    def tile(self, level: int, index: int, width: int, size: int) -> bytes | None:
        """A hash tile at `width` as the tree of `size` leaves has it (None: not in that tree)."""
        if tile_width(size >> (8 * level), index) < width:
            return None
        with self._reads.connect() as connection:
            return self._load_tile(connection, level, index)[: width * HASH_SIZE]

    def entry_bundle(self, index: int, width: int, size: int) -> bytes | None:
        """An entry bundle: each leaf of tile `index` as a big-endian uint16 length and the leaf."""
        if tile_width(size, index) < width:
            return None
        first = index * TILE_WIDTH
        with self._reads.connect() as connection:
            leaves = (
                connection.execute(
                    select(_ENTRIES.c.leaf)
                    .where(_ENTRIES.c.leaf_index >= first, _ENTRIES.c.leaf_index < first + width)
                    .order_by(_ENTRIES.c.leaf_index)
                )
                .scalars()
                .all()
            )
        if len(leaves) != width:
            raise TileError(f"entry bundle {index}: {len(leaves)} leaves of {width} are in the database")
        return b"".join(len(leaf).to_bytes(2, "big") + bytes(leaf) for leaf in leaves)


def _head(row: Any) -> SignedTreeHead:
    return SignedTreeHead(row.origin, row.tree_size, bytes(row.root_hash), row.timestamp, bytes(row.signature))


def licence_proofs(log: TransparencyLog, identifier: str) -> list[tuple[str, Inclusion]] | None:
    """Every leaf logged for a licence version (its creation first), each with its inclusion
    proof under the latest head; queued leaves are sequenced first. None: nothing logged."""
    entries, proofs = log.proofs_of(identifier)
    if any(entry.leaf_index is None for entry in entries):
        log.integrate()
        entries, proofs = log.proofs_of(identifier)
    return proofs or None


def export_tiles(log: TransparencyLog, directory: Path) -> SignedTreeHead | None:
    """The latest head's tree as static files under `directory`, in the tlog-tiles layout
    (`checkpoint`, `tile/<L>/...`, `tile/entries/...`), for any web server or CDN to serve.
    Files already there are the same bytes (a tile path names fixed content): only new ones are
    written, the checkpoint last."""
    head = log.latest_head()
    if head is None:
        return None
    certificate = log.pki.service_signer(log.clock()).certificate_chain[0]
    level, count = 0, head.tree_size
    while count:
        for index in range(-(-count // TILE_WIDTH)):
            width = tile_width(count, index)
            _write_new(directory / tile_path(level, index, width), log.tile(level, index, width, head.tree_size))
            if level == 0:
                bundle = log.entry_bundle(index, width, head.tree_size)
                _write_new(directory / tile_path("entries", index, width), bundle)
        level, count = level + 1, count // TILE_WIDTH
    _write_new(directory / "checkpoint", head.note(certificate), replace=True)
    return head


def _write_new(path: Path, data: bytes | None, replace: bool = False) -> None:
    if data is None or (path.exists() and not replace):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_bytes(data)
    partial.replace(path)  # readers see the whole file or none
