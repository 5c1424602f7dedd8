"""Shared fixtures: independent checkers (OpenSSL CLI, pure-Python gmssl), a real test PKI, and
databases: every test that takes `database_url` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from asn1crypto import algos
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from cert_authority.issuing.issuance import IssueResult
from cert_authority.pki.service import PkiService
from cert_authority.registry.schemas import DepartmentCreate, DepartmentPublic
from cert_authority.registry.service import RegistryService
from cert_authority.services import LicenceServices, licence_services_for
from cert_authority.settings import Settings
from cert_authority.store.chain import attach_chain
from cert_authority.store.data_keys import RECORDS, data_key_ring
from cert_authority.store.db import create_db_engine, migrate
from cert_authority.store.filestore import FileStore, LocalDirectory, all_names, file_store_for
from cert_authority.store.filestore_db import DatabaseFiles
from cert_authority.store.keys_db import key_store_for
from keys import datakeys
from keys.signer import SoftwareSigner
from keys.sm2 import SM2PrivateKey, SM2PublicKey
from keys.x509 import Certificate, build_certificate, make_name
from templates.fonts import FontSet

SM2_ID_OPT = "distid:1234567812345678"
# A fixed instant per session, just before real time: OpenSSL checks validity against the clock.
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
DEPT_USCC = "91350100M000100Y43"
# Files made by other implementations, read where they are kept (../shared/vectors/README.md says
# where each comes from, and that they are not to be copied into the project). CI has the folder
# beside its clone; elsewhere a test that needs one skips, and under CI that skip is a failure.
OFD_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "ofd"


def ofd_vector(name: str) -> Path:
    path = OFD_VECTORS / name
    if not path.is_file():
        pytest.skip(f"interop vector {name} not found in {OFD_VECTORS}")
    return path


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for the cross-checks (apt-get install {name}; .ci/run does this)")
    return path


def openssl(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run the OpenSSL CLI; on failure show what it said."""
    result = subprocess.run([require_tool("openssl"), *args], input=input, capture_output=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{result.stderr.decode(errors='replace')}")
    return result


def ses_asn1() -> ModuleType:
    """tests/seals/ses_asn1.py: a pyasn1 spec of GB/T 38540 written apart from our encoder."""
    from tests.seals import ses_asn1

    return ses_asn1


def gmssl_sm2(public_key: SM2PublicKey, private: int | None = None) -> Any:
    """The pure-Python gmssl package's SM2 (an implementation we did not write) for this key."""
    from gmssl.sm2 import CryptSM2

    point = public_key.x.to_bytes(32, "big") + public_key.y.to_bytes(32, "big")
    # gmssl 3.2.2 does public_key.lstrip("04"), which eats a leading "04" of x too (1 key in 256):
    # set the attribute after construction instead.
    crypt = CryptSM2(private_key=None if private is None else f"{private:064x}", public_key="")
    crypt.public_key = point.hex()
    return crypt


def gmssl_verify(public_key: SM2PublicKey, signature_der: bytes, message: bytes) -> bool:
    """Verify with gmssl."""
    sig = algos.DSASignature.load(signature_der)
    raw = sig["r"].native.to_bytes(32, "big") + sig["s"].native.to_bytes(32, "big")
    return bool(gmssl_sm2(public_key).verify_with_sm3(raw.hex(), message))


def gmssl_verify_certificate(cert: Certificate, issuer_key: SM2PublicKey) -> bool:
    return gmssl_verify(issuer_key, cert.asn1["signature_value"].native, cert.tbs.dump())


@dataclass
class PkiHierarchy:
    root_signer: SoftwareSigner
    root: Certificate
    branch_signer: SoftwareSigner
    branch: Certificate
    seal_signer: SoftwareSigner
    seal: Certificate

    def write(self, directory: Path) -> dict[str, Path]:
        paths = {}
        for name in ("root", "branch", "seal"):
            path = directory / f"{name}.pem"
            path.write_bytes(getattr(self, name).pem)
            paths[name] = path
        return paths


def make_test_pki(now: dt.datetime = NOW) -> PkiHierarchy:
    root_signer = SoftwareSigner(SM2PrivateKey.generate())
    root = build_certificate(
        subject=make_name("测试省电子政务根CA", organization="测试省电子认证中心"),
        public_key=root_signer.public_key,
        serial=0x1001,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=3650),
        issuer_signer=root_signer,
        issuer=None,
        ca=True,
        key_usage={"key_cert_sign", "crl_sign"},
    )
    branch_signer = SoftwareSigner(SM2PrivateKey.generate())
    branch = build_certificate(
        subject=make_name("测试市电子证照分中心CA", organization="测试市电子认证分中心"),
        public_key=branch_signer.public_key,
        serial=0x2002,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1825),
        issuer_signer=root_signer,
        issuer=root,
        ca=True,
        path_length=0,
        key_usage={"key_cert_sign", "crl_sign", "digital_signature"},
        crl_url="http://127.0.0.1:8000/pki/root.crl",
    )
    seal_key = SM2PrivateKey.generate()
    seal = build_certificate(
        subject=make_name("测试市市场监督管理局", serial_number=DEPT_USCC),
        public_key=seal_key.public_key,
        serial=0x3003ABCDEF,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=730),
        issuer_signer=branch_signer,
        issuer=branch,
        ca=False,
        key_usage={"digital_signature", "non_repudiation"},
        crl_url="http://127.0.0.1:8000/pki/crl",
        ocsp_url="http://127.0.0.1:8000/pki/ocsp",
        ca_issuers_url="http://127.0.0.1:8000/pki/branch.cer",
        uscc=DEPT_USCC,
    )
    return PkiHierarchy(
        root_signer.with_chain((root,)),
        root,
        branch_signer.with_chain((branch, root)),
        branch,
        SoftwareSigner(seal_key, (seal, branch, root)),
        seal,
    )


# Fixtures that give a test a database (directly or through another fixture).
DB_FIXTURES = {"database_url", "settings", "registry", "pki_service", "licence_env", "shared_licence_env",
               "snapshots", "postgres", "postgres_server", "tmp_data_dir"}
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by what they use: postgres (the postgresql parameter, or the server itself), db
    (a database fixture, or any test of cert_authority/ not marked unit), unit (everything else but
    the browser tests). Selecting by marker: -m "not slow and not browser and not postgres"."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_postgres = "postgresql" in (params.get("database_url"), params.get("shared_licence_env"))
        if on_postgres or names & {"postgres", "postgres_server"}:
            item.add_marker(pytest.mark.postgres)
        in_service = (TESTS / "cert_authority") in item.path.parents
        if names & DB_FIXTURES or (in_service and item.get_closest_marker("unit") is None):
            item.add_marker(pytest.mark.db)
        elif item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Under CI, an interop test that skips (a vector or a tool missing) fails: it must run there."""
    report = yield
    interop = item.get_closest_marker("interop") is not None
    if report.skipped and interop and os.environ.get("CI") and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"an interop test may not skip under CI: {reason}"
    return report


@pytest.fixture(scope="session")
def pki() -> PkiHierarchy:
    """One real root → branch → seal hierarchy per test session."""
    return make_test_pki()


@pytest.fixture
def tmp_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ECAS data directory with a test key-encryption passphrase."""
    data = tmp_path / "var"
    monkeypatch.setenv("ECAS_DATA_DIR", str(data))
    monkeypatch.setenv("ECAS_KEK", "test-kek-" + os.urandom(8).hex())
    return data

# --- databases ---------------------------------------------------------------------------------
# Every test that takes `database_url` runs on SQLite and on PostgreSQL. A test's database starts
# from what its fixtures need, built once per session and copied for each test (no test sees
# another's writes):
# - "licence" (licence_env): an authority ready to issue (CA, departments, the example types, a
#   seal per department); building one took 1-4 s a test;
# - "migrated" (settings, registry, pki_service): an empty schema at the newest migration, which
#   took 0.1 s a test on SQLite and 0.35 s on PostgreSQL to migrate;
# - nothing (database_url alone, as the migration tests want): an empty database.
# SQLite databases (and data directories) are copied files; PostgreSQL ones are made with
# CREATE DATABASE ... TEMPLATE (about 0.1 s), empty ones are a schema in the session's database.
POSTGRES_ADMIN_URL = os.environ.get("ECAS_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
KEK = "test-passphrase"
# The data-key ring of a new data directory with few PBKDF2 rounds (200,000 by default: 0.2 s each).
datakeys.DEFAULT_ITERATIONS = 1000


@dataclass
class PostgresDatabases:
    """This session's databases on the local PostgreSQL server (all dropped at the end)."""

    admin: Engine  # AUTOCOMMIT, on the server's maintenance database: CREATE/DROP DATABASE
    session: str  # this session's own database, for schemas and as the prefix of the others
    created: list[str]
    # DROP DATABASE makes the server checkpoint (0.01-2.5 s here, by how much is dirty): a test's
    # copy is dropped by this thread while the next tests run.
    dropper: ThreadPoolExecutor
    dropping: list[Future[None]]

    def url(self, name: str) -> str:
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def create(self, suffix: str, template: str | None = None) -> str:
        name = f"{self.session}_{suffix}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_soon(self, name: str) -> None:
        """Drop in the background; WITH (FORCE) ends what the test left connected at once."""
        self.created.remove(name)
        self.dropping.append(self.dropper.submit(self.drop, name))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    """A fresh PostgreSQL database for this test session, and the copies made for its tests."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc.orig}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    databases = PostgresDatabases(admin, f"ecas_test_{uuid.uuid4().hex[:12]}", [], ThreadPoolExecutor(1), [])
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{databases.session}"'))
    databases.created.append(databases.session)
    yield databases
    databases.dropper.shutdown(wait=True)
    for name in reversed(databases.created):
        databases.drop(name)
    admin.dispose()
    for dropped in databases.dropping:
        dropped.result()  # a copy that could not be dropped is an error of the session


@pytest.fixture(scope="session")
def postgres_server(postgres: PostgresDatabases) -> str:
    """The URL of this session's PostgreSQL database (tests make their own schemas in it)."""
    return postgres.url(postgres.session)


@dataclass
class Snapshot:
    """A state built once per session: root/ecas.db (on SQLite) and root/var, its data directory;
    on PostgreSQL the database `postgres_template` instead of the file."""

    root: Path
    postgres_template: str | None

    def copy_data_dir(self, data_dir: Path) -> None:
        """The keys and stored files, copied (not linked: tests damage stored files on purpose)."""
        if (self.root / "var").exists():
            shutil.copytree(self.root / "var", data_dir)


class Snapshots:
    """The session's snapshots by starting point and database, each built when first needed."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.built: dict[tuple[str, str], Snapshot] = {}

    def get(self, request: pytest.FixtureRequest, start: str, backend: str) -> Snapshot:
        if (start, backend) not in self.built:
            self.built[start, backend] = self._build(request, start, backend)
        return self.built[start, backend]

    def _build(self, request: pytest.FixtureRequest, start: str, backend: str) -> Snapshot:
        root = self.tmp_path_factory.mktemp(f"snapshot-{start}-{backend}")
        template = None
        if backend == "sqlite":
            url = f"sqlite:///{root / 'ecas.db'}"
        else:
            postgres: PostgresDatabases = request.getfixturevalue("postgres")
            template = postgres.create(f"snapshot_{start}")
            url = postgres.url(template)
        settings = make_settings(root / "var", url)
        if start == "licence":
            fonts, seal_png = request.getfixturevalue("fonts"), request.getfixturevalue("seal_picture")
            engine = build_licence_env(settings, fonts, seal_png).engine
        else:
            engine = create_db_engine(url)
            migrate(engine)
        if backend == "sqlite":
            with engine.connect() as connection:  # everything into ecas.db, no -wal file to copy
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()  # a template database must have no connections when it is copied
        return Snapshot(root, template)


@pytest.fixture(scope="session")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Snapshots:
    return Snapshots(tmp_path_factory)


def starting_point(request: pytest.FixtureRequest) -> str | None:
    """What the test's database starts from, by the fixtures it uses (see above)."""
    names = set(request.fixturenames)
    if "licence_env" in names:
        return "licence"
    if names & {"settings", "registry", "pki_service"}:
        return "migrated"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, snapshots: Snapshots) -> Iterator[str]:
    start = starting_point(request)
    if request.param == "sqlite":
        path = tmp_path / "ecas.db"
        if start is not None:
            shutil.copyfile(snapshots.get(request, start, "sqlite").root / "ecas.db", path)
        yield f"sqlite:///{path}"
        return
    postgres: PostgresDatabases = request.getfixturevalue("postgres")
    if start is not None:
        template = snapshots.get(request, start, "postgresql").postgres_template
        name = postgres.create(f"t_{uuid.uuid4().hex[:10]}", template=template)
        yield postgres.url(name)
        postgres.drop_soon(name)
        return
    # An empty database: a schema in the session's database is cheaper than a database.
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres.url(postgres.session))
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{postgres.url(postgres.session)}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def make_settings(data_dir: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        kek=KEK,  # type: ignore[arg-type]
        base_url="http://127.0.0.1:8000",
        # Licences carry timestamps whatever this machine's NTP state (timestamping/clock.py).
        tsa_clock="unchecked",
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """A data directory (not made yet) and a migrated database (see `starting_point`)."""
    return make_settings(tmp_path / "var", database_url)


@pytest.fixture
def pki_service(settings: Settings) -> PkiService:
    """The CA service on a migrated database; its keys with few PBKDF2 rounds, as licence_env's
    (600,000 by default: 33 ms a key written or read)."""

    engine = create_db_engine(settings.effective_database_url)
    migrate(engine)
    return PkiService(settings, engine, key_store_for(settings, engine, iterations=1000))


@pytest.fixture(scope="session")
def fonts() -> FontSet:
    """The packaged CJK fonts, loaded once."""
    return FontSet.default()


# --- licence-type registry ---------------------------------------------------------------------
# Valid USCCs (GB 32100 check characters) for departments in registry tests.
ISSUER_USCC = "11350100MB00000100"
OTHER_ISSUER_USCC = "11350100MB00000201"
USER_USCC = "11350100MB00000302"
AUTHORITY_USCC = "11100000MA0000001Q"
TYPE_CODE = AUTHORITY_USCC + "001"


def type_spec_data(code: str = TYPE_CODE, issuers: list[str] | None = None, **overrides: object) -> dict[str, object]:
    """A minimal valid licence-type spec (as a department would write it) with its template."""
    data: dict[str, object] = {
        "code": code,
        "name": "测试许可证",
        "defining_authority": {"name": "测试省市场监督管理局", "uscc": code[:18]},
        "issuers": issuers if issuers is not None else [ISSUER_USCC],
        "issuer_level": "city",
        "holder": {"category": "legal_person", "code_types": ["001"], "name_field": "name", "code_field": "code"},
        "validity": {"kind": "fixed_term", "years": 5},
        "fields": [
            {"key": "name", "label": "名称", "type": "text", "max_length": 20, "example": "测试有限公司"},
            {"key": "code", "label": "统一社会信用代码", "type": "text", "max_length": 18},
        ],
        "template": template_data(),
    }
    data.update(overrides)
    return data


def template_data(**overrides: object) -> dict[str, object]:
    """A template for `type_spec_data`: A4 landscape, generated green background."""
    data: dict[str, object] = {
        "page": {"size": "A4-landscape"},
        "background": {"design": "green"},
        "texts": [{"text": "测试许可证", "box": {"x": 60, "y": 15, "w": 177, "h": 16}, "font_size": 28}],
        "fields": [
            {"field": "name", "box": {"x": 20, "y": 50, "w": 170, "h": 10}, "label_width": 45},
            {"field": "code", "box": {"x": 20, "y": 65, "w": 170, "h": 10}, "label_width": 45},
            {"meta": "issue_date", "box": {"x": 190, "y": 185, "w": 60, "h": 8}},
        ],
        "qr": {"box": {"x": 250, "y": 150, "w": 30, "h": 30}},
        "seal": {"box": {"x": 200, "y": 140, "w": 40, "h": 40}},
    }
    data.update(overrides)
    return data


@pytest.fixture
def registry(settings: Settings, fonts: FontSet) -> RegistryService:
    """The licence-type registry on a fresh database (SQLite and PostgreSQL) and file store."""
    engine = create_db_engine(settings.effective_database_url)
    migrate(engine)
    return RegistryService(engine, file_store_for(settings, engine), fonts)


def add_department(
    registry: RegistryService, uscc: str, roles: tuple[str, ...] = ("issuer",), name: str = "测试市市场监督管理局"
) -> DepartmentPublic:
    data = DepartmentCreate(name=name, uscc=uscc, area_code="350100", level="city", roles=list(roles))
    return registry.create_department(data)


APT_PACKAGES = {"pdftotext": "poppler-utils", "pdftoppm": "poppler-utils", "pdffonts": "poppler-utils",
                "zbarimg": "zbar-tools", "chromium": "chromium"}


def require_tool_or_skip(name: str) -> str:
    """Like require_tool in CI; elsewhere a missing cross-check tool skips the test."""
    if shutil.which(name) is None and not os.environ.get("CI"):
        package = APT_PACKAGES.get(name, name)
        pytest.skip(f"{name} not installed (apt-get install {package}; CI requires it)")
    return require_tool(name)


# --- e-seals (seals/) ----------------------------------------------------------------------------
SEAL_NAME = "测试市市场监督管理局电子证照专用章"


@pytest.fixture(scope="session")
def seal_picture() -> bytes:
    """The round red seal picture of the test department, drawn once."""
    from seals.picture import generate_round_seal

    return generate_round_seal("测试市市场监督管理局", "电子证照专用章")


@pytest.fixture(scope="session")
def eseal(pki: PkiHierarchy, seal_picture: bytes) -> bytes:
    """A DER SESeal (GB/T 38540 v4) made by the branch CA, listing the seal certificate."""
    from seals.ses import make_seal

    return make_seal(
        pki.branch_signer,
        es_id="3501000000000001",
        name=SEAL_NAME,
        seal_type=1,
        signer_certificates=[pki.seal.der],
        picture_png=seal_picture,
        width_mm=42,
        height_mm=42,
        valid_start=NOW - dt.timedelta(days=1),
        valid_end=NOW + dt.timedelta(days=365),
        created=NOW - dt.timedelta(days=1),
    )


def gmssl_sm3(data: bytes) -> bytes:
    """SM3 by the pure-Python gmssl package: a digest we did not compute."""
    from gmssl import func, sm3

    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


# --- seals and licences (cert_authority) ---------------------------------------------------------
FOOD_TYPE = "11100000MA0000001Q001"
VOCATIONAL_TYPE = "11100000MA0000002U001"
DRAINAGE_TYPE = "11100000MA0000003Y001"
EXAMPLE_ISSUERS = {FOOD_TYPE: ISSUER_USCC, VOCATIONAL_TYPE: OTHER_ISSUER_USCC, DRAINAGE_TYPE: USER_USCC}


@dataclass
class LicenceEnv:
    """A running authority: CA, the demo departments (issuers of the example types), the three
    example types, a seal per department, and the seal, issuance and lifecycle services."""

    settings: Settings
    pki: PkiService
    registry: RegistryService
    services: LicenceServices

    @property
    def engine(self) -> Engine:
        return self.registry.engine


def example_data(type_code: str) -> dict[str, str]:
    """The face data of an example type, from the `example` values of its fields."""
    import yaml

    name = {FOOD_TYPE: "food-business-licence", VOCATIONAL_TYPE: "vocational-qualification",
            DRAINAGE_TYPE: "drainage-permit"}[type_code]
    path = Path(__file__).resolve().parent.parent / "examples" / "types" / f"{name}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {f["key"]: str(f["example"]) for f in spec["fields"] if f.get("type") != "photo"}


def open_licence_env(settings: Settings, fonts: FontSet, engine: Engine | None = None) -> LicenceEnv:
    """The services over an existing data directory and database."""

    engine = engine or create_db_engine(settings.effective_database_url)
    # Audit rows and status events chained, as `open_database` does for the app and the CLI.
    attach_chain(engine, lambda: data_key_ring(settings).current(RECORDS))
    # Keys with few PBKDF2 rounds. The app and the CLI open them with the settings' passphrase (the
    # iteration count is in each key file), so a test can start an app on the same data directory.
    pki = PkiService(settings, engine, key_store_for(settings, engine, iterations=1000))
    registry = RegistryService(engine, file_store_for(settings, engine), fonts)
    return LicenceEnv(settings, pki, registry, licence_services_for(pki, registry))


@functools.cache
def department_seal_picture(name: str) -> bytes:
    """The round red seal of a department, drawn once per session."""
    from seals.picture import generate_round_seal

    return generate_round_seal(name, "电子证照专用章")


def build_licence_env(settings: Settings, fonts: FontSet, seal_png: bytes) -> LicenceEnv:
    """Everything but licences, fast: keys with few PBKDF2 rounds, the seal picture uploaded."""
    from cert_authority.actors import CLI_ACTOR
    from cert_authority.demo import DEPARTMENTS, register_departments, register_example_types
    from cert_authority.eseals.schemas import SealCreate

    engine = create_db_engine(settings.effective_database_url)
    migrate(engine)
    env = open_licence_env(settings, fonts, engine)
    env.pki.init(NOW)
    register_departments(env.registry)
    register_example_types(env.registry)
    for index, department in enumerate(DEPARTMENTS):
        request = SealCreate(department_uscc=department.uscc, name=f"{department.name}电子证照专用章",
                             legal_representative=department.legal_representative)
        # A department's own picture: one resembling another department's seal is refused.
        picture = seal_png if index == 0 else department_seal_picture(department.name)
        env.services.seals.register(CLI_ACTOR, request, picture=picture, now=NOW)
    return env


@pytest.fixture
def licence_env(
    request: pytest.FixtureRequest, settings: Settings, fonts: FontSet, snapshots: Snapshots
) -> Iterator[LicenceEnv]:
    """A fresh authority ready to issue, on SQLite and on PostgreSQL: a copy of the one built once
    per session (`database_url` copied its database, this its data directory)."""
    backend = "sqlite" if settings.effective_database_url.startswith("sqlite") else "postgresql"
    snapshots.get(request, "licence", backend).copy_data_dir(settings.data_dir)
    env = open_licence_env(settings, fonts)
    yield env
    env.engine.dispose()


def issue_example(env: LicenceEnv, type_code: str, data: dict[str, Any] | None = None, **options: Any) -> IssueResult:
    """Issue a licence of an example type as the CLI operator (admin) for the type's issuer, with
    the example face data, a photo where the type has one and dates where the type wants them."""
    from cert_authority.actors import CLI_ACTOR
    from cert_authority.demo import demo_photo

    defaults: dict[str, object] = {"issuer_uscc": EXAMPLE_ISSUERS.get(type_code, ISSUER_USCC)}
    if type_code == VOCATIONAL_TYPE:
        defaults["photo"] = demo_photo(0)
    if type_code == DRAINAGE_TYPE:
        defaults.update(valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2030, 12, 31))
    actor = options.pop("actor", CLI_ACTOR)
    return env.services.issuance.issue_licence(
        actor, type_code, example_data(type_code) if data is None else data, **{**defaults, **options}
    )


COUNTED_TABLES = ("licence", "licence_event", "audit_event", "idempotency_key", "licence_counter", "seal",
                  "issued_certificate")


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        # Fixed table names, not input.
        return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED_TABLES}  # noqa: S608


def stored_name(env: LicenceEnv, digest: str) -> str:
    """The name under which the file store keeps the file `digest`: its manifest if it is stored
    packed (`store.packing`, every licence PDF and OFD), else the file itself."""
    from cert_authority.store.packing import PackedFiles

    return PackedFiles(env.registry.filestore, env.engine).stored_name(digest)


def stored_files(settings: Settings) -> set[str]:
    """Names in the content-addressed file store (on a local store: every file, temporary ones too)."""
    if settings.effective_file_store == "local":
        root = settings.files_dir
        return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    engine = create_db_engine(settings.effective_database_url)
    try:
        return set(all_names(file_store_for(settings, engine).backend, 1000))
    finally:
        engine.dispose()


def raw_stored(store: FileStore, digest: str) -> bytes:
    """A file's stored value as the backend keeps it (sealed), not opened."""
    value = store.backend.read(digest)
    assert value is not None, f"{digest} is not in the store"
    return value


def overwrite_stored(store: FileStore, digest: str, value: bytes) -> None:
    """Put `value` in place of a file's stored value, as someone with access to the disk or the
    table could."""
    store.backend.write([(digest, value)], replace=True)


def flip_stored_bit(store: FileStore, digest: str, offset: int = 100) -> bytes:
    """Flip one bit of a stored value; returns the value as it was."""
    value = raw_stored(store, digest)
    damaged = bytearray(value)
    damaged[offset] ^= 1
    overwrite_stored(store, digest, bytes(damaged))
    return value


def remove_stored(store: FileStore, digest: str) -> None:
    """Delete a stored value, as someone with access to the disk or the table could."""
    if isinstance(store.backend, LocalDirectory):
        store.backend.path(digest).unlink()
    else:
        assert isinstance(store.backend, DatabaseFiles)
        with store.backend.engine.begin() as connection:
            connection.execute(text("DELETE FROM stored_file WHERE digest = :d"), {"d": digest})


@contextmanager
def licence_env_copy(
    request: pytest.FixtureRequest, snapshots: Snapshots, fonts: FontSet, directory: Path, backend: str
) -> Iterator[LicenceEnv]:
    """A copy of the session's authority in `directory` (and its own PostgreSQL database), for
    fixtures wider than a test."""
    snapshot = snapshots.get(request, "licence", backend)
    postgres: PostgresDatabases | None = None
    if backend == "sqlite":
        shutil.copyfile(snapshot.root / "ecas.db", directory / "ecas.db")
        url = f"sqlite:///{directory / 'ecas.db'}"
    else:
        postgres = request.getfixturevalue("postgres")
        name = postgres.create(f"m_{uuid.uuid4().hex[:10]}", template=snapshot.postgres_template)
        url = postgres.url(name)
    settings = make_settings(directory / "var", url)
    snapshot.copy_data_dir(settings.data_dir)
    env = open_licence_env(settings, fonts)
    try:
        yield env
    finally:
        env.engine.dispose()
        if postgres is not None:
            postgres.drop_soon(name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_licence_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fonts: FontSet, snapshots: Snapshots
) -> Iterator[LicenceEnv]:
    """One authority per test module and database, for tests that only add licences and compare
    counts before and after: a copy of the session's, as `licence_env` is."""
    with licence_env_copy(request, snapshots, fonts, tmp_path_factory.mktemp("licences"), request.param) as env:
        yield env
