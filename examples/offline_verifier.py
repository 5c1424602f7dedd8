"""An offline verifier for counters without a network link (离线核验示例).

    python examples/offline_verifier.py --root root.pem --authority USCC --bundle trust-bundle.json TOKEN_OR_FILE

`root.pem` is the provincial root and USCC the authority's code (ECAS_AUTHORITY_USCC), both
installed once from a trusted source (the installation medium, or a known-good link).
`trust-bundle.json` is fetched whenever there is a link (`GET /pki/trust-bundle.json`) and checked
against those two before use. Then a shown token (亮证码, the QR code's text) or a sealed PDF/OFD is
checked with no network at all.

A sealed file with a trusted timestamp and the revocation evidence of its sealing time (every
licence ECAS issues carries both) verifies offline for as long as the bundle's root and branch are
valid: the seal certificate is checked at the timestamp's time, with the OCSP response kept in the
file when the bundle's CRL has expired, so even after the seal certificate itself has expired.

Offline, what only the registry knows is out of reach: whether the licence was revoked after the
bundle's CRL, and whether the token was already used elsewhere. The verdict says so; check online
when the link is back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from keys.x509 import Certificate
from verification.report import Status
from verification.sealed_file import verify_sealed_file
from verification.show_token import PREFIX, read_token
from verification.trust_bundle import TrustBundleError, load_trust_bundle


def main() -> int:
    parser = argparse.ArgumentParser(description="离线核验亮证码或盖章文件")
    parser.add_argument("--root", type=Path, required=True, help="预置的根证书（PEM）")
    parser.add_argument("--authority", required=True, help="预置的证照服务机构统一社会信用代码")
    parser.add_argument("--bundle", type=Path, required=True, help="信任包 trust-bundle.json")
    parser.add_argument("--now", help="按此时间核验（ISO 8601，带时区；默认当前时间），用于审计与测试")
    parser.add_argument("target", help="亮证码文本，或盖章的 PDF/OFD 文件路径")
    args = parser.parse_args()
    now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.timezone.utc)
    try:
        root = Certificate.load(args.root.read_bytes())
        bundle = load_trust_bundle(args.bundle.read_bytes(), root, args.authority, now)
    except TrustBundleError as exc:
        print(f"信任包不可用：{exc}")
        return 2
    if not args.target.startswith(PREFIX + "."):  # a file
        report, _ = verify_sealed_file(Path(args.target).read_bytes(), bundle.anchors, now)
        print(f"{report.result.value}（{report.reason}）：{report.message}")
        for check in report.checks:
            print(f"  {check.status.value:13} {check.name:10} {check.message}")
        return {Status.VALID: 0, Status.INVALID: 1}.get(report.result, 2)
    token, check = read_token(args.target, [bundle.service], now)
    print(f"{check.status.value}（{check.reason}）：{check.message}")
    if token is not None and check.status is Status.VALID:
        print(f"  证照 {token.identifier}")
        for key, value in token.fields.items():
            print(f"  {key}: {value}")
        print(f"  离线核验：未能确认信任包（{bundle.issued_at:%Y-%m-%d %H:%M}Z）之后的吊销与重复使用，联网后请在线复核")
    return 0 if check.status is Status.VALID else 1


if __name__ == "__main__":
    sys.exit(main())
