"""Bulk issuance (存量证照批量签章): one licence per row of a CSV or JSON Lines file.

- Columns are the licence type's field keys. The photo field's column holds the path of the photo
  (relative to the batch file); `valid_from` / `valid_until` (YYYY-MM-DD) give the validity for
  types that take it at issue. Columns whose name starts with "_" are ignored, so a rejects file
  (`_line`, `_reason`), once corrected, can be run again as it is.
- Under an origin (`issuing.origin`), more columns: stock (存量转换) `licence_number`, `issue_date`,
  `valid_from` / `valid_until` (any type: the paper licence's) and `original_issuer_name`;
  paper_twin (同步制发) `licence_number`. Without one, these columns are refused as unknown fields.
- Every row gets an Idempotency-Key, the SM3 of the type, the issuer and the row: running a file
  again skips the rows already issued and never issues one twice, however the first run ended.
- Rows go in chunks to worker processes (one per core); each chunk is one `issue_many` call: one
  block of serials, one transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.errors import InvalidRequestError, LicenceDataError, PermissionDeniedError
from cert_authority.issuing.face_data import PHOTO_MAX_BYTES, photo_field
from cert_authority.issuing.issuance import IssuanceService, IssueRequest
from cert_authority.issuing.origin import original_licence
from cert_authority.settings import Settings
from keys.sm2 import sm3

CHUNK_ROWS = 50
JSONL_SUFFIXES = (".jsonl", ".ndjson")
VALIDITY_COLUMNS = ("valid_from", "valid_until")
MAX_LINE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class BatchOrigin:
    """Where every row of a batch comes from: new, stock or paper_twin (`issuing.origin`)."""

    origin: str = "new"
    include_expired: bool = False  # stock: import licences already expired (they read as expired)


NEW = BatchOrigin()


@dataclass(frozen=True)
class BatchRow:
    line: int  # 1-based line of the file where the row starts
    values: dict[str, Any]  # column → value, "_" columns and empty CSV cells left out


@dataclass(frozen=True)
class RowResult:
    line: int
    identifier: str | None = None
    replayed: bool = False  # issued by an earlier run: skipped
    reason: str | None = None  # why the row was rejected
    values: dict[str, Any] | None = None  # a rejected row's values, for the rejects file

    @property
    def rejected(self) -> bool:
        return self.reason is not None


@dataclass
class BatchSummary:
    issued: int = 0
    skipped: int = 0
    rejected: int = 0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.issued + self.skipped + self.rejected

    def add(self, result: RowResult) -> None:
        if result.rejected:
            self.rejected += 1
        elif result.replayed:
            self.skipped += 1
        else:
            self.issued += 1


# --- reading ------------------------------------------------------------------------------------
class BatchFileError(InvalidRequestError, ValueError):
    """The batch file as a whole cannot be read (its type, encoding, header): nothing is issued."""


def read_rows(path: Path) -> Iterator[BatchRow | RowResult]:
    """The rows of a batch file, streamed; a row that cannot be read is a rejected RowResult."""
    if path.suffix.lower() in JSONL_SUFFIXES:
        yield from _jsonl_rows(path)
    elif path.suffix.lower() == ".csv":
        yield from _csv_rows(path)
    else:
        raise BatchFileError(f"批量文件 {path.name} 应为 .csv 或 .jsonl（JSON Lines）文件")


def _csv_rows(path: Path) -> Iterator[BatchRow | RowResult]:
    with path.open(encoding="utf-8-sig", newline="") as handle:  # Excel writes a BOM
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _unreadable(path, 1, exc) from None
        if not header:
            raise BatchFileError(f"批量文件 {path.name} 是空的：第一行应为字段 key")
        header = [h.strip() for h in header]
        duplicates = sorted({h for h in header if header.count(h) > 1})
        if duplicates or "" in header:
            names = "、".join(duplicates) or "（空列名）"
            raise BatchFileError(f"批量文件 {path.name} 的表头有重复或空的列名：{names}")
        line = reader.line_num + 1
        try:
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    # A row with too few or too many cells keeps what lines up, for the rejects file.
                    values = {k: v for k, v in zip(header, cells, strict=False) if v.strip() and not k.startswith("_")}
                    if len(cells) != len(header):
                        reason = f"该行有 {len(cells)} 列，表头有 {len(header)} 列"
                        yield RowResult(line, reason=reason, values=values)
                    else:
                        yield BatchRow(line, values)
                line = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _unreadable(path, line, exc) from None


def _unreadable(path: Path, line: int, exc: Exception) -> BatchFileError:
    if isinstance(exc, UnicodeDecodeError):  # Excel on a Chinese Windows saves CSV as GBK
        # (no line number: the text is decoded in blocks, ahead of the line being read)
        return BatchFileError(
            f"批量文件 {path.name} 不是 UTF-8 编码：请在 Excel 中“另存为 CSV UTF-8（逗号分隔）”后重新上传"
        )
    return BatchFileError(f"批量文件 {path.name} 第 {line} 行无法读取：{exc}")


def _jsonl_rows(path: Path) -> Iterator[BatchRow | RowResult]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                yield RowResult(number, reason="该行超过 1 MB", values={})
                continue
            try:
                values = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                text = raw.decode("utf-8", "replace").strip()
                yield RowResult(number, reason=f"不是有效的 UTF-8 JSON：{exc}", values={"_raw": text})
                continue
            if not isinstance(values, dict):
                yield RowResult(number, reason="每行应为一个 JSON 对象（字段 key → 值）", values={"_raw": values})
                continue
            yield BatchRow(number, {k: v for k, v in values.items() if not k.startswith("_")})


def row_key(type_code: str, issuer: str, row: BatchRow, origin: BatchOrigin = NEW) -> str:
    """The row's Idempotency-Key: the same row of the same type, issuer and origin, the same key
    (a new licence's key is as it was before origins existed)."""
    parts: list[Any] = [type_code, issuer, row.values]
    if origin.origin != "new":
        parts.append(origin.origin)
    canonical = json.dumps(parts, ensure_ascii=False, sort_keys=True)
    return "batch:" + sm3(canonical.encode()).hex()


def row_request(
    row: BatchRow, key: str, photo_key: str | None, folder: Path, origin: BatchOrigin = NEW
) -> IssueRequest:
    """The issue request for one row (ValueError names what is wrong with the row)."""
    values = dict(row.values)
    dates = {column: _date(values.pop(column, None), column) for column in VALIDITY_COLUMNS}
    original = None
    if origin.origin != "new":  # else these columns stay in the face data, refused as unknown
        number = values.pop("licence_number", None)
        issue_date = _date(values.pop("issue_date", None), "issue_date")
        issuer_name = values.pop("original_issuer_name", None)
        original = original_licence(
            origin.origin,
            str(number) if number is not None else None,
            issue_date,
            str(issuer_name) if issuer_name is not None else None,
            origin.include_expired,
        )
    photo = None
    if photo_key is not None and photo_key in values:
        photo = _photo(folder, str(values.pop(photo_key)))
    return IssueRequest(values, photo, key, dates["valid_from"], dates["valid_until"], original)


def _date(text: Any, column: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{column}：日期应为 YYYY-MM-DD，收到 {str(text)[:40]!r}") from None


def _photo(folder: Path, name: str) -> bytes:
    path = (folder / name.strip()).resolve()
    if not path.is_relative_to(folder.resolve()):  # a batch file names photos beside it, nothing else
        raise ValueError(f"照片路径 {name} 应在批量文件所在目录之内")
    if not path.is_file():
        raise ValueError(f"照片文件 {name} 不存在（路径相对于批量文件所在目录）")
    if path.stat().st_size > PHOTO_MAX_BYTES:
        raise ValueError(f"照片文件 {name} 过大，上限 {PHOTO_MAX_BYTES // 1048576} MB")
    try:
        return path.read_bytes()
    except OSError as exc:  # unreadable: this row is rejected, the batch goes on
        raise ValueError(f"照片文件 {name} 无法读取：{exc.strerror}") from None


# --- issuing ------------------------------------------------------------------------------------


def issue_rows(
    issuance: IssuanceService,
    type_code: str,
    issuer: str,
    rows: list[BatchRow],
    folder: Path,
    actor: Actor = CLI_ACTOR,
    origin: BatchOrigin = NEW,
) -> list[RowResult]:
    """Issue one chunk of rows (as the CLI operator unless `actor` says who); every row gets its result."""
    photo_key = photo_field(issuance.registry.type_spec(type_code))
    results: dict[int, RowResult] = {}
    requests, lines = [], []
    for row in rows:
        try:
            requests.append(row_request(row, row_key(type_code, issuer, row, origin), photo_key, folder, origin))
            lines.append(row.line)
        except (ValueError, LicenceDataError) as exc:
            results[row.line] = RowResult(row.line, reason=str(exc), values=row.values)
    outcomes = issuance.issue_many(actor, type_code, requests, issuer_uscc=issuer) if requests else []
    by_line = {row.line: row for row in rows}
    for line, outcome in zip(lines, outcomes, strict=True):
        if outcome.result is not None:
            licence = outcome.result.licence
            results[line] = RowResult(line, licence.identifier, replayed=outcome.result.replayed)
        else:
            results[line] = RowResult(line, reason=str(outcome.error), values=by_line[line].values)
    return [results[row.line] for row in rows]


# The issuance service for a worker process, built from the settings there (a module-level
# function, so that it can be handed to a spawned process).
IssuanceFactory = Callable[[Settings], IssuanceService]
_worker: tuple[IssuanceService, str, str, Path, BatchOrigin] | None = None


def _start_worker(
    factory: IssuanceFactory, settings: Settings, type_code: str, issuer: str, folder: Path, origin: BatchOrigin
) -> None:
    global _worker
    _worker = (factory(settings), type_code, issuer, folder, origin)


def _work(rows: list[BatchRow]) -> list[RowResult]:
    assert _worker is not None, "worker not started"
    issuance, type_code, issuer, folder, origin = _worker
    return issue_rows(issuance, type_code, issuer, rows, folder, origin=origin)


def _warm_up() -> None:
    """Load what the first licence would: the seal's key and picture, the template, the fonts (and
    their files for the packed store), the TSA's key."""
    assert _worker is not None, "worker not started"
    issuance, type_code, issuer, _, _ = _worker
    issuance.seals.active_seal(issuer, dt.datetime.now(dt.timezone.utc))
    if issuance.timestamps is not None:
        issuance.timestamps.licence_stamper()
    issuance.layouts.context(type_code)
    for role in ("serif", "sans"):
        issuance.registry.fonts.get(role).width("证照")
    issuance.packed.warm_up(issuance.registry.fonts.get(role).path for role in ("serif", "sans"))


class BatchPool:
    """Worker processes (one per core by default) issuing chunks of rows of one type and issuer."""

    def __init__(
        self,
        factory: IssuanceFactory,
        settings: Settings,
        type_code: str,
        issuer: str,
        folder: Path,
        workers: int | None = None,
        origin: BatchOrigin = NEW,
    ):
        self.workers = workers or os.cpu_count() or 1
        # spawn, not fork: each worker opens its own database connections and keys.
        arguments = (factory, settings, type_code, issuer, folder.resolve(), origin)
        self._pool = ProcessPoolExecutor(self.workers, get_context("spawn"), _start_worker, arguments)

    def __enter__(self) -> BatchPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._pool.shutdown(cancel_futures=True)

    def warm_up(self) -> None:
        """Start every worker and load its keys and templates (so a benchmark times issuing only)."""
        for future in [self._pool.submit(_warm_up) for _ in range(self.workers)]:
            future.result()

    def run(self, path: Path, on_result: Callable[[RowResult], None], chunk_rows: int = CHUNK_ROWS) -> None:
        """Issue every row of `path`, calling `on_result` for each row as its chunk completes."""
        pending: set[Future[list[RowResult]]] = set()
        for chunk in chunks(read_rows(path), chunk_rows, on_result):
            if len(pending) >= 2 * self.workers:  # bounded read-ahead: huge files stream
                pending = _drain(pending, on_result, FIRST_COMPLETED)
            pending.add(self._pool.submit(_work, chunk))
        _drain(pending, on_result, None)


def chunks(
    rows: Iterator[BatchRow | RowResult], size: int, on_result: Callable[[RowResult], None]
) -> Iterator[list[BatchRow]]:
    chunk: list[BatchRow] = []
    for row in rows:
        if isinstance(row, RowResult):
            on_result(row)
            continue
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _drain(
    pending: set[Future[list[RowResult]]], on_result: Callable[[RowResult], None], until: str | None
) -> set[Future[list[RowResult]]]:
    done, rest = wait(pending, return_when=until or "ALL_COMPLETED")
    for future in done:
        for result in future.result():
            on_result(result)
    return rest


def check_batch(issuance: IssuanceService, type_code: str, issuer: str) -> None:
    """What would stop every row, checked before any worker starts: the type, the issuer's right
    to issue it, an active seal."""
    spec = issuance.registry.type_spec(type_code)
    if issuer not in spec.issuers:
        raise PermissionDeniedError(f"部门 {issuer} 不是证照类型 {type_code}（{spec.name}）的颁发部门")
    issuance.seals.active_seal(issuer, dt.datetime.now(dt.timezone.utc))


# --- the rejects file ---------------------------------------------------------------------------


class RejectsFile:
    """Rejected rows with their line and reason, in the batch file's own format (CSV with the same
    columns plus `_line` and `_reason`, or JSON Lines with those two keys), created on the first
    reject. Corrected, it can be run again as it is: "_" columns are ignored."""

    def __init__(self, source: Path, target: Path) -> None:
        self.source = source
        self.target = target
        self.count = 0
        self._handle: TextIO | None = None
        self._csv: csv.DictWriter[str] | None = None

    def add(self, result: RowResult) -> None:
        assert result.reason is not None
        row = {**(result.values or {}), "_line": result.line, "_reason": result.reason}
        if self._handle is None:
            self._open()
        assert self._handle is not None
        if self._csv is not None:
            self._csv.writerow(row)
        else:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def _open(self) -> None:
        if self.source.suffix.lower() == ".csv":
            self._handle = self.target.open("w", encoding="utf-8-sig", newline="")
            with self.source.open(encoding="utf-8-sig", newline="") as source:
                header = [h.strip() for h in next(csv.reader(source))]
            columns = [h for h in header if not h.startswith("_")] + ["_line", "_reason"]
            self._csv = csv.DictWriter(self._handle, columns, extrasaction="ignore")
            self._csv.writeheader()
        else:
            self._handle = self.target.open("w", encoding="utf-8")
