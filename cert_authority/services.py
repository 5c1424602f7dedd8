"""The seal and licence services built on one engine, file store, PKI and registry: the app, the
CLI, the benches and batch worker processes wire them the same way."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from cert_authority.checking.licences import VerificationService
from cert_authority.checking.show_tokens import ShowTokenVerifier
from cert_authority.eseals.service import SealService
from cert_authority.holders.service import HolderService, LocalAccounts
from cert_authority.issuing.images import LicenceImages
from cert_authority.issuing.issuance import IssuanceService
from cert_authority.issuing.layouts import LicenceLayouts
from cert_authority.issuing.lifecycle import LifecycleService
from cert_authority.issuing.queries import LicenceQueryService
from cert_authority.pki.service import PkiService
from cert_authority.registry.service import RegistryService, registry_for
from cert_authority.settings import Settings
from cert_authority.sharing.cases import CaseService
from cert_authority.sharing.matters import MatterService
from cert_authority.sharing.rules import Authorisations, DutyRules
from cert_authority.sharing.service import SharingService
from cert_authority.sharing.stats import StatsService
from cert_authority.store.data_keys import open_keys_early
from cert_authority.store.db import open_database
from cert_authority.store.personal import PersonalData, personal_data_for
from cert_authority.timestamping.authority import TimeStampAuthority
from cert_authority.transparency.log import TransparencyLog


@dataclass(frozen=True)
class LicenceServices:
    seals: SealService
    issuance: IssuanceService
    lifecycle: LifecycleService
    queries: LicenceQueryService
    verification: VerificationService
    accounts: LocalAccounts
    holders: HolderService
    show_tokens: ShowTokenVerifier
    sharing: SharingService
    matters: MatterService
    duty_rules: DutyRules
    authorisations: Authorisations
    cases: CaseService
    stats: StatsService
    timestamps: TimeStampAuthority
    log: TransparencyLog
    personal: PersonalData  # the codec of personal data at rest (store.personal)


def licence_services_for(pki: PkiService, registry: RegistryService) -> LicenceServices:
    """Seals, issuance, lifecycle and queries sharing the registry's engine, files and fonts."""
    engine, files = registry.engine, registry.filestore
    personal = personal_data_for(pki.settings)
    timestamps = TimeStampAuthority(pki, engine)
    stamps = timestamps if pki.settings.tsa_stamp_seals else None
    seals = SealService(engine, files, pki, lambda: registry.fonts, timestamps=stamps)
    layouts = LicenceLayouts(registry, files, pki.settings.base_url)
    accounts = LocalAccounts(engine, personal)
    transparency = TransparencyLog(engine, pki)
    verification = VerificationService(engine, files, pki, layouts, transparency, personal)
    matters = MatterService(engine, registry)
    duty_rules = DutyRules(engine, registry, matters)
    authorisations = Authorisations(engine, registry, matters, personal)
    sharing = SharingService(engine, files, pki, registry, layouts, duty_rules, personal, timestamps=stamps)
    return LicenceServices(
        seals=seals,
        issuance=IssuanceService(engine, files, registry, seals, layouts, personal, timestamps=stamps),
        lifecycle=LifecycleService(engine, personal),
        queries=LicenceQueryService(engine, files, LicenceImages(engine, files, layouts), personal),
        verification=verification,
        accounts=accounts,
        holders=HolderService(engine, accounts, pki, registry, verification.binding, personal),
        show_tokens=ShowTokenVerifier(engine, pki, personal),
        sharing=sharing,
        matters=matters,
        duty_rules=duty_rules,
        authorisations=authorisations,
        cases=CaseService(engine, files, pki, registry, sharing, matters, duty_rules, authorisations, personal),
        stats=StatsService(engine),
        timestamps=timestamps,
        log=transparency,
        personal=personal,
    )


def migrated_engine(settings: Settings) -> Engine:
    return open_database(settings)


def licence_services(settings: Settings) -> LicenceServices:
    """Seals, issuance, lifecycle and queries on the settings' database and files."""
    engine = migrated_engine(settings)
    return licence_services_for(PkiService(settings, engine), registry_for(settings, engine))


def issuance_service(settings: Settings) -> IssuanceService:
    """What a batch worker process needs (see `issuing.batch.BatchPool`)."""
    services = licence_services(settings)
    open_keys_early(settings)
    return services.issuance
