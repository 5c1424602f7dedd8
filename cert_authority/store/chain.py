"""Tamper-evident records: every audit row (uses included) and every licence status event carries an
HMAC-SM3 chain, so an edited, inserted or deleted row is found (`verify_chains`, `ecas audit verify`).

A chain is a partition: a random 62-bit id, rows numbered 1, 2, 3… (`chain_seq`), each row's
`chain_mac` = HMAC-SM3(key, partition ‖ seq ‖ chain_prev ‖ the row's columns), `chain_prev` the
previous row's `chain_mac` (zeros for the first). Each row verifies on its own (an edit breaks its
MAC; a row made without the key has none that verifies) and the links between rows show what is
missing (a deletion leaves a gap and a `chain_prev` that matches nothing).

Why partitions: one chain for the whole system would need its head read and written by every
transaction that audits, a single hot row that all workers queue on. Instead each process keeps a
pool of partitions of its own, in memory; a transaction takes one from the pool at its first
chained row, extends it, and gives it back at commit (the new head) or rollback (the old head), so
nothing is read from the database to write a row and two transactions never share a partition.
A process that ends leaves its partitions as they are; the next one starts new ones.

What the chain does not see by itself: rows cut off the end of a partition. Anchors do: `anchor`
records every partition's head (`chain_anchor`), and verification requires each anchored row to
be there unchanged. The SM3 of an anchor run's heads (`AnchorRun.digest`) is the value published
outside the database: `ecas audit anchor` appends it to the transparency log as a leaf
(transparency/anchors.py, which also checks the anchors against the log for `ecas audit verify`),
so an anchor edited or deleted to hide a cut-off tail is found there.

The key: the `records` data-encryption key (store/data_keys.py); a partition keeps the key version
it started with, so `ecas keys rotate records` takes effect for partitions started afterwards and
verification tries each version of the ring.

Writing: ORM sessions need nothing (a before_flush hook chains new AuditEventRow and LicenceEventRow
objects). Core INSERTs take their chain columns from `chain_link(connection)`.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from cert_authority.store.models import AuditEventRow, ChainAnchorRow, LicenceEventRow
from keys.aead import hmac_sm3
from keys.datakeys import DataKey
from keys.sm2 import sm3

__all__ = [
    "AnchorRun",
    "ChainLink",
    "ChainProblem",
    "ChainReport",
    "RecordChain",
    "anchor",
    "attach_chain",
    "chain_link",
    "verify_chains",
]

GENESIS = "0" * 64
_MODELS: dict[str, Any] = {"audit_event": AuditEventRow, "licence_event": LicenceEventRow}
_CHAIN_COLUMNS = ("chain_partition", "chain_seq", "chain_prev", "chain_mac")
# licence_event.licence_id is left out: the fast issuing path takes it from the licence row the same
# statement inserts, after the MAC is made. The row's identifier is covered, and verification checks
# that licence_id names the licence with that identifier.
_UNCOVERED = {"id", "licence_id", *_CHAIN_COLUMNS}
COVERED: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in model.__table__.c if c.name not in _UNCOVERED) for name, model in _MODELS.items()
}
_PENDING = "ecas_chain_pending"


def _field(value: object) -> str:
    """One column, unambiguously: "~" for NULL, else its text with its length in front."""
    if value is None:
        return "~"
    if type(value) is not str:
        if isinstance(value, dt.datetime):
            # SQLite gives back naive datetimes for what was written as UTC; PostgreSQL aware ones.
            aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            value = aware.astimezone(dt.UTC).isoformat()
        elif isinstance(value, dt.date):
            value = value.isoformat()
        else:
            value = str(value)  # int, bool
    return f"{len(value)}:{value}"


def chain_key(key: DataKey) -> bytes:
    """The HMAC key of the chain, derived from the `records` data key."""
    return key.subkey("record-chain")


def row_mac(mac_key: bytes, table: str, partition: int, seq: int, prev: str, values: Mapping[str, object]) -> str:
    """The MAC of one row (hex): its table, place in the chain, predecessor and covered columns
    (each length-prefixed, in COVERED's order)."""
    fields = "|".join([_field(values.get(name)) for name in COVERED[table]])
    content = f"ecas-chain/1|{table}|{partition}|{seq}|{prev}|{fields}"
    return hmac_sm3(mac_key, content.encode()).hex()


@dataclass
class _Partition:
    id: int
    key: DataKey
    seq: int = 0  # the committed head
    head: str = GENESIS
    mac_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.mac_key = chain_key(self.key)


@dataclass
class ChainLink:
    """The rows one transaction adds to its partition, not yet committed."""

    partition: _Partition
    seq: int
    head: str

    def seal(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        """`values` with its chain columns, as the next row of the partition."""
        sealed = self.candidate(table, values)
        self.accept(sealed)
        return sealed

    def candidate(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        """The row as it would be next, without taking its place: for a statement that writes one
        of two rows (then `accept` the one it wrote)."""
        seq, prev = self.seq + 1, self.head
        mac = row_mac(self.partition.mac_key, table, self.partition.id, seq, prev, values)
        return values | {"chain_partition": self.partition.id, "chain_seq": seq, "chain_prev": prev, "chain_mac": mac}

    def accept(self, sealed: Mapping[str, Any]) -> None:
        self.seq, self.head = sealed["chain_seq"], sealed["chain_mac"]


@dataclass
class RecordChain:
    """One process's partitions on one engine."""

    key: Callable[[], DataKey]  # the current `records` key
    _free: list[_Partition] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def link(self, connection: Connection) -> ChainLink:
        """The connection's transaction's link, taken from the pool at its first chained row."""
        info = connection.info
        link: ChainLink | None = info.get(_PENDING)
        if link is None:
            with self._lock:
                partition = self._free.pop() if self._free else None
            if partition is None:
                partition = _Partition(secrets.randbits(62), self.key())
            link = info[_PENDING] = ChainLink(partition, partition.seq, partition.head)
        return link

    def settle(self, connection: Connection, committed: bool) -> None:
        """The transaction ended: keep its rows' head (committed) or forget them (rolled back)."""
        link: ChainLink | None = connection.info.pop(_PENDING, None)
        if link is None:
            return
        if committed:
            link.partition.seq, link.partition.head = link.seq, link.head
        with self._lock:
            self._free.append(link.partition)


# By the engine's pool, which the engine's variants (engine.execution_options(...)) share with it.
_chains: weakref.WeakKeyDictionary[Any, RecordChain] = weakref.WeakKeyDictionary()


def attach_chain(engine: Engine, key: Callable[[], DataKey]) -> RecordChain:
    """Chain every audit row and status event written through `engine` from now on."""
    chain = _chains.get(engine.pool)
    if chain is not None:
        return chain
    chain = _chains[engine.pool] = RecordChain(key)
    # A failed COMMIT after this event (the connection lost at that moment) leaves a gap that
    # verification reports as a deleted row: whether that transaction's rows exist is unknowable too.
    event.listen(engine, "commit", lambda connection: chain.settle(connection, True))
    event.listen(engine, "rollback", lambda connection: chain.settle(connection, False))
    return chain


def _chain_of(connection: Connection) -> RecordChain | None:
    return _chains.get(connection.engine.pool) if _chains else None


def _autocommit(connection: Connection) -> bool:
    return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


@contextmanager
def chain_link(connection: Connection) -> Iterator[ChainLink | None]:
    """For Core INSERTs: the link to seal rows with (None when the engine keeps no chain). On an
    AUTOCOMMIT connection each statement commits itself, so the head is kept (or dropped, if the
    block raised) when the block ends; otherwise at the transaction's commit or rollback."""
    chain = _chain_of(connection)
    if chain is None:
        yield None
        return
    link = chain.link(connection)
    if not _autocommit(connection):
        yield link
        return
    try:
        yield link
    except BaseException:
        chain.settle(connection, False)
        raise
    chain.settle(connection, True)


@event.listens_for(Session, "before_flush")
def _chain_new_rows(session: Session, _context: object, _instances: object) -> None:
    if not _chains:
        return
    rows = [obj for obj in session.new if isinstance(obj, (AuditEventRow, LicenceEventRow)) and obj.chain_mac is None]
    if not rows:
        return
    connection = session.connection()
    with chain_link(connection) as link:
        if link is None:
            return
        rows.sort(key=lambda obj: 0 if isinstance(obj, LicenceEventRow) else 1)  # any fixed order will do
        for obj in rows:
            table = obj.__tablename__
            sealed = link.seal(table, {name: getattr(obj, name) for name in COVERED[table]})
            for name in _CHAIN_COLUMNS:
                setattr(obj, name, sealed[name])


# --- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    kind: str  # edited, inserted, deleted, truncated, unchained, relinked
    table: str | None
    row_id: int | None
    partition: int | None
    seq: int | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "table": self.table,
            "id": self.row_id,
            "partition": self.partition,
            "seq": self.seq,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ChainReport:
    rows: int
    partitions: int
    unchained_before: int  # rows written before the chain began (before migration 0012)
    anchors: int
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "partitions": self.partitions,
            "unchained_before": self.unchained_before,
            "anchors": self.anchors,
            "problems": [problem.as_dict() for problem in self.problems],
        }


@dataclass(frozen=True)
class _Row:
    table: str
    id: int
    partition: int | None
    seq: int | None
    prev: str | None
    mac: str | None
    values: dict[str, object]


def _read_rows(connection: Connection) -> list[_Row]:
    rows = []
    for name, model in _MODELS.items():
        table: Table = model.__table__
        columns = [table.c.id, *(table.c[c] for c in _CHAIN_COLUMNS), *(table.c[c] for c in COVERED[name])]
        for record in connection.execute(select(*columns).order_by(table.c.id)).mappings():
            values = {c: record[c] for c in COVERED[name]}
            rows.append(
                _Row(name, record["id"], record["chain_partition"], record["chain_seq"], record["chain_prev"],
                     record["chain_mac"], values)
            )  # fmt: skip
    return rows


def _verifies(mac_key: bytes, row: _Row) -> bool:
    assert row.partition is not None and row.seq is not None
    expected = row_mac(mac_key, row.table, row.partition, row.seq, row.prev or "", row.values)
    return secrets.compare_digest(expected, row.mac or "")


def verify_chains(connection: Connection, keys: Sequence[DataKey]) -> ChainReport:
    """Check every chained row's MAC and links, every anchor, and that each status event belongs to
    the licence it names; `keys`: every version of the `records` key."""
    rows = _read_rows(connection)
    problems: list[ChainProblem] = []
    chained = [row for row in rows if row.partition is not None]
    # Rows without chain columns: fine before the chain began (per table), an insertion after it.
    first_chained = {name: min((r.id for r in chained if r.table == name), default=None) for name in _MODELS}
    unchained_before = 0
    for row in rows:
        if row.partition is None:
            start = first_chained[row.table]
            if start is None or row.id < start:
                unchained_before += 1
            else:
                problems.append(_problem("inserted", row, "行没有链校验值（在链开始之后写入）"))
    partitions: dict[int, list[_Row]] = {}
    for row in chained:
        partitions.setdefault(row.partition, []).append(row)  # type: ignore[arg-type]
    heads: dict[int, dict[int, str]] = {}
    for partition, members in partitions.items():
        valid = _verify_partition(partition, members, keys, problems)
        heads[partition] = {seq: row.mac or "" for seq, row in valid.items()}
    anchors = connection.execute(select(ChainAnchorRow.__table__)).mappings().all()  # type: ignore[attr-defined]
    flagged = {(p.partition, p.seq) for p in problems}
    for anchor_row in anchors:
        partition, seq = anchor_row["chain_partition"], anchor_row["chain_seq"]
        if heads.get(partition, {}).get(seq) != anchor_row["chain_mac"] and (partition, seq) not in flagged:
            detail = f"锚定于 {anchor_row['at']} 的链头不在（或已改变）"
            problems.append(ChainProblem("truncated", None, None, partition, seq, detail))
    problems.extend(_status_events_misplaced(connection))
    return ChainReport(len(rows), len(partitions), unchained_before, len(anchors), tuple(problems))


def _problem(kind: str, row: _Row, detail: str) -> ChainProblem:
    return ChainProblem(kind, row.table, row.id, row.partition, row.seq, detail)


def _verify_partition(
    partition: int, members: list[_Row], keys: Sequence[DataKey], problems: list[ChainProblem]
) -> dict[int, _Row]:
    """One partition's rows that verify, by seq; what does not goes to `problems`."""
    members.sort(key=lambda r: (r.seq or 0, r.id))
    mac_keys = [chain_key(k) for k in keys]
    key = next((k for k in mac_keys for r in members if _verifies(k, r)), None)
    valid: dict[int, _Row] = {}
    failed: list[_Row] = []
    for row in members:
        seq = row.seq or 0
        if key is None or not _verifies(key, row):
            failed.append(row)
        elif seq in valid:  # a copy of a genuine row
            problems.append(_problem("inserted", row, f"与 {valid[seq].table} #{valid[seq].id} 重复"))
        else:
            valid[seq] = row
    vouched = {row.prev for row in valid.values()}
    for row in failed:
        # A genuine row that was edited keeps its place: its successor names its MAC, or (the last
        # row) its predecessor is the one it names. A row made up has neither.
        before = valid.get((row.seq or 0) - 1)
        before_mac = GENESIS if row.seq == 1 else (before.mac if before is not None else None)
        in_place = row.mac in vouched or (row.seq not in valid and before_mac is not None and before_mac == row.prev)
        if in_place:
            problems.append(_problem("edited", row, "校验值不符：行在写入后被修改"))
        else:
            problems.append(_problem("inserted", row, "校验值不符：不是本系统写入的行"))
    flagged = {p.seq for p in problems if p.partition == partition}
    # Links: each valid row's predecessor must be there (seq - 1 with that MAC, or the start).
    for seq, row in sorted(valid.items()):
        if seq == 1:
            if row.prev != GENESIS:
                problems.append(_problem("relinked", row, "链首的前值不是初始值"))
            continue
        before = valid.get(seq - 1)
        if (before is None or before.mac != row.prev) and seq - 1 not in flagged:
            detail = f"第 {seq - 1} 行缺失（在 {row.table} #{row.id} 之前）"
            problems.append(ChainProblem("deleted", row.table, row.id, partition, seq - 1, detail))
    if valid and 1 not in valid and 1 not in flagged:
        problems.append(ChainProblem("deleted", None, None, partition, 1, f"第 1–{min(valid) - 1} 行缺失"))
    return valid


def _status_events_misplaced(connection: Connection) -> list[ChainProblem]:
    """licence_event.licence_id is not under the MAC (see _UNCOVERED): it must name the licence
    with the event's identifier."""
    from cert_authority.store.models import LicenceRow

    events: Table = LicenceEventRow.__table__  # type: ignore[attr-defined]
    licences: Table = LicenceRow.__table__  # type: ignore[attr-defined]
    query = (
        select(events.c.id, events.c.chain_partition, events.c.chain_seq)
        .select_from(events.outerjoin(licences, licences.c.id == events.c.licence_id))
        .where(events.c.chain_partition.is_not(None))
        .where((licences.c.identifier.is_(None)) | (licences.c.identifier != events.c.identifier))
    )
    detail = "状态事件指向的证照与其标识不符"
    return [
        ChainProblem("edited", "licence_event", row.id, row.chain_partition, row.chain_seq, detail)
        for row in connection.execute(query)
    ]


# --- anchoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorRun:
    at: dt.datetime
    heads: tuple[tuple[int, int, str], ...]  # (partition, seq, mac), sorted

    @property
    def digest(self) -> str:
        """SM3 over the heads: the one value appended to the transparency log for this run (`at`
        in UTC: transparency.anchors.anchor_and_log passes it so, and rebuilds runs so)."""
        text = "\n".join(f"{p}:{s}:{m}" for p, s, m in self.heads)
        return sm3(f"ecas-chain-anchor/1\n{self.at.isoformat()}\n{text}".encode()).hex()


def anchor(connection: Connection, now: dt.datetime) -> AnchorRun:
    """Record the head of every partition whose head moved since its last anchor (in the caller's
    transaction). Run periodically (`ecas audit anchor`, a timer)."""
    heads: dict[int, tuple[int, str]] = {}
    for model in _MODELS.values():
        table: Table = model.__table__
        last = (
            select(table.c.chain_partition, func.max(table.c.chain_seq).label("seq"))
            .where(table.c.chain_partition.is_not(None))
            .group_by(table.c.chain_partition)
            .subquery()
        )
        query = select(table.c.chain_partition, table.c.chain_seq, table.c.chain_mac).join(
            last, (last.c.chain_partition == table.c.chain_partition) & (last.c.seq == table.c.chain_seq)
        )
        for partition, seq, mac in connection.execute(query):
            if partition not in heads or seq > heads[partition][0]:
                heads[partition] = (seq, mac)
    anchors: Table = ChainAnchorRow.__table__  # type: ignore[attr-defined]
    anchored: dict[int, int] = {}
    for partition, seq in connection.execute(select(anchors.c.chain_partition, anchors.c.chain_seq)):
        anchored[partition] = max(seq, anchored.get(partition, 0))
    moved = tuple(sorted((p, s, m) for p, (s, m) in heads.items() if s > anchored.get(p, 0)))
    if moved:
        connection.execute(
            anchors.insert(), [{"at": now, "chain_partition": p, "chain_seq": s, "chain_mac": m} for p, s, m in moved]
        )
    return AnchorRun(now, moved)
