"""Batch files uploaded in the console (批量颁发), issued in a background thread of the worker that
received them, chunk by chunk, with the counts written after each chunk so that any worker can show
the progress. Every row keeps its Idempotency-Key (see `batch`): running the same file again, after
an interruption or once its rejects are corrected, issues each licence exactly once.

Large backfills belong to `ecas issue-batch` (worker processes on every core); this is for the
files a department uploads during the day. Rows with photos need the photo files beside them, so
photo types go through the command line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_may_read_for, issuing_department, readable_department
from cert_authority.errors import ConflictError, InvalidRequestError, NotFoundError, ServiceError
from cert_authority.issuing.batch import (
    CHUNK_ROWS,
    JSONL_SUFFIXES,
    RowResult,
    check_batch,
    chunks,
    issue_rows,
    read_rows,
)
from cert_authority.issuing.issuance import IssuanceService
from cert_authority.store.audit import audit_row
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import BatchJobRow
from cert_authority.timeutil import aware, utc_now

log = logging.getLogger("ecas.batch")

MAX_SHOWN_REJECTS = 500  # kept with the job for the page; the counts stay exact beyond that
STALE_AFTER = dt.timedelta(minutes=2)  # a running job not heard from for this long was interrupted


@dataclass(frozen=True)
class BatchJob:
    id: int
    type_code: str
    issuer_uscc: str
    filename: str
    state: str  # queued, running, done, failed, interrupted
    total: int
    issued: int
    skipped: int
    rejected: int
    rejects: list[tuple[int, str]]
    message: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def done_rows(self) -> int:
        return self.issued + self.skipped + self.rejected

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else min(100, round(100 * self.done_rows / self.total))

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "interrupted")


class BatchJobs:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        issuance: IssuanceService,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.issuance = issuance
        self.clock = clock

    def submit(self, actor: Actor, type_code: str, filename: str, data: bytes, issuer_uscc: str | None = None) -> int:
        """Check the file and the right to issue, store the file, start issuing; the job's id."""
        issuer = issuing_department(actor, issuer_uscc)
        check_batch(self.issuance, type_code, issuer)
        suffix = Path(filename).suffix.lower()
        if suffix not in (".csv", *JSONL_SUFFIXES):
            raise InvalidRequestError("批量文件应为 .csv 或 .jsonl（JSON Lines）文件")
        with tempfile.TemporaryDirectory(prefix="ecas-batch-") as folder:
            path = Path(folder) / f"batch{suffix}"
            path.write_bytes(data)
            try:
                total = sum(1 for _ in read_rows(path))
            except ValueError as exc:
                raise InvalidRequestError(str(exc)) from None
        if total == 0:
            raise InvalidRequestError("批量文件没有数据行")
        now = self.clock()
        row = BatchJobRow(
            type_code=type_code,
            issuer_uscc=issuer,
            filename=Path(filename).name[:200],
            file_sm3=self.filestore.put(data),
            created_by=actor.label,
            created_at=now,
            updated_at=now,
            state="queued",
            total=total,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(row)
            session.flush()
            detail = {"job": row.id, "file": row.filename, "rows": total}
            session.add(audit_row(actor, "batch_submit", type_code, now, detail=detail))
            session.commit()
        assert row.id is not None
        threading.Thread(target=self.run, args=(row.id, actor), name=f"batch-{row.id}", daemon=True).start()
        return row.id

    def rerun(self, actor: Actor, job_id: int) -> int:
        """The same file again: rows already issued are skipped, the rest are issued once."""
        job = self.get(actor, job_id)
        if not job.finished:
            raise ConflictError(f"批量任务 {job_id} 还在进行中，结束后才能再次运行")
        with Session(self.engine) as session:
            row = session.get(BatchJobRow, job_id)
            assert row is not None
            data = self.filestore.get(row.file_sm3)
        return self.submit(actor, job.type_code, job.filename, data, job.issuer_uscc)

    def run(self, job_id: int, actor: Actor) -> None:
        with Session(self.engine) as session:
            row = session.get(BatchJobRow, job_id)
            assert row is not None
            type_code, issuer, suffix = row.type_code, row.issuer_uscc, Path(row.filename).suffix.lower()
            data = self.filestore.get(row.file_sm3)
        self._update(job_id, state="running")
        try:
            with tempfile.TemporaryDirectory(prefix="ecas-batch-") as folder:
                path = Path(folder) / f"batch{suffix}"
                path.write_bytes(data)
                unreadable: list[RowResult] = []  # rows read while a chunk filled up: recorded with it
                for chunk in chunks(read_rows(path), CHUNK_ROWS, unreadable.append):
                    issued = issue_rows(self.issuance, type_code, issuer, chunk, Path(folder), actor)
                    self._record(job_id, [*unreadable, *issued])
                    unreadable.clear()
                self._record(job_id, unreadable)
            self._update(job_id, state="done")
        except ServiceError as exc:  # it concerns every row (the seal revoked meanwhile, say): say so
            self._update(job_id, state="failed", message=f"批量颁发中断：{exc}"[:500])
        except Exception:  # the job must end in a state whatever went wrong; the details are for the log
            log.exception("batch job %s failed", job_id)
            message = "批量颁发因内部错误中断，请联系管理员；再次运行会跳过已颁发的行"
            self._update(job_id, state="failed", message=message)

    def get(self, actor: Actor, job_id: int) -> BatchJob:
        with Session(self.engine) as session:
            row = session.get(BatchJobRow, job_id)
        if row is None:
            raise NotFoundError(f"没有编号为 {job_id} 的批量任务")
        ensure_may_read_for(actor, row.issuer_uscc, f"批量任务 {job_id} ")
        return self._public(row)

    def recent(self, actor: Actor, limit: int = 20) -> list[BatchJob]:
        query = select(BatchJobRow).order_by(col(BatchJobRow.id).desc()).limit(limit)
        scope = readable_department(actor, None)
        if scope is not None:
            query = query.where(col(BatchJobRow.issuer_uscc) == scope)
        with Session(self.engine) as session:
            return [self._public(row) for row in session.exec(query).all()]

    def _record(self, job_id: int, results: list[RowResult]) -> None:
        if not results:
            return
        with Session(self.engine) as session:
            row = session.get(BatchJobRow, job_id)
            assert row is not None
            rejects = json.loads(row.rejects_json)
            for result in results:
                if result.rejected:
                    row.rejected += 1
                    if len(rejects) < MAX_SHOWN_REJECTS:
                        rejects.append([result.line, result.reason])
                elif result.replayed:
                    row.skipped += 1
                else:
                    row.issued += 1
            row.rejects_json = json.dumps(rejects, ensure_ascii=False)
            row.updated_at = self.clock()
            session.add(row)
            session.commit()

    def _update(self, job_id: int, **changes: str) -> None:
        with Session(self.engine) as session:
            row = session.get(BatchJobRow, job_id)
            assert row is not None
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = self.clock()
            session.add(row)
            session.commit()

    def _public(self, row: BatchJobRow) -> BatchJob:
        assert row.id is not None
        state = row.state
        if state in ("queued", "running") and aware(row.updated_at) < self.clock() - STALE_AFTER:
            state = "interrupted"  # its worker stopped (restart, kill): run it again to finish
        return BatchJob(
            row.id,
            row.type_code,
            row.issuer_uscc,
            row.filename,
            state,
            row.total,
            row.issued,
            row.skipped,
            row.rejected,
            [(int(line), str(reason)) for line, reason in json.loads(row.rejects_json)],
            row.message,
            aware(row.created_at),
            aware(row.updated_at),
        )
