"""Files around a console batch upload: the rejected rows of a finished job (in the file's own
format, with `_line` and `_reason` columns; corrected, it can be uploaded again as it is), and an
empty template for a licence type (its field keys as the header, the examples as a first row)."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from cert_authority.boundary import RowId
from cert_authority.errors import NotFoundError
from cert_authority.issuing.batch import RejectsFile, RowResult, read_rows
from cert_authority.issuing.batch_jobs import BatchJobs
from cert_authority.registry.service import RegistryService
from cert_authority.store.models import BatchJobRow
from cert_authority.web.staff_pages import Staff
from templates.spec import FieldType

router = APIRouter(prefix="/console/batch", include_in_schema=False)
MEDIA = {".csv": "text/csv; charset=utf-8", ".jsonl": "application/jsonl; charset=utf-8"}


@router.get("/{job_id}/rejects")
def rejected_rows(job_id: RowId, request: Request, staff: Staff) -> Response:
    jobs: BatchJobs = request.app.state.batch_jobs
    job = jobs.get(staff.actor(), job_id)  # the department's own jobs only
    reasons = dict(job.rejects)
    if not reasons:
        raise NotFoundError(f"批量任务 {job_id} 没有被拒的行")
    row = _job_row(jobs, job_id)
    suffix = Path(job.filename).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="ecas-rejects-") as folder:
        source, target = Path(folder) / f"batch{suffix}", Path(folder) / f"rejects{suffix}"
        source.write_bytes(jobs.filestore.get(row.file_sm3))
        rejects = RejectsFile(source, target)
        try:
            for found in read_rows(source):
                if found.line in reasons:
                    rejects.add(RowResult(found.line, reason=reasons[found.line], values=found.values))
        finally:
            rejects.close()
        data = target.read_bytes()
    name = f"{Path(job.filename).stem}.rejects{suffix}"
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{_quoted(name)}"}
    return Response(data, media_type=MEDIA.get(suffix, "application/octet-stream"), headers=headers)


@router.get("/template/{type_code}.csv")
def batch_template(type_code: str, request: Request, staff: Staff) -> Response:
    registry: RegistryService = request.app.state.registry
    spec = registry.type_spec(type_code)
    fields = [f for f in spec.fields if f.type is not FieldType.PHOTO]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f.key for f in fields])
    writer.writerow([str(f.example or "") for f in fields])
    data = ("\ufeff" + out.getvalue()).encode("utf-8")  # Excel opens a UTF-8 CSV right with a BOM
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{_quoted(spec.name)}-template.csv"}
    return Response(data, media_type="text/csv; charset=utf-8", headers=headers)


def _job_row(jobs: BatchJobs, job_id: int) -> BatchJobRow:
    with Session(jobs.engine) as session:
        row = session.get(BatchJobRow, job_id)
    assert row is not None  # jobs.get found it
    return row


def _quoted(name: str) -> str:
    return quote(name)
