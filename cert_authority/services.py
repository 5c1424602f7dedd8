"""The seal and licence services built on one engine, file store, PKI and registry: the app and the
CLI wire them the same way."""

from __future__ import annotations

from dataclasses import dataclass

from cert_authority.holders import HolderService, LocalAccounts
from cert_authority.issuance import IssuanceService
from cert_authority.licence_images import LicenceImages
from cert_authority.licence_layouts import LicenceLayouts
from cert_authority.licence_queries import LicenceQueryService
from cert_authority.lifecycle import LifecycleService
from cert_authority.pki import PkiService
from cert_authority.registry import RegistryService
from cert_authority.seals_service import SealService
from cert_authority.sharing import SharingService
from cert_authority.show_verify import ShowTokenVerifier
from cert_authority.verifying import VerificationService


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


def licence_services_for(pki: PkiService, registry: RegistryService) -> LicenceServices:
    """Seals, issuance, lifecycle and queries sharing the registry's engine, files and fonts."""
    engine, files = registry.engine, registry.filestore
    seals = SealService(engine, files, pki, lambda: registry.fonts)
    layouts = LicenceLayouts(registry, files, pki.settings.base_url)
    accounts = LocalAccounts(engine)
    return LicenceServices(
        seals=seals,
        issuance=IssuanceService(engine, files, registry, seals, layouts),
        lifecycle=LifecycleService(engine),
        queries=LicenceQueryService(engine, files, LicenceImages(engine, files, layouts)),
        verification=VerificationService(engine, files, pki, layouts),
        accounts=accounts,
        holders=HolderService(engine, accounts, pki, registry),
        show_tokens=ShowTokenVerifier(engine, pki),
        sharing=SharingService(engine, files, pki, registry, layouts),
    )
