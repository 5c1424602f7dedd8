"""The trust bundle for offline verifiers (离线验证信任包): the root, branch and service certificates
and the branch CA's current CRL in one JSON document, signed by the authority's service key as a
detached CMS SignedData (SM3, SM2-with-SM3, the service chain) over the canonical JSON of the other
fields. A verifier pins the root out of band and checks everything else against it
(`verification.trust_bundle.load_trust_bundle`)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from cert_authority.pki.service import PkiService
from keys.crl import Crl
from keys.sm2 import sm3
from seals.signed_data import signed_attributes, signed_data
from verification.trust_bundle import BUNDLE_FORMAT, canonical


def trust_bundle(pki: PkiService, now: dt.datetime) -> bytes:
    now = now.astimezone(dt.timezone.utc).replace(microsecond=0)
    signer = pki.service_signer(now)
    service, branch, root = signer.certificate_chain
    crl = Crl.load(pki.current_crl(now))
    body: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "issued_at": now.isoformat(),
        "base_url": pki.settings.base_url,
        "root": root.pem.decode(),
        "branch": branch.pem.decode(),
        "service": service.pem.decode(),
        "crl": base64.b64encode(crl.der).decode(),
        "crl_next_update": crl.next_update.isoformat() if crl.next_update else None,
    }
    attributes = signed_attributes(sm3(canonical(body)), now, service.der)
    body["signature"] = base64.b64encode(
        signed_data(signer.certificate_chain, attributes, signer.sign(attributes))
    ).decode()
    return json.dumps(body, ensure_ascii=False, indent=2).encode()
