"""Settings from the environment and `.env` (prefix ECAS_). Built by `load_settings()`, never at
import time, so tests and commands can each make their own."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cert_authority.errors import ConfigError

# The SM cipher suites (TLCP, GB/T 38636; TLS 1.3, RFC 8998) a TLS front may report.
SM_SUITES = (
    "ECC-SM2-SM4-CBC-SM3",
    "ECC-SM2-SM4-GCM-SM3",
    "ECDHE-SM2-SM4-CBC-SM3",
    "ECDHE-SM2-SM4-GCM-SM3",
    "TLS_SM4_GCM_SM3",
    "TLS_SM4_CCM_SM3",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECAS_", env_file=".env", extra="forbid")

    data_dir: Path = Path("var")
    # Default: SQLite under the data directory. PostgreSQL: postgresql+psycopg://host/db
    database_url: str | None = None
    # Passphrase protecting every private key at rest (the key-encryption key).
    kek: SecretStr | None = None
    # Written into certificates (CRL distribution point, OCSP, CA issuers): where relying
    # parties reach this service.
    base_url: str = "http://127.0.0.1:8000"
    crl_validity_hours: int = 24
    # The authority's own code, in its service signing certificate (trust bundles, show tokens).
    authority_uscc: str = "11350100MB0000000Y"
    authority_name: str = "电子证照共享服务"
    seal_certificate_years: int = 3
    # Root CA certificates (a PEM file) trusted, besides our own root, to certify the makers of
    # seals filed from elsewhere (the provincial seal platform's CA): `ecas seals import`.
    seal_maker_roots: Path | None = None
    # Requests a minute per client (0: no limit): per API key, else per client address. Counted
    # across all workers on PostgreSQL, per worker on SQLite.
    rate_limit_per_key: int = Field(default=6000, ge=0)
    rate_limit_per_address: int = Field(default=1200, ge=0)
    # Behind a TLS/TLCP front (docs/deployment.md): the request header in which the front reports
    # the negotiated cipher suite, and the suites accepted (default: the SM ones).
    tls_cipher_header: str | None = None
    tls_ciphers: list[str] = Field(default_factory=lambda: list(SM_SUITES))
    # CJK fonts for licence files (CFF OpenType .otf). Default: Noto Serif SC / Noto Sans SC,
    # installed with the project.
    font_serif: Path | None = None
    font_sans: Path | None = None
    # The time-stamping authority (cert_authority/timestamping, docs/timestamping.md): how its clock
    # is trusted (kernel: refuse while the kernel's NTP state says unsynchronised; unchecked: for
    # development machines without NTP), the largest clock error it stamps with, its policy OID
    # (a UUID-derived OID, ITU-T X.667: ours without registration) and its name.
    tsa_clock: Literal["kernel", "unchecked"] = "kernel"
    tsa_max_clock_error_ms: int = Field(default=1000, ge=1)
    tsa_policy: str = Field(default="2.25.125957908671018374453362166525687090653", pattern=r"^[0-2](\.\d+)+$")
    tsa_name: str = "电子证照时间戳服务"
    # Whether issuance puts a timestamp over every licence seal (off: licences as before timestamps).
    tsa_stamp_seals: bool = True
    # The provincial library this city pushes its change feed to (`ecas sync push`), and the
    # provincial root CA (a PEM file) pinned out of band: a city's certificates must chain to it
    # (checked before pushing, and by the province when it registers a city: `ecas cities add`).
    province_url: str | None = None
    province_root: Path | None = None
    # The time zone every time shown to a person is in (pages, counter verdicts): an IANA name.
    timezone: str = "Asia/Shanghai"
    # Where the file store keeps files (licence files, photos, uploads; store/filestore.py): `local`
    # (<data dir>/files) or `database` (table stored_file, shared by every host). Default: local
    # on SQLite, database on PostgreSQL (docs/deployment.md, "File store").
    file_store: Literal["local", "database"] | None = None
    # How often the server sequences the transparency log's queued leaves and signs a head (0: never
    # on a timer; proofs and verification still sequence on demand).
    log_interval_seconds: float = Field(default=1.0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("ECAS_BASE_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("province_url")
    @classmethod
    def _province_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("ECAS_PROVINCE_URL must start with http:// or https://")
        return value.rstrip("/") if value else None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"ECAS_TIMEZONE {value!r} is not a known time zone (e.g. Asia/Shanghai)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def data_keys_path(self) -> Path:
        """The data-encryption keys, wrapped under the KEK (keys.datakeys)."""
        return self.key_dir / "data-keys.json"

    @property
    def files_dir(self) -> Path:
        """The content-addressed file store (template backgrounds, licence files)."""
        return self.data_dir / "files"

    @property
    def effective_file_store(self) -> Literal["local", "database"]:
        if self.file_store is not None:
            return self.file_store
        return "local" if self.effective_database_url.startswith("sqlite") else "database"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'ecas.db').resolve()}"

    @property
    def demo_kek_path(self) -> Path:
        return self.data_dir / "demo-kek"

    def require_kek(self) -> bytes:
        if self.kek is None or not self.kek.get_secret_value():
            # `ecas demo` writes this file when no ECAS_KEK was given: a demo is not a deployment.
            if self.demo_kek_path.exists():
                return self.demo_kek_path.read_bytes().strip()
            raise ConfigError(
                "未设置密钥加密口令 ECAS_KEK：私钥以口令加密保存，请先设置环境变量 ECAS_KEK"
                "（或写入 .env），例如 export ECAS_KEK='a long random passphrase'"
            )
        return self.kek.get_secret_value().encode()


def load_settings(**overrides: object) -> Settings:
    """Settings from ECAS_* variables and .env; keyword overrides win (used by CLI options)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"配置错误：{exc}") from exc
