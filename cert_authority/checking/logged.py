"""The `log` check of a licence: its record is what the transparency log recorded when it was
issued (or changed), a revocation or cancellation in the registry is in the log too, and each of
those leaves is in the tree under the latest signed head (an inclusion proof from the tiles,
checked against the head, whose SM2 signature is checked).

    no leaf for this version, or none for its revocation  INDETERMINATE not_logged
    the record differs from its leaf                      INVALID log_mismatch
    the log says revoked or cancelled, the registry not   INVALID log_status_mismatch
    a proof or the head's signature does not check        INVALID log_proof_failed

A leaf is rebuilt in the format it was logged in: format 2 (a salted commitment to the record SM3)
since issue 22's privacy fix, format 1 (the record SM3 itself) for leaves logged before; both bind
the same record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cert_authority.issuing.log_leaves import ENDING_EVENTS, creation_event, licence_leaf
from cert_authority.store.models import LicenceRow
from cert_authority.store.personal import PersonalData
from cert_authority.transparency.log import Inclusion, LoggedEntry, TransparencyLog, log_state
from cert_authority.transparency.tiles import TileError
from verification.merkle import verify_inclusion
from verification.report import Check
from verification.transparency import COMMITTED_FORMAT

ENDINGS = tuple(ENDING_EVENTS.values())  # the events whose leaves say a licence has ended
_NOT_LOGGED = "证照未记入透明日志（可能在日志启用前颁发且未补记，或登记记录未经正常颁证流程写入）"


def _rebuilt(row: LicenceRow, event: str, at: dt.datetime, personal: PersonalData, logged: bytes) -> bytes:
    """The leaf this record should have been logged as, in the format of the leaf that was."""
    return licence_leaf(row, event, at, personal, logged[0] if logged else COMMITTED_FORMAT).encode()


def log_check(
    log: TransparencyLog, row: LicenceRow, now: dt.datetime, personal: PersonalData
) -> tuple[Check, tuple[Any, ...] | None]:
    """The check, and the log's state it was worked out from (`log_state`, counting the ending
    events the check decides on: what a caller keys a remembered check on must be what the check
    itself read, not an earlier read)."""
    try:
        entries, proofs = log.proofs_of(row.identifier)
        if any(entry.leaf_index is None for entry in entries):
            log.integrate(now)  # queued since the last batch: sequence it now rather than say "not yet"
            entries, proofs = log.proofs_of(row.identifier)
    except TileError as exc:
        return Check.invalid("log", "log_proof_failed", f"透明日志的树不完整（{exc}）：日志可能被篡改"), None
    head = proofs[0][1].head if proofs else None
    return _judged(log, row, now, personal, entries, proofs), log_state(entries, head, ENDINGS)


def _judged(
    log: TransparencyLog,
    row: LicenceRow,
    now: dt.datetime,
    personal: PersonalData,
    entries: list[LoggedEntry],
    proofs: list[tuple[str, Inclusion]],
) -> Check:
    created = [entry for entry in entries if entry.event in ("issue", "change")]
    if not created:
        return Check.unknown("log", "not_logged", _NOT_LOGGED)
    needed = [created[0]]
    if created[0].leaf != _rebuilt(row, creation_event(row), row.created_at, personal, created[0].leaf):
        return Check.invalid("log", "log_mismatch", "登记记录与透明日志记载的颁证记录不一致：登记记录可能被篡改")
    ended = [entry for entry in entries if entry.event in ENDINGS]
    if row.status in ENDING_EVENTS:
        event, at = ENDING_EVENTS[row.status], row.status_changed_at
        matching = [entry for entry in ended if entry.leaf == _rebuilt(row, event, at, personal, entry.leaf)]
        if not matching:
            return Check.unknown("log", "not_logged", "证照的吊销或注销未记入透明日志")
        needed.append(matching[0])
    elif ended:
        return Check.invalid(
            "log",
            "log_status_mismatch",
            f"透明日志记载此证照已{'吊销' if ended[0].event == 'revoke' else '注销'}，登记状态与之不符",
        )
    return _included(log, needed, [proof for _, proof in proofs], now)


def _included(log: TransparencyLog, entries: list[LoggedEntry], proofs: list[Inclusion], now: dt.datetime) -> Check:
    by_index = {proof.leaf_index: proof for proof in proofs}
    chosen = [by_index.get(entry.leaf_index) if entry.leaf_index is not None else None for entry in entries]
    if any(proof is None for proof in chosen):
        return Check.unknown("log", "not_logged", "证照已记入透明日志队列，尚未签入树头，请稍后再验")
    head = proofs[0].head
    if not log.is_signed(head, now):
        return Check.invalid("log", "log_proof_failed", "透明日志树头的签名无效")
    for entry, proof in zip(entries, chosen, strict=True):
        assert proof is not None
        if not verify_inclusion(
            log.hasher, proof.leaf_index, head.tree_size, log.hasher.leaf(entry.leaf), proof.hashes, head.root_hash
        ):
            return Check.invalid(
                "log", "log_proof_failed", f"透明日志第 {entry.leaf_index} 条的包含证明不成立：日志可能被篡改"
            )
    return Check.ok("log", f"已记入透明日志（logged at index {entries[0].leaf_index} under head {head.label}）")
