"""The CA hierarchy: provincial root → municipal branch (分中心) → department seal certificates.

Pure logic over values. Where issued certificates, revocations and CRLs are kept is behind the
`CertificateRegistry` protocol (the service implements it on its database), so several workers
can share one branch CA.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import x509 as asn1_x509

from keys.crl import Crl, RevokedEntry, build_crl
from keys.errors import CAError, InvalidCertificateError
from keys.ocsp import CertStatus, respond_ocsp
from keys.signer import Signer
from keys.sm2 import SM2PublicKey
from keys.x509 import Certificate, CertificationRequest, build_certificate, make_name, utc

log = logging.getLogger("ecas.ca")

__all__ = [
    "BranchCA",
    "CrlDraft",
    "CrlNumbers",
    "IssuedCertificate",
    "PublicationUrls",
    "StoredCrl",
    "check_branch_certificate",
    "create_branch_certificate",
    "create_root_certificate",
    "serial_on_record",
    "years_later",
]

ROOT_KEY_USAGE = frozenset({"key_cert_sign", "crl_sign"})
# digital_signature: the branch signs its OCSP responses itself (RFC 6960 §4.2.2.2).
BRANCH_KEY_USAGE = frozenset({"key_cert_sign", "crl_sign", "digital_signature"})
SEAL_KEY_USAGE = frozenset({"digital_signature", "non_repudiation"})
# RFC 3161 §2.3: a TSA's certificate names id-kp-timeStamping as its only, critical, extended usage.
TSA_EXTENDED_KEY_USAGE = ("time_stamping",)


def new_serial() -> int:
    """A random positive serial of 127 bits: unguessable (CA/B BR 7.1) and never negative."""
    return secrets.randbits(126) | (1 << 126)


def years_later(when: dt.datetime, years: int) -> dt.datetime:
    try:
        return when.replace(year=when.year + years)
    except ValueError:  # 29 February
        return when.replace(year=when.year + years, day=28)


@dataclass(frozen=True)
class PublicationUrls:
    """Where relying parties fetch CRLs, OCSP and issuer certificates (written into certificates)."""

    base_url: str

    @property
    def crl(self) -> str:
        return f"{self.base_url.rstrip('/')}/pki/crl"

    @property
    def root_crl(self) -> str:
        return f"{self.base_url.rstrip('/')}/pki/root.crl"

    @property
    def ocsp(self) -> str:
        return f"{self.base_url.rstrip('/')}/pki/ocsp"

    @property
    def branch_certificate(self) -> str:
        return f"{self.base_url.rstrip('/')}/pki/branch.cer"


def create_root_certificate(
    signer: Signer, *, name: str, organization: str, now: dt.datetime, years: int = 20
) -> Certificate:
    """A self-signed provincial root."""
    return build_certificate(
        subject=make_name(name, organization=organization),
        public_key=signer.public_key,
        serial=new_serial(),
        not_before=now,
        not_after=years_later(utc(now), years),
        issuer_signer=signer,
        issuer=None,
        ca=True,
        key_usage=ROOT_KEY_USAGE,
    )


def create_branch_certificate(
    root_signer: Signer,
    root: Certificate,
    *,
    subject: asn1_x509.Name,
    public_key: SM2PublicKey,
    urls: PublicationUrls,
    now: dt.datetime,
    years: int = 10,
) -> Certificate:
    """The municipal branch CA certificate, issued by the root (path length 0: no deeper CAs)."""
    return build_certificate(
        subject=subject,
        public_key=public_key,
        serial=new_serial(),
        not_before=now,
        not_after=min(years_later(utc(now), years), root.not_after),
        issuer_signer=root_signer,
        issuer=root,
        ca=True,
        path_length=0,
        key_usage=BRANCH_KEY_USAGE,
        crl_url=urls.root_crl,
    )


def check_branch_certificate(
    branch: Certificate, request: CertificationRequest, root: Certificate, now: dt.datetime
) -> None:
    """Before installing a branch certificate returned by the provincial root: it must certify
    the key we asked for, be a CA allowed to sign certificates and CRLs, and chain to the root."""
    if branch.public_key != request.public_key:
        raise InvalidCertificateError(
            "the certificate is for another key than the one in our request (wrong certificate?)"
        )
    if not branch.is_ca:
        raise InvalidCertificateError("the certificate is not a CA certificate (basicConstraints CA:FALSE)")
    missing = {"key_cert_sign", "crl_sign"} - branch.key_usage
    if missing:
        raise InvalidCertificateError(f"the certificate's key usage lacks {', '.join(sorted(missing))}")
    if root.issuer.dump() != root.subject.dump() or not root.signature_valid(root.public_key):
        raise InvalidCertificateError("the root certificate is not a valid self-signed certificate")
    branch.check_issued_by(root, now)


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: Certificate
    key_label: str | None = None  # where the key store keeps the certificate's private key
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    def status(self) -> CertStatus:
        if self.revoked_at is None:
            return CertStatus("good")
        return CertStatus("revoked", revoked_at=self.revoked_at, reason=self.reason)


@dataclass(frozen=True)
class StoredCrl:
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    der: bytes
    # As the store read them with this CRL: the last CRL number allocated, how many certificates
    # are revoked on record and the serial (hex) of the one revoked last (the CRL must list them).
    allocated: int | None = None
    revoked: int | None = None
    last_revoked: str | None = None


@dataclass(frozen=True)
class CrlNumbers:
    """The newest stored CRL's number, the last one allocated, how many certificates are revoked on
    record and the serial (hex) revoked last, as a caller read them in a statement of its own."""

    newest: int | None
    allocated: int | None
    revoked: int | None = None
    last_revoked: str | None = None


@dataclass(frozen=True)
class CrlDraft:
    """What the next CRL is built from, as the store read it in the transaction that numbers it."""

    number: int  # above the counter, every stored CRL and the floor asked for
    revoked: list[RevokedEntry]  # the revocations on record, read after the number was taken
    newest: StoredCrl | None  # the newest stored CRL before this one


def serial_on_record(text: str | None) -> int | None:
    """A certificate serial as the registry keeps it (hex), or None when it is not one a CRL can
    list (RFC 5280 §4.1.2.2: positive, at most 20 octets): a row no CRL could carry."""
    try:
        serial = int(text or "", 16)
    except ValueError:
        return None
    return serial if serial > 0 and serial.bit_length() <= 159 else None


@dataclass(frozen=True)
class _Served:
    """A CRL this process published or found genuine, parsed, and how many certificates it lists."""

    stored: StoredCrl
    crl: Crl
    listed: int


class CertificateRegistry(Protocol):
    """Persistence of what the branch has issued. Implementations must be safe across processes."""

    def record_issued(self, certificate: Certificate, key_label: str | None) -> None: ...

    def find(self, serial: int) -> IssuedCertificate | None: ...

    def list_issued(self) -> list[IssuedCertificate]: ...

    def mark_revoked(self, serial: int, reason: str, when: dt.datetime) -> IssuedCertificate:
        """Revoke once; raise CAError for an unknown or already revoked serial."""
        ...

    def latest_crl(self, read: CrlNumbers | None = None) -> StoredCrl | None:
        """The stored CRL of the highest number, with `allocated`, `revoked` and `last_revoked` read
        in the same statement. `read`: those as the caller read them just now, in a statement of
        its own."""
        ...

    def publish_crl(self, make: Callable[[CrlDraft], StoredCrl | None], floor: int = 0) -> StoredCrl:
        """In one transaction, publishers taking turns: allocate the next CRL number (RFC 5280
        §5.2.3: monotonically increasing), above the counter, every stored CRL and `floor`; read the
        revocations on record after taking it (so none committed before is left out); and store the
        CRL `make` builds from them. The newest stored CRL is always the last number allocated, so
        a gap means a removed row. When `make` gives None (the newest will do), nothing is
        allocated or stored, and the newest is returned."""
        ...


class BranchCA:
    """The municipal branch CA: issues and revokes seal certificates, publishes CRL and OCSP."""

    def __init__(
        self,
        signer: Signer,
        registry: CertificateRegistry,
        urls: PublicationUrls,
        *,
        crl_validity: dt.timedelta = dt.timedelta(hours=24),
    ) -> None:
        chain = signer.certificate_chain
        if len(chain) < 2:
            raise CAError("the branch signer needs its certificate chain (branch, root)")
        self.signer = signer
        self.branch, self.root = chain[0], chain[-1]
        self.registry = registry
        self.urls = urls
        self.crl_validity = crl_validity
        # The highest-numbered CRL this process published or found genuine (one attribute, set at
        # once: threads read it as a whole): never an older one served again, its entries kept.
        self._served: _Served | None = None

    def issue_seal_certificate(
        self,
        public_key: SM2PublicKey,
        *,
        name: str,
        uscc: str,
        now: dt.datetime,
        years: int = 3,
        organization: str | None = None,
        key_label: str | None = None,
        extended_key_usage: Iterable[str] = (),
    ) -> Certificate:
        """A department's seal (signing) certificate; `uscc` goes in the subject and GM/T 0015."""
        self.branch.check_valid_at(now)
        serial = new_serial()
        while self.registry.find(serial) is not None:  # 2^-126 odds, but never reuse a serial
            serial = new_serial()
        certificate = build_certificate(
            subject=make_name(name, organization=organization, serial_number=uscc),
            public_key=public_key,
            serial=serial,
            not_before=now,
            # A certificate must not outlive the CA that vouches for it.
            not_after=min(years_later(utc(now), years), self.branch.not_after),
            issuer_signer=self.signer,
            issuer=self.branch,
            ca=False,
            key_usage=SEAL_KEY_USAGE,
            crl_url=self.urls.crl,
            ocsp_url=self.urls.ocsp,
            ca_issuers_url=self.urls.branch_certificate,
            uscc=uscc,
            extended_key_usage=extended_key_usage,
        )
        self.registry.record_issued(certificate, key_label)
        return certificate

    def issue_tsa_certificate(
        self, public_key: SM2PublicKey, *, name: str, uscc: str, now: dt.datetime, years: int, key_label: str
    ) -> Certificate:
        """The time-stamping authority's certificate (RFC 3161 §2.3): a signing certificate with the
        critical extendedKeyUsage id-kp-timeStamping and nothing else."""
        return self.issue_seal_certificate(
            public_key, name=name, uscc=uscc, now=now, years=years, organization=name, key_label=key_label,
            extended_key_usage=TSA_EXTENDED_KEY_USAGE,
        )  # fmt: skip

    def revoke(self, serial: int, reason: str, now: dt.datetime) -> IssuedCertificate:
        record = self.registry.mark_revoked(serial, reason, utc(now))
        self.publish_crl(now)  # relying parties see the revocation at once, not at next update
        return record

    def publish_crl(self, now: dt.datetime) -> StoredCrl:
        now = utc(now)
        next_update = now + self.crl_validity
        served = self._served.stored if self._served is not None else None

        def make(draft: CrlDraft) -> StoredCrl | None:
            if self._will_do(draft, served, now):
                return None  # another worker has just published a complete one
            der = build_crl(
                issuer_signer=self.signer,
                issuer=self.branch,
                entries=self._kept(draft, served),
                crl_number=draft.number,
                this_update=now,
                next_update=next_update,
            )
            return StoredCrl(number=draft.number, this_update=now, next_update=next_update, der=der)

        crl = self.registry.publish_crl(make, floor=served.number if served else 0)
        self._adopt(crl, Crl.load(crl.der))
        return crl

    def _adopt(self, stored: StoredCrl, crl: Crl) -> _Served:
        """Hold `crl` (genuine) unless this process holds a newer one."""
        held = _Served(stored, crl, len(crl.entries))
        if self._served is None or stored.number >= self._served.stored.number:
            self._served = held
        return held

    def _will_do(self, draft: CrlDraft, served: StoredCrl | None, now: dt.datetime) -> bool:
        """The newest stored CRL is as good as a new one: the last allocated, not below what this
        process served, before half its validity, genuine, and listing every revocation on record
        (so of several workers finding the CRL half spent at once, one publishes)."""
        newest = draft.newest
        if (
            newest is None
            or newest.number != draft.number - 1
            or (served is not None and newest.number < served.number)
        ):
            return False
        if now >= newest.this_update + self.crl_validity / 2:
            return False
        parsed = self._genuine(newest)
        return parsed is not None and all(parsed.entry(entry.serial) is not None for entry in draft.revoked)

    def _kept(self, draft: CrlDraft, served: StoredCrl | None) -> list[RevokedEntry]:
        """The revocations on record, and every entry of the CRLs signed before (the newest stored,
        the one this process served) that the record lacks: a revocation once published is never
        dropped, even when its row is edited to unset it."""
        entries = {entry.serial: entry for entry in draft.revoked}
        signed_before = [crl.der for crl in (draft.newest, served) if crl is not None]
        for der in dict.fromkeys(signed_before):
            try:
                previous = Crl.load(der)
            except InvalidCertificateError:
                continue
            if not previous.signature_valid(self.branch.public_key):
                continue  # not ours: its entries are no evidence of anything
            for entry in previous.entries:
                if entry.serial not in entries:
                    log.warning(
                        "certificate %X is revoked in CRL %s, not on record: kept", entry.serial, previous.crl_number
                    )
                    entries[entry.serial] = entry
        return list(entries.values())

    def current_crl(self, now: dt.datetime, read: CrlNumbers | None = None) -> StoredCrl:
        """The latest CRL, re-issued once half its validity has passed, or at once when the newest
        stored one is not the latest: a newer one was allocated and is gone, the counter is gone,
        this process served a newer one, it is not genuine (`_genuine`), or it lists fewer
        certificates than are revoked on record or not the one revoked last (a CRL rewound, or one
        that failed to publish after a revocation). None of these may bring back an older list of
        revocations (a revoked seal verifying again) or stop verification."""
        latest = self.registry.latest_crl(read)
        if latest is None:
            return self.publish_crl(now)
        if not self._is_latest(latest):
            log.warning("stored CRL %d is not the latest or lacks a revocation on record: re-issuing", latest.number)
            return self.publish_crl(now)
        if utc(now) >= latest.this_update + self.crl_validity / 2:
            return self.publish_crl(now)
        return latest

    def _is_latest(self, latest: StoredCrl) -> bool:
        served = self._served
        if latest.allocated is None or latest.allocated > latest.number:
            return False
        if served is not None and latest.number < served.stored.number:
            return False
        held = self._held(latest)
        if held is None:
            return False
        if latest.revoked is not None and latest.revoked > held.listed:
            return False
        last = serial_on_record(latest.last_revoked)
        return last is None or held.crl.entry(last) is not None

    def _held(self, stored: StoredCrl) -> _Served | None:
        """`stored` parsed, if genuine. The CRL held is not checked again (the store keeps one DER
        object per number read); a genuine one at least as new becomes the one held."""
        served = self._served
        if served is not None and stored.der is served.stored.der:
            return served
        parsed = self._genuine(stored)
        return self._adopt(stored, parsed) if parsed is not None else None

    def _genuine(self, stored: StoredCrl) -> Crl | None:
        """The stored CRL parsed, if it is what this CA would have stored under its row: DER (not
        PEM), of the row's number and dates (the re-issue time is taken from the row), signed by
        this branch CA."""
        try:
            parsed = Crl.load(stored.der)
        except InvalidCertificateError:
            return None
        dates_agree = (
            parsed.next_update is not None
            and abs(parsed.this_update - stored.this_update) < dt.timedelta(seconds=1)  # DER time: whole seconds
            and abs(parsed.next_update - stored.next_update) < dt.timedelta(seconds=1)
        )
        if parsed.der != stored.der or parsed.crl_number != stored.number or not dates_agree:
            return None
        return parsed if parsed.signature_valid(self.branch.public_key) else None

    def status_of(self, serial: int) -> CertStatus:
        record = self.registry.find(serial)
        # RFC 6960 §2.2: "unknown" for serials this CA never issued.
        status = record.status() if record else CertStatus("unknown")
        if status.state == "good":  # unless a CRL this CA signed lists it: a revocation is never undone
            listed = self._listed(serial)
            if listed is not None:
                log.warning("certificate %X is revoked in a CRL, not on record: answered revoked", serial)
                return CertStatus("revoked", revoked_at=listed.revoked_at, reason=listed.reason)
        return status

    def _listed(self, serial: int) -> RevokedEntry | None:
        """The serial's entry in the CRL this process holds or the newest stored (if genuine)."""
        latest = self.registry.latest_crl()
        for held in (self._served, self._held(latest) if latest is not None else None):
            entry = held.crl.entry(serial) if held is not None else None
            if entry is not None:
                return entry
        return None

    def ocsp_response(self, request_der: bytes, now: dt.datetime) -> bytes:
        return respond_ocsp(
            request_der,
            issuer=self.branch,
            responder_signer=self.signer,
            status_of=self.status_of,
            now=utc(now),
        )
