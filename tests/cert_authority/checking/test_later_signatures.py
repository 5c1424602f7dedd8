"""Attack: a later signature must not hide a change made after an earlier one (issue 21, part 1).

A sealed licence PDF gets an incremental revision that paints new text over the page, then another
department seals the result. The offline verifier (`verify_sealed_file`) answered VALID and the
issuer's signature said the content was unchanged. Now a licence PDF is a certified document
(DocMDP, no changes permitted): any revision after the issuer's seal makes it INVALID; for other
documents every signature is reported with what it covers, and a change of page content after a
signature is INVALID, whatever is signed later."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from cert_authority.actors import Actor
from seals.errors import DocumentError
from tests.cert_authority.eseals.test_seal_documents import department_pdf, seal_id
from tests.conftest import FOOD_TYPE, ISSUER_USCC, OTHER_ISSUER_USCC, LicenceEnv, issue_example
from verification.pdf_file import inspect_pdf
from verification.report import Status
from verification.sealed_file import verify_sealed_file


def paint_over(pdf: bytes) -> bytes:
    """An incremental revision drawing a white box and new text over the first page, and dropping
    the certification from the catalog (/Perms), as an attacker would to get a sealing tool to sign
    the result at all (pyHanko refuses to sign a document certified with no changes permitted)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    stream = generic.StreamObject(stream_data=b"q 1 1 1 rg 60 600 300 80 re f Q BT /F1 24 Tf 70 630 Td (FORGED) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(stream))
    if "/Perms" in writer.root:
        del writer.root["/Perms"]
        writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_later_seal_does_not_hide_a_painted_over_licence(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    original = env.services.queries.file(Actor("cli", "admin"), licence.identifier, "pdf")
    other = Actor("apikey:other", "issuer", OTHER_ISSUER_USCC)
    forged = env.services.seals.seal_document(other, seal_id(env, OTHER_ISSUER_USCC), paint_over(original), 0, 10, 10)
    now = dt.datetime.now(dt.timezone.utc)
    report, _ = verify_sealed_file(forged, env.services.verification.anchors(now), now)
    assert report.result is Status.INVALID, report
    assert report.reason == "modified_after_certification"
    issuer_signature = report.subject["signatures"][0]
    assert issuer_signature["covers_whole_file"] is False and issuer_signature["certified"] is True
    issuer_checks = inspect_pdf(forged).signatures[0].checks
    assert not any("文件内容与签章时一致" in check.message for check in issuer_checks)
    assert env.services.verification.verify_file(forged).result is Status.INVALID
    # Our own service refuses to seal a licence at all: it permits no change.
    with pytest.raises(DocumentError, match="证照文件不允许再盖章"):
        env.services.seals.seal_document(other, seal_id(env, OTHER_ISSUER_USCC), original, 0, 10, 10)


def test_documents_report_every_signature_and_refuse_content_changed_between(licence_env: LicenceEnv) -> None:
    env = licence_env
    seals = env.services.seals
    issuer = Actor("apikey:issuer", "issuer", ISSUER_USCC)
    other = Actor("apikey:other", "issuer", OTHER_ISSUER_USCC)
    once = seals.seal_document(issuer, seal_id(env), department_pdf(), 0, 20, 20)
    now = dt.datetime.now(dt.timezone.utc)
    trust = env.services.verification.anchors(now)

    twice = seals.seal_document(other, seal_id(env, OTHER_ISSUER_USCC), once, 0, 80, 20)
    report, _ = verify_sealed_file(twice, trust, now)
    assert report.result is Status.VALID, report
    first, second = report.subject["signatures"]
    assert (first["covers_whole_file"], first["later_changes"]) == (False, "signatures_added")
    assert (second["covers_whole_file"], second["later_changes"]) == (True, None)

    painted = seals.seal_document(other, seal_id(env, OTHER_ISSUER_USCC), paint_over(once), 0, 80, 20)
    report, _ = verify_sealed_file(painted, trust, now)
    assert report.result is Status.INVALID and report.reason == "modified_after_signing", report
    assert inspect_pdf(painted).signatures[0].covers_whole_file is False


def test_a_later_ofd_seal_does_not_hide_a_changed_part(licence_env: LicenceEnv) -> None:
    """The same attack on the OFD: a page's content changed, then another department seals the
    package. A licence OFD protects its signature list, so no later seal can be added to it (our
    sealer refuses), and whatever else is added, the issuer's signature still lists the changed
    part with its old SM3: INVALID."""
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    original = env.services.queries.file(Actor("cli", "admin"), licence.identifier, "ofd")
    with zipfile.ZipFile(io.BytesIO(original)) as package:
        parts = {info.filename: package.read(info) for info in package.infolist()}
    content = next(name for name in parts if name.endswith("Content.xml") and "Page" in name)
    parts[content] = parts[content].replace(licence.holder.name.encode(), "某某".encode(), 1)
    changed = io.BytesIO()
    with zipfile.ZipFile(changed, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(name, data)
    other = Actor("apikey:other", "issuer", OTHER_ISSUER_USCC)
    with pytest.raises(DocumentError, match="不能再追加签章"):
        env.services.seals.seal_document(other, seal_id(env, OTHER_ISSUER_USCC), changed.getvalue(), 0, 10, 10)
    now = dt.datetime.now(dt.timezone.utc)
    report, _ = verify_sealed_file(changed.getvalue(), env.services.verification.anchors(now), now)
    assert report.result is Status.INVALID and report.reason == "digest_mismatch", report
