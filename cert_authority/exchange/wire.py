"""The exchange's wire format (docs/exchange.md): a batch is one JSON object, signed as sent.

    {"format": "ecas-exchange-batch/1", "city": USCC, "sent_at": ISO time,
     "events": [{"seq", "event_id", "kind", "subject", "at", "day", "payload"}, ...],
     "files": {SM3 hex: base64 of the file, ...},     # optional; ECAS sends the sealed files after
                                                      # the events (POST /api/v1/exchange/files)
     "crl": base64 DER of the city branch CA's current CRL}

Reads (status, days) are signed the same way: {"format": "ecas-exchange-request/1", "city", "sent_at", ...}.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cert_authority.store.outbox import FeedEvent
from keys.sm2 import sm3

BATCH_FORMAT = "ecas-exchange-batch/1"
REQUEST_FORMAT = "ecas-exchange-request/1"
KINDS = (
    "licence.issued",
    "licence.changed",
    "licence.superseded",
    "licence.revoked",
    "licence.cancelled",
    "licence.expired",
)
REQUEST_WINDOW = dt.timedelta(minutes=10)  # how far a signed read's sent_at may be from the province's clock


class WireError(ValueError):
    """The batch or request is not in the format (422)."""


@dataclass(frozen=True)
class Batch:
    city: str
    sent_at: dt.datetime
    events: list[FeedEvent]
    files: dict[str, bytes]
    crl: bytes | None


def canonical(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def payload_text(payload: dict[str, Any]) -> str:
    """An event's payload as both sides keep it (the form the day hashes are computed over)."""
    return canonical(payload).decode()


def encode_batch(city: str, now: dt.datetime, events: list[FeedEvent], files: dict[str, bytes], crl: bytes) -> bytes:
    return canonical(
        {
            "format": BATCH_FORMAT,
            "city": city,
            "sent_at": now.isoformat(),
            "events": [event.to_dict() for event in events],
            "files": {name: base64.b64encode(data).decode() for name, data in files.items()},
            "crl": base64.b64encode(crl).decode(),
        }
    )


def peek_city(body: bytes) -> tuple[dict[str, Any], str]:
    """The JSON object and its `city`, before the signature is checked (to find whose key to use)."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WireError("请求体不是 JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("city"), str):
        raise WireError("请求体应为含 city（城市电子证照机构的统一社会信用代码）的 JSON 对象")
    return value, value["city"]


def decode_batch(value: dict[str, Any]) -> Batch:
    try:
        if value.get("format") != BATCH_FORMAT:
            raise WireError(f"format 应为 {BATCH_FORMAT}")
        events = [_event(item) for item in value["events"]]
        files = {name: base64.b64decode(data, validate=True) for name, data in dict(value.get("files") or {}).items()}
        crl = base64.b64decode(value["crl"], validate=True) if value.get("crl") else None
        sent_at = dt.datetime.fromisoformat(value["sent_at"])
    except WireError:
        raise
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise WireError(f"批次格式错误：{type(exc).__name__} {exc}") from None
    for name, data in files.items():
        if sm3(data).hex() != name:
            raise WireError(f"文件 {name[:16]}… 的内容与其 SM3 不符")
    seqs = [event.seq for event in events]
    if seqs != sorted(set(seqs)):
        raise WireError("事件应按 seq 递增排列且不重复")
    return Batch(value["city"], sent_at, events, files, crl)


def _event(item: Any) -> FeedEvent:
    if not isinstance(item, dict) or not isinstance(item.get("payload"), dict):
        raise WireError("事件应为含 payload 对象的 JSON 对象")
    seq, event_id, kind, subject = item["seq"], item["event_id"], item["kind"], item["subject"]
    if not (isinstance(seq, int) and seq > 0 and isinstance(event_id, str) and 0 < len(event_id) <= 64):
        raise WireError("事件的 seq 应为正整数，event_id 为 1–64 个字符")
    if not (isinstance(kind, str) and len(kind) <= 30 and isinstance(subject, str) and len(subject) <= 120):
        raise WireError("事件的 kind、subject 格式错误")
    at = dt.datetime.fromisoformat(item["at"])
    if at.tzinfo is None:
        raise WireError("事件时间 at 应带时区")
    return FeedEvent(seq, event_id, kind, subject, at, dt.date.fromisoformat(item["day"]), item["payload"])


def encode_request(city: str, now: dt.datetime, **fields: Any) -> bytes:
    return canonical({"format": REQUEST_FORMAT, "city": city, "sent_at": now.isoformat()} | fields)


def check_request(value: dict[str, Any], now: dt.datetime) -> None:
    try:
        sent_at = dt.datetime.fromisoformat(value["sent_at"])
    except (KeyError, TypeError, ValueError):
        raise WireError("sent_at 缺失或格式错误") from None
    if value.get("format") != REQUEST_FORMAT or sent_at.tzinfo is None:
        raise WireError(f"format 应为 {REQUEST_FORMAT}，sent_at 应带时区")
    if abs(now - sent_at) > REQUEST_WINDOW:
        raise WireError("sent_at 与省级库时间相差超过 10 分钟（请求过期或时钟不准）")


def day_digest(lines: list[tuple[int, str, str, str, str]]) -> str:
    """SM3 over a day's events in seq order, one line each: seq, event_id, kind, subject and the
    SM3 of the payload (its canonical JSON)."""
    text = "".join(
        f"{seq} {event_id} {kind} {subject} {sm3(payload.encode()).hex()}\n"
        for seq, event_id, kind, subject, payload in lines
    )
    return sm3(text.encode()).hex()
