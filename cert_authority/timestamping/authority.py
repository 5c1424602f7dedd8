"""The time-stamping authority (RFC 3161, GB/T 20520) as the service runs it: its key in the key
store, its certificate from the branch CA (critical extendedKeyUsage id-kp-timeStamping), serial
numbers from a database counter, and the clock check (`timestamping.clock`) before every stamp.

Serials never repeat across workers: each process takes a block of SERIAL_BLOCK values from the
`tsa_serial` counter (one committed statement, `store.counters`) and hands them out under a lock;
a crash leaves a gap, never a value used twice, and no row is touched per token.

    POST /tsa (application/timestamp-query) → `reply_for`         one request, one TimeStampResp
    issuance (a chunk of licences)           → `licence_stamper`   the clock checked for the chunk,
                                                                   then two tokens a licence (its
                                                                   PDF and OFD signatures)

A token per signature, not one over a hash tree of a chunk's signatures: PAdES and GB/T 38540
readers check a token's imprint against the signature it sits on, and the two TSA signatures a
licence cost under 10 % of issuance (docs/timestamping.md).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property

from sqlalchemy.engine import Engine
from sqlmodel import Session

from cert_authority.actors import Actor
from cert_authority.errors import TimeNotAvailableError
from cert_authority.pki.service import PkiService, write_atomically
from cert_authority.store.audit import audit_row
from cert_authority.store.counters import next_values
from cert_authority.timestamping.clock import CLOCK_CHECKS, ClockCheck, ClockStatus
from cert_authority.timeutil import utc_now
from keys.oids import SM3
from keys.signer import Signer
from keys.sm2 import sm3
from keys.uscc import validate_uscc
from keys.x509 import Certificate
from seals.timestamp import (
    StampRequest,
    TimeStampRequestError,
    granted_reply,
    make_tokens,
    parse_request,
    parse_token,
    rejection_reply,
)

log = logging.getLogger("ecas.tsa")
SERIAL_COUNTER = "tsa_serial"
SERIAL_BLOCK = 1024
# Room a token of ours can take, beyond a sample token's length (serials grow, signatures vary by
# two bytes): reserved in each PDF signature for the unsigned attribute.
TOKEN_ROOM_MARGIN = 64


class SerialBlocks:
    """Serial numbers from a database counter, a block at a time (see the module docstring)."""

    def __init__(self, engine: Engine, name: str = SERIAL_COUNTER, block: int = SERIAL_BLOCK) -> None:
        self.engine, self.name, self.block = engine, name, block
        self._next = self._end = 0
        self._lock = threading.RLock()  # take() reserves under it
        self._pid = os.getpid()

    def take(self, count: int) -> int:
        """The first of `count` consecutive serials, unused anywhere else."""
        with self._lock:
            self.reserve(count)
            first = self._next
            self._next += count
            return first

    def reserve(self, count: int) -> None:
        """Have `count` serials in hand, so that taking them writes nothing: a caller about to
        stamp inside its own write transaction calls this first (on SQLite the counter's write
        would wait for that transaction's lock: a deadlock in one process)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked worker must not reuse its parent's block
                self._next = self._end = 0
                self._pid = os.getpid()
            if self._end - self._next < count:
                size = max(self.block, count)
                [first] = next_values(self.engine, [self.name], count=size)
                self._next, self._end = first, first + size


class TimeStampAuthority:
    def __init__(
        self,
        pki: PkiService,
        engine: Engine,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        clock_check: ClockCheck | None = None,
    ) -> None:
        self.pki = pki
        self.settings = pki.settings
        self.clock = clock
        self.clock_check = clock_check or CLOCK_CHECKS[self.settings.tsa_clock]
        self.engine = engine
        self.serials = SerialBlocks(engine)
        self._signer: Signer | None = None
        self._signer_lock = threading.Lock()

    @property
    def policy(self) -> str:
        return self.settings.tsa_policy

    # --- stamping ------------------------------------------------------------------------------
    def stamp(self, requests: Sequence[StampRequest], now: dt.datetime | None = None) -> list[bytes]:
        """One DER token per request, all at this moment; raises TimeNotAvailableError when the
        clock is not known to be right and TimeStampRequestError for a policy we do not follow."""
        status = self._checked_clock()
        for request in requests:
            if request.policy is not None and request.policy != self.policy:
                raise TimeStampRequestError("unaccepted_policy", f"本时间戳服务只按策略 {self.policy} 签发")
        if not requests:
            return []
        when = (now or self.clock()).astimezone(dt.timezone.utc).replace(microsecond=0)
        signer = self.signer(when)
        return make_tokens(
            signer,
            requests,
            first_serial=self.serials.take(len(requests)),
            gen_time=when,
            policy=self.policy,
            # genTime is whole seconds: truncating adds up to one second to the clock's error bound.
            accuracy=dt.timedelta(seconds=1) + _whole_millis(status.max_error),
        )

    def licence_stamper(self) -> tuple[Callable[[Sequence[bytes]], list[bytes] | None], int] | None:
        """For sealing licences: a function from signature values to tokens over their SM3 (None
        for a licence the TSA refused: it goes out without, as before timestamps), and the room a
        token takes; None when the clock is not right now (checked once for a chunk of licences)."""
        try:
            self._checked_clock()
            room = self.token_room
        except TimeNotAvailableError as exc:
            _warn_unstamped(exc)
            return None

        def stamp(values: Sequence[bytes]) -> list[bytes] | None:
            try:
                return self.stamp([StampRequest(SM3, sm3(value)) for value in values])
            except TimeNotAvailableError as exc:
                _warn_unstamped(exc)
                return None

        return stamp, room

    def document_stamper(self) -> tuple[Callable[[bytes], bytes | None], int] | None:
        """As `licence_stamper`, for one signature (a department's own document, an annotated copy,
        a receipt). Made before the caller's write transaction, its stamp then writes nothing."""
        stamper = self.licence_stamper()
        if stamper is None:
            return None
        self.serials.reserve(1)
        stamp_all, room = stamper

        def stamp(value: bytes) -> bytes | None:
            tokens = stamp_all([value])
            return tokens[0] if tokens else None

        return stamp, room

    def reply(self, request_der: bytes, now: dt.datetime | None = None) -> tuple[int, bytes, int | None]:
        """(HTTP status, DER TimeStampResp, the token's serial) for one DER TimeStampReq: 200 and a
        granted reply, 400 and a rejection naming the failure (RFC 3161 §2.4.2), or 503 and
        timeNotAvailable while the clock is not known to be right."""
        try:
            request = parse_request(request_der)
            [token] = self.stamp([request], now)
        except TimeStampRequestError as exc:
            return 400, rejection_reply(exc.failure, str(exc)), None
        except TimeNotAvailableError as exc:
            return 503, rejection_reply("time_not_available", str(exc)), None
        return 200, granted_reply(token), parse_token(token).serial

    def reply_for(self, actor: Actor, request_der: bytes, now: dt.datetime | None = None) -> tuple[int, bytes]:
        """`reply`, with the token it granted audited (who asked, the serial, the imprint)."""
        status, reply, serial = self.reply(request_der, now)
        if serial is not None:
            request = parse_request(request_der)
            self.audit(actor, serial, request.hash_algorithm, request.hashed_message, now or self.clock())
        return status, reply

    def audit(self, actor: Actor, serial: int, hash_algorithm: str, imprint: bytes, now: dt.datetime) -> None:
        detail = {"hash_algorithm": hash_algorithm, "imprint": imprint.hex()}
        with Session(self.engine) as session:
            session.add(audit_row(actor, "tsa_stamp", f"tsa:{serial:X}", now, detail=detail))
            session.commit()

    def _checked_clock(self) -> ClockStatus:
        status = self.clock_check()
        limit = dt.timedelta(milliseconds=self.settings.tsa_max_clock_error_ms)
        if not status.synchronised:
            raise TimeNotAvailableError(f"时间戳服务的时钟未同步（{status.source}），拒绝签发时间戳")
        if status.max_error > limit:
            raise TimeNotAvailableError(
                f"时间戳服务的时钟误差上限 {status.max_error.total_seconds():.3f} 秒超过允许的 "
                f"{limit.total_seconds():.3f} 秒（{status.source}），拒绝签发时间戳"
            )
        return status

    @cached_property
    def token_room(self) -> int:
        """Bytes a token of ours may take (a sample token's length plus a margin)."""
        sample = make_tokens(
            self.signer(self.clock()),
            [StampRequest(SM3, bytes(32))],
            first_serial=1 << 63,
            gen_time=self.clock(),
            policy=self.policy,
            accuracy=dt.timedelta(seconds=1),
        )[0]
        return len(sample) + TOKEN_ROOM_MARGIN

    # --- key and certificate -------------------------------------------------------------------
    def signer(self, now: dt.datetime) -> Signer:
        """The TSA's key and chain (TSA, branch, root): certified by the branch on first use (a
        file lock keeps workers from making two), kept once opened."""
        with self._signer_lock:
            if self._signer is None:
                self._signer = self._load_signer(now)
            return self._signer

    def certificate(self, now: dt.datetime) -> Certificate:
        return self.signer(now).certificate_chain[0]

    def _load_signer(self, now: dt.datetime) -> Signer:
        path = self.settings.pki_dir / "tsa.pem"
        if not path.exists():
            self.settings.pki_dir.mkdir(parents=True, exist_ok=True)
            with open(self.settings.pki_dir / ".tsa.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not path.exists():
                    write_atomically(path, self._issue_certificate(now).pem)
        certificate = Certificate.load(path.read_bytes())
        record = self.pki.certificate(certificate.serial)
        assert record.key_label is not None
        if record.revoked_at is not None:
            raise TimeNotAvailableError(
                f"时间戳服务证书（{certificate.serial_hex}）已吊销：删除 {path} 后将由分中心签发新证书"
            )
        chain = (certificate, self.pki.branch_certificate(), self.pki.root_certificate())
        return self.pki.host_signer(record.key_label).with_chain(chain)

    def _issue_certificate(self, now: dt.datetime) -> Certificate:
        label = f"tsa-{os.urandom(6).hex()}"
        public_key = self.pki.keystore.generate(label)
        try:
            return self.pki.branch_ca.issue_tsa_certificate(
                public_key,
                name=self.settings.tsa_name,
                uscc=validate_uscc(self.settings.authority_uscc),
                now=now,
                years=self.settings.seal_certificate_years,
                key_label=label,
            )
        except BaseException:
            self.pki.keystore.delete(label)
            raise


def _whole_millis(value: dt.timedelta) -> dt.timedelta:
    micros = value // dt.timedelta(microseconds=1)
    return dt.timedelta(milliseconds=-(-micros // 1000))


# While the clock is out, every chunk of licences would log the same warning: say it once a minute.
_WARN_EVERY_SECONDS = 60.0
_last_warned = [-_WARN_EVERY_SECONDS]


def _warn_unstamped(exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_warned[0] >= _WARN_EVERY_SECONDS:
        _last_warned[0] = now
        log.warning("licences sealed without a timestamp (said at most once a minute): %s", exc)
