"""The PKI as the service runs it: CA files under the data directory, keys in the key store,
issued certificates in the database. `ecas pki ...` and the HTTP routes both go through here."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine

from cert_authority.errors import (
    AlreadyInitialisedError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    NotInitialisedError,
)
from cert_authority.pki.certificates import SqlCertificateRegistry
from cert_authority.settings import Settings
from cert_authority.store.keys_db import key_store_for
from keys.ca import (
    BranchCA,
    CrlNumbers,
    IssuedCertificate,
    PublicationUrls,
    check_branch_certificate,
    create_branch_certificate,
    create_root_certificate,
    years_later,
)
from keys.crl import REASONS, build_crl, parse_reason
from keys.errors import KeyNotFoundError
from keys.keystore import KeyStore
from keys.signer import Signer
from keys.uscc import validate_uscc
from keys.x509 import Certificate, CertificationRequest, make_name

ROOT_KEY = "pki-root"
BRANCH_KEY = "pki-branch"
ROOT_CRL_YEARS = 1


def write_atomically(path: Path, data: bytes) -> None:
    """Write-then-rename: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class CaNames:
    root: str = "省级电子政务CA（演示）"
    root_organization: str = "省电子认证中心"
    branch: str = "市电子证照分中心CA（演示）"
    branch_organization: str = "市电子认证分中心"


class PkiService:
    def __init__(self, settings: Settings, engine: Engine, keystore: KeyStore | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = SqlCertificateRegistry(engine)
        self._keystore = keystore
        self._service: Signer | None = None
        self.urls = PublicationUrls(settings.base_url)

    # --- files -----------------------------------------------------------------------------
    @property
    def root_path(self) -> Path:
        return self.settings.pki_dir / "root.pem"

    @property
    def branch_path(self) -> Path:
        return self.settings.pki_dir / "branch.pem"

    @property
    def root_crl_path(self) -> Path:
        return self.settings.pki_dir / "root.crl"

    @property
    def request_path(self) -> Path:
        return self.settings.pki_dir / "branch-request.pem"

    @property
    def initialised(self) -> bool:
        return self.branch_path.exists() and self.root_path.exists()

    @property
    def keystore(self) -> KeyStore:
        if self._keystore is None:
            self._keystore = key_store_for(self.settings, self.engine)
        return self._keystore

    def root_certificate(self) -> Certificate:
        self._require_initialised()
        return Certificate.load(self.root_path.read_bytes())

    def branch_certificate(self) -> Certificate:
        self._require_initialised()
        return Certificate.load(self.branch_path.read_bytes())

    def root_crl(self) -> bytes:
        if not self.root_crl_path.exists():
            raise NotFoundError("本系统不持有根CA（以 CSR 方式加入），根CA的CRL由省级CA发布")
        return self.root_crl_path.read_bytes()

    def _require_initialised(self) -> None:
        if not self.initialised:
            raise NotInitialisedError("CA 尚未初始化：请先运行 ecas pki init（或 ecas pki csr + install-branch）")

    # --- setting up the hierarchy ------------------------------------------------------------
    def init(self, now: dt.datetime, names: CaNames | None = None) -> tuple[Certificate, Certificate]:
        """Create the provincial root and the municipal branch under it (the all-in-one setup)."""
        names = names or CaNames()
        if self.initialised:
            raise AlreadyInitialisedError(f"CA 已初始化（{self.branch_path}），不会覆盖现有CA")
        created: list[str] = []
        try:
            root_signer = self._new_signer(ROOT_KEY, created)
            root = create_root_certificate(
                root_signer, name=names.root, organization=names.root_organization, now=now
            )
            branch_signer = self._new_signer(BRANCH_KEY, created)
            branch = create_branch_certificate(
                root_signer,
                root,
                subject=make_name(names.branch, organization=names.branch_organization),
                public_key=branch_signer.public_key,
                urls=self.urls,
                now=now,
            )
            branch.check_issued_by(root, now)
            # The root's own CRL (ARL), against which relying parties check the branch.
            root_crl = build_crl(
                issuer_signer=root_signer,
                issuer=root,
                entries=[],
                crl_number=1,
                this_update=now,
                next_update=years_later(now, ROOT_CRL_YEARS),
            )
        except BaseException:
            for label in created:
                self.keystore.delete(label)
            raise
        write_atomically(self.root_path, root.pem)
        write_atomically(self.root_crl_path, root_crl)
        write_atomically(self.branch_path, branch.pem)  # last: its presence means "initialised"
        return root, branch

    def _new_signer(self, label: str, created: list[str]) -> Signer:
        if self.keystore.exists(label):
            # Left by an interrupted setup that never wrote its certificate: not in use, replace it.
            self.keystore.delete(label)
        self.keystore.generate(label)
        created.append(label)
        return self.keystore.signer(label)

    def make_branch_request(self, now: dt.datetime, names: CaNames | None = None) -> CertificationRequest:
        """The branch's CSR for an existing provincial root (the real-world path)."""
        names = names or CaNames()
        if self.initialised:
            raise AlreadyInitialisedError("CA 已初始化，无需再生成证书请求")
        if not self.keystore.exists(BRANCH_KEY):
            self.keystore.generate(BRANCH_KEY)
        subject = make_name(names.branch, organization=names.branch_organization)
        request = CertificationRequest.build(subject, self.keystore.signer(BRANCH_KEY))
        write_atomically(self.request_path, request.pem)
        return request

    def install_branch(self, certificate_data: bytes, root_data: bytes, now: dt.datetime) -> Certificate:
        """Install the certificate the provincial root returned for our request."""
        if self.initialised:
            raise AlreadyInitialisedError("CA 已初始化，不会覆盖现有分中心证书")
        if not self.request_path.exists():
            raise NotInitialisedError("没有待签发的证书请求：请先运行 ecas pki csr")
        request = CertificationRequest.load(self.request_path.read_bytes())
        branch = Certificate.load(certificate_data)
        root = Certificate.load(root_data)
        check_branch_certificate(branch, request, root, now)
        write_atomically(self.root_path, root.pem)
        write_atomically(self.branch_path, branch.pem)
        self.request_path.unlink()
        return branch

    # --- the branch at work ----------------------------------------------------------------
    @cached_property
    def branch_ca(self) -> BranchCA:
        chain = (self.branch_certificate(), self.root_certificate())
        signer = self.keystore.signer(BRANCH_KEY)
        if signer.public_key != chain[0].public_key:
            raise NotInitialisedError("分中心私钥与分中心证书不匹配（pki 目录与密钥目录不一致）")
        return BranchCA(
            signer.with_chain(chain),
            self.registry,
            self.urls,
            crl_validity=dt.timedelta(hours=self.settings.crl_validity_hours),
        )

    def issue_seal_certificate(
        self, *, name: str, uscc: str, now: dt.datetime, years: int | None = None
    ) -> Certificate:
        """A new key in the key store and its seal certificate from the branch."""
        validate_uscc(uscc)
        if not name.strip():
            raise InvalidRequestError("证书名称不能为空")
        ca = self.branch_ca
        # The key exists before its certificate is recorded: a crash in between leaves an unused
        # key file, never a certificate without its key.
        label = f"seal-{os.urandom(10).hex()}"
        public_key = self.keystore.generate(label)
        try:
            return ca.issue_seal_certificate(
                public_key,
                name=name.strip(),
                uscc=uscc,
                now=now,
                years=years or self.settings.seal_certificate_years,
                key_label=label,
            )
        except BaseException:
            self.keystore.delete(label)
            raise

    @property
    def service_path(self) -> Path:
        return self.settings.pki_dir / "service.pem"

    def service_signer(self, now: dt.datetime) -> Signer:
        """The authority's own signing key and certificate (from the branch CA), for what it signs
        as a service rather than as a CA: trust bundles and show tokens. Made on first use; a file
        lock keeps several workers from making two. Kept once opened: every show token and token
        check needs it, and opening the key (PBKDF2) costs milliseconds."""
        if self._service is not None:
            return self._service
        if not self.service_path.exists():
            self.settings.pki_dir.mkdir(parents=True, exist_ok=True)
            with open(self.settings.pki_dir / ".service.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not self.service_path.exists():
                    certificate = self._issue_service_certificate(now)
                    write_atomically(self.service_path, certificate.pem)
        certificate = Certificate.load(self.service_path.read_bytes())
        record = self.certificate(certificate.serial)
        assert record.key_label is not None
        self._service = self.host_signer(record.key_label).with_chain(
            (certificate, self.branch_certificate(), self.root_certificate())
        )
        return self._service

    def _issue_service_certificate(self, now: dt.datetime) -> Certificate:
        label = f"service-{os.urandom(6).hex()}"
        public_key = self.keystore.generate(label)
        try:
            return self.branch_ca.issue_seal_certificate(
                public_key,
                name=self.settings.authority_name,
                uscc=validate_uscc(self.settings.authority_uscc),
                now=now,
                years=self.settings.seal_certificate_years,
                key_label=label,
            )
        except BaseException:
            self.keystore.delete(label)
            raise

    def host_signer(self, label: str) -> Signer:
        """The key `label` from the key store. With the database file store (several hosts) keys
        made since are in the database, on every host; a key the store lacks (a local store on
        several hosts, or a key file made before and not copied in with `ecas keys to-database`)
        is the operator's to fix, said as such (not a 404 to the caller)."""
        try:
            return self.keystore.signer(label)
        except KeyNotFoundError as exc:
            if self.settings.effective_file_store == "database":
                raise ConfigError(
                    f"密钥库（数据库表 stored_key 与本机 {self.settings.key_dir}）中没有私钥 {label}："
                    "请在持有该密钥文件的主机上运行 ecas keys to-database（docs/deployment.md，Several hosts）"
                ) from exc
            raise ConfigError(
                f"本机密钥库（{self.settings.key_dir}）中没有私钥 {label}：多主机部署时，请把签发该证书的主机上的"
                " keys/ 与 pki/ 目录复制到本机，或改用数据库存储（docs/deployment.md，Several hosts）"
            ) from exc

    def seal_signer(self, serial: int) -> Signer:
        """The signer of a seal certificate, with its chain (used by the sealing work)."""
        record = self.certificate(serial)
        if record.key_label is None:
            raise NotFoundError(f"证书 {serial:X} 的私钥不由本系统保管")
        signer = self.host_signer(record.key_label)
        return signer.with_chain(
            (record.certificate, self.branch_certificate(), self.root_certificate())
        )

    def certificate(self, serial: int) -> IssuedCertificate:
        record = self.registry.find(serial)
        if record is None:
            raise NotFoundError(f"本分中心未签发序列号为 {serial:X} 的证书")
        return record

    def revoke(self, serial: int, reason: str, now: dt.datetime) -> IssuedCertificate:
        return self.branch_ca.revoke(serial, revocation_reason(reason), now)

    def current_crl(self, now: dt.datetime, read: CrlNumbers | None = None) -> bytes:
        """The current CRL's DER (`read`: see `CertificateRegistry.latest_crl`)."""
        return self.branch_ca.current_crl(now, read).der

    def ocsp_response(self, request_der: bytes, now: dt.datetime) -> bytes:
        return self.branch_ca.ocsp_response(request_der, now)

    def export(self, directory: Path, now: dt.datetime) -> list[Path]:
        """root.pem, branch.pem, crl.der and seal-<serial>.pem for checking with anyone's tools."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "root.pem": self.root_certificate().pem,
            "branch.pem": self.branch_certificate().pem,
            "crl.der": self.current_crl(now),
        }
        if self.root_crl_path.exists():
            files["root-crl.der"] = self.root_crl_path.read_bytes()
        for record in self.registry.list_issued():
            files[f"seal-{record.certificate.serial_hex}.pem"] = record.certificate.pem
        written = []
        for name, data in files.items():
            write_atomically(directory / name, data)
            written.append(directory / name)
        return written


def revocation_reason(text: str) -> str:
    """An RFC 5280 reason name (e.g. keyCompromise) as the CA takes it; a clear 422 otherwise."""
    try:
        return parse_reason(text)
    except ValueError:
        raise InvalidRequestError(f"吊销原因 {text!r} 无效，应为 RFC 5280 原因之一：{'、'.join(REASONS)}") from None
