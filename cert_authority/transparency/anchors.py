"""Audit-chain anchors in the transparency log (issue 25, item 3): each run of `ecas audit anchor`
appends one leaf (format 3, `verification.transparency.AnchorLeaf`: the run's time, how many chain
heads, the SM3 of the heads) in the transaction that records the run, and `ecas audit verify`
checks the anchors kept in `chain_anchor` against the leaves under the latest signed head:

    a run whose leaf differs (a head, a sequence number or the time edited)     anchor_edited
    a run with no leaf (an anchor added, or made before anchors were logged *)  anchor_unlogged
    a leaf with no run (a run deleted, e.g. to hide a chain cut off after it)   anchor_deleted
    a leaf not under the latest head by its inclusion proof, a head whose
    signature fails, or sequenced leaves missing from log_entry                 anchor_proof_failed

(*) Runs older than the first anchor leaf were recorded before anchors went to the log: they are
counted apart (`unlogged_before`), not reported, as rows from before the chain are. Anchors can
be trusted only as far as the log is: the log's own history is what witnesses check
(`ecas log verify`), with heads kept outside this database.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from cert_authority.store.chain import AnchorRun, ChainProblem, anchor
from cert_authority.store.models import ChainAnchorRow, LogEntryRow
from cert_authority.timeutil import aware
from cert_authority.transparency.log import ANCHOR_EVENT, ANCHOR_IDENTIFIER, TransparencyLog, queue_leaves
from cert_authority.transparency.tiles import TileError
from verification.merkle import verify_inclusion
from verification.transparency import AnchorLeaf, LeafFormatError

_ANCHORS: Table = ChainAnchorRow.__table__  # type: ignore[attr-defined]
_ENTRIES: Table = LogEntryRow.__table__  # type: ignore[attr-defined]


def anchor_leaf(run: AnchorRun) -> AnchorLeaf:
    return AnchorLeaf(run.at, len(run.heads), bytes.fromhex(run.digest))


def anchor_and_log(connection: Connection, now: dt.datetime) -> AnchorRun:
    """Record the chains' heads that moved (store.chain.anchor) and queue their leaf, in the
    caller's transaction: a run is logged exactly when it is recorded."""
    run = anchor(connection, now.astimezone(dt.timezone.utc))
    if run.heads:
        queue_leaves(connection, [anchor_leaf(run)], now)
    return run


@dataclass(frozen=True)
class AnchorCheck:
    runs: int  # anchor runs in chain_anchor
    logged: int  # of which found in the log under the latest head
    unlogged_before: int  # runs older than the first anchor leaf (recorded before anchors were logged)
    problems: tuple[ChainProblem, ...]

    def as_dict(self) -> dict[str, object]:
        return {"runs": self.runs, "logged": self.logged, "unlogged_before": self.unlogged_before}


def _runs(connection: Connection) -> dict[dt.datetime, AnchorRun]:
    heads: dict[dt.datetime, list[tuple[int, int, str]]] = defaultdict(list)
    query = select(_ANCHORS.c.at, _ANCHORS.c.chain_partition, _ANCHORS.c.chain_seq, _ANCHORS.c.chain_mac)
    for at, partition, seq, mac in connection.execute(query):
        heads[aware(at).astimezone(dt.timezone.utc)].append((partition, seq, mac))
    return {at: AnchorRun(at, tuple(sorted(found))) for at, found in heads.items()}


def _problem(kind: str, at: dt.datetime, detail: str) -> ChainProblem:
    return ChainProblem(kind, "chain_anchor", None, None, None, f"{at.isoformat()} 的锚定：{detail}")


def check_anchors(log: TransparencyLog, connection: Connection, now: dt.datetime) -> AnchorCheck:
    """The anchors in `chain_anchor` against the chain-anchor leaves under the latest signed head
    (queued leaves are sequenced first)."""
    pending = select(func.count()).where(_ENTRIES.c.identifier == ANCHOR_IDENTIFIER, _ENTRIES.c.leaf_index.is_(None))
    if connection.execute(pending).scalar_one():
        log.integrate(now)
    runs = _runs(connection)
    leaves = connection.execute(
        select(_ENTRIES.c.leaf, _ENTRIES.c.leaf_index)
        .where(_ENTRIES.c.identifier == ANCHOR_IDENTIFIER, _ENTRIES.c.event == ANCHOR_EVENT)
        .order_by(_ENTRIES.c.id)
    ).all()
    problems: list[ChainProblem] = []
    logged: dict[dt.datetime, tuple[bytes, int | None]] = {}
    for leaf, index in leaves:
        try:
            decoded = AnchorLeaf.decode(bytes(leaf))
        except LeafFormatError as exc:
            problems.append(_problem("anchor_proof_failed", now, f"透明日志中的锚定记录无法解析（{exc}）"))
            continue
        logged[decoded.time] = (bytes(leaf), index)
    first_logged = min(logged, default=None)
    by_time = {_milliseconds(at): run for at, run in runs.items()}
    unlogged_before = 0
    matched: list[tuple[dt.datetime, bytes, int | None]] = []
    for at, run in sorted(runs.items()):
        key = _milliseconds(at)
        found = logged.get(_from_milliseconds(key))
        if found is None:
            if first_logged is None or at < first_logged:
                unlogged_before += 1
            else:
                problems.append(
                    _problem("anchor_unlogged", at, "透明日志中没有这次锚定：锚定记录可能被伪造或改动了时间")
                )
        elif found[0] != anchor_leaf(run).encode():
            problems.append(_problem("anchor_edited", at, "与透明日志记载的链头不符：锚定记录被修改"))
        else:
            matched.append((at, found[0], found[1]))
    for time in logged:
        if _milliseconds(time) not in by_time:
            problems.append(
                _problem("anchor_deleted", time, "透明日志记载的这次锚定已不在数据库中：锚定记录（可能连同链尾）被删除")
            )
    problems += _included(log, connection, matched, now)
    return AnchorCheck(len(runs), len(matched), unlogged_before, tuple(problems))


def _included(
    log: TransparencyLog, connection: Connection, matched: list[tuple[dt.datetime, bytes, int | None]], now: dt.datetime
) -> list[ChainProblem]:
    if not matched:
        return []
    head = log.latest_head()
    if head is None or not log.is_signed(head, now):
        return [_problem("anchor_proof_failed", now, "透明日志没有签名有效的树头")]
    sequenced = connection.execute(
        select(func.count(), func.max(_ENTRIES.c.leaf_index)).where(
            _ENTRIES.c.leaf_index.is_not(None), _ENTRIES.c.leaf_index < head.tree_size
        )
    ).one()
    if sequenced[0] != head.tree_size or (head.tree_size and sequenced[1] != head.tree_size - 1):
        detail = f"树头含 {head.tree_size} 条，数据库中只有 {sequenced[0]} 条：日志记录被删除"
        return [_problem("anchor_proof_failed", now, detail)]
    problems = []
    for at, leaf, index in matched:
        if index is None or index >= head.tree_size:
            problems.append(_problem("anchor_unlogged", at, "锚定记录尚未签入透明日志的树头"))
            continue
        try:
            proof = log.inclusion(index, leaf, head, connection)
        except TileError as exc:
            problems.append(_problem("anchor_proof_failed", at, f"透明日志的树不完整（{exc}）"))
            continue
        if not verify_inclusion(log.hasher, index, head.tree_size, log.hasher.leaf(leaf), proof.hashes, head.root_hash):
            problems.append(
                _problem("anchor_proof_failed", at, f"透明日志第 {index} 条的包含证明不成立：日志可能被篡改")
            )
    return problems


def _milliseconds(at: dt.datetime) -> int:
    return (aware(at) - _EPOCH) // dt.timedelta(milliseconds=1)


def _from_milliseconds(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=value)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
