"""Licence files stored packed (cert_authority.store.packing): what comes back is the sealed file
byte for byte, checked by tools we did not write; what is stored per licence is small; damage to
any stored part is a storage error, never a different file; files stored whole still read."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

import cert_authority.store.packing as packing
from cert_authority.actors import CLI_ACTOR
from cert_authority.errors import StoredFileError
from cert_authority.store.models import PackedFileRow
from cert_authority.store.packing import MAGIC, Constant, PackedFiles
from keys.sm2 import sm3
from templates.fonts import FontSet, subsetter_from_bytes
from tests.cert_authority.issuing.test_issuance import _seal_certificate, check_ofd, check_pdf
from tests.conftest import (
    FOOD_TYPE,
    VOCATIONAL_TYPE,
    LicenceEnv,
    flip_stored_bit,
    issue_example,
    overwrite_stored,
    remove_stored,
    stored_name,
)
from verification.report import Status

TARGET = 20 * 1024  # issue 24: at most 20 KB stored per licence


@pytest.fixture
def fresh_process() -> Iterator[None]:
    """Forget what this process cached (constants, font files, subsetters), as a new worker would."""
    saved = [dict(c) for c in _caches()]
    for cache in _caches():
        cache.clear()
    packing._CONSTANTS_SIZE[0] = 0
    yield
    for cache, content in zip(_caches(), saved, strict=True):
        cache.clear()
        cache.update(content)


def _caches() -> list[Any]:
    return [packing._CONSTANTS, packing._DIGESTS, packing._STORED, packing._FONTS, packing._SUBSETTERS,
            packing._SUBSETS, packing._ALIKE]


def _packed(env: LicenceEnv) -> PackedFiles:
    return PackedFiles(env.registry.filestore, env.engine)


def _segments(env: LicenceEnv, digest: str) -> list[list[object]]:
    header, _ = packing._read_manifest(digest, env.registry.filestore.get(stored_name(env, digest)))
    return header["segments"]


def test_a_packed_licence_downloads_byte_identical_and_verifies(
    shared_licence_env: LicenceEnv, tmp_path: Path
) -> None:
    env = shared_licence_env
    licences = [issue_example(env, FOOD_TYPE).licence for _ in range(3)]
    licences.append(issue_example(env, VOCATIONAL_TYPE).licence)  # with a photo
    for licence in licences:
        for fmt, digest in (("pdf", licence.files.pdf), ("ofd", licence.files.ofd)):
            data = env.services.queries.file(CLI_ACTOR, licence.identifier, fmt)
            assert sm3(data).hex() == digest
            assert not env.registry.filestore.exists(digest)  # not stored whole
            kinds = {segment[0] for segment in _segments(env, digest)}
            assert {"lit", "const", "cff" if fmt == "pdf" else "otf"} <= kinds
        seal_certificate = _seal_certificate(env, licence)
        check_pdf(env.services.queries.file(CLI_ACTOR, licence.identifier, "pdf"), seal_certificate,
                  tmp_path / "licence.pdf")  # qpdf --check, pyHanko's reader, gmssl
        check_ofd(env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd"), seal_certificate,
                  env.pki.branch_certificate())
        assert env.services.verification.verify_identifier(CLI_ACTOR, licence.identifier).result is Status.VALID
        for fmt in ("pdf", "ofd"):
            report = env.services.verification.verify_file(
                env.services.queries.file(CLI_ACTOR, licence.identifier, fmt)
            )
            assert report.result is Status.VALID, report.to_dict()


def test_stored_size_per_licence_is_below_20_kb(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    issue_example(env, FOOD_TYPE)  # the template's shared parts are stored by the first
    licences = [issue_example(env, FOOD_TYPE).licence for _ in range(3)]
    packed = _packed(env)
    for licence in licences:
        stored = packed.stored_size(licence.files.pdf) + packed.stored_size(licence.files.ofd)
        whole = len(packed.get(licence.files.pdf)) + len(packed.get(licence.files.ofd))
        assert stored <= TARGET, (stored, whole)
        assert whole > 10 * stored  # what it was before: some 390 KB


def test_a_new_process_rebuilds_the_files_from_the_store_alone(
    shared_licence_env: LicenceEnv, fresh_process: None
) -> None:
    """Constants and font subsets come from the file store (the font file is stored once), not from
    what the issuing process had in memory or from the configured fonts."""
    env = shared_licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    expected = {d: _packed(env).get(d) for d in (licence.files.pdf, licence.files.ofd)}
    for cache in _caches():
        cache.clear()
    fonts = {str(s[1]) for d in expected for s in _segments(env, d) if s[0] in ("cff", "otf")}
    assert fonts and all(env.registry.filestore.exists(name) for name in fonts)
    for digest, data in expected.items():
        assert _packed(env).get(digest) == data


def test_a_damaged_shared_part_is_a_storage_error(licence_env: LicenceEnv, fresh_process: None) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    [background] = [s[1] for s in _segments(env, licence.files.ofd) if s[0] == "const"
                    and len(env.registry.filestore.get(str(s[1]))) > 90_000 and b"JFIF" in
                    env.registry.filestore.get(str(s[1]))[:32]]
    flip_stored_bit(env.registry.filestore, str(background), 5000)
    packing._CONSTANTS.clear()
    with pytest.raises(StoredFileError, match="已损坏"):
        env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd")
    remove_stored(env.registry.filestore, str(background))
    with pytest.raises(StoredFileError, match="缺少文件"):
        env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd")
    # The verifier says the stored file is damaged; it never checks some other file.
    report = env.services.verification.verify_identifier(CLI_ACTOR, licence.identifier)
    assert (report.result, report.reason) == (Status.INVALID, "stored_file_damaged")


def test_a_damaged_or_forged_manifest_is_a_storage_error(licence_env: LicenceEnv) -> None:
    env = licence_env
    first, second = (issue_example(env, FOOD_TYPE).licence for _ in range(2))
    store, name = env.registry.filestore, stored_name(env, first.files.pdf)
    stored = flip_stored_bit(store, name, -10)
    with pytest.raises(StoredFileError, match="已损坏"):
        env.services.queries.file(CLI_ACTOR, first.identifier, "pdf")
    overwrite_stored(store, name, stored)
    original = store.get(name)

    # A manifest that is intact in the store (its own SM3 matches) but rebuilds other bytes: one
    # literal changed, or the manifest of another licence put in its place.
    header, literals = packing._read_manifest(first.files.pdf, original)
    for forged_header, forged_literals in (
        (header, literals[:-1] + bytes([literals[-1] ^ 1])),
        ({**header, "sm3": second.files.pdf}, literals),
    ):
        body = json.dumps(forged_header).encode()
        forged = MAGIC + zlib.compress(struct.pack(">I", len(body)) + body + forged_literals)
        name = env.registry.filestore.put(forged)
        with env.engine.begin() as connection:
            connection.execute(
                PackedFileRow.__table__.update()  # type: ignore[attr-defined]
                .where(PackedFileRow.__table__.c.sm3 == first.files.pdf)  # type: ignore[attr-defined]
                .values(manifest_sm3=name)
            )
        with pytest.raises(StoredFileError, match=r"不符|另一文件"):
            env.services.queries.file(CLI_ACTOR, first.identifier, "pdf")


def test_files_stored_whole_before_packing_still_read(licence_env: LicenceEnv) -> None:
    """A licence issued before packing: its files are in the store whole, with no packed_file row."""
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    packed = _packed(env)
    whole = {d: packed.get(d) for d in (licence.files.pdf, licence.files.ofd)}
    for data in whole.values():
        env.registry.filestore.put(data)
    with env.engine.begin() as connection:
        connection.execute(delete(PackedFileRow))
    for digest in whole:
        assert packed.exists(digest) and packed.stored_name(digest) == digest
    assert env.services.queries.file(CLI_ACTOR, licence.identifier, "pdf") == whole[licence.files.pdf]
    assert env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd") == whole[licence.files.ofd]
    assert env.services.verification.verify_identifier(CLI_ACTOR, licence.identifier).result is Status.VALID


def test_packing_only_what_shrinks(licence_env: LicenceEnv) -> None:
    packed = _packed(licence_env)
    small = b"a short file that shares nothing"
    [name] = packed.put_packed([(small, None, [Constant(b"x" * 300)])])
    assert packed.stored_name(name) == name and packed.get(name) == small
    assert not licence_env.registry.filestore.exists(sm3(b"x" * 300).hex())  # not referred to: not stored


def test_subsets_cut_from_font_bytes_are_pinned(fonts: FontSet) -> None:
    """Stored licences rebuild their font subsets with templates.cff_subset: a change to what it
    cuts would make every packed licence unreadable. If this fails, the subsetter's output changed:
    keep the old cutting for stored manifests (a new segment kind for the new one)."""
    chars = frozenset("中华人民共和国食品经营许可证 演示市第1号餐饮有限公司ABC（）")
    for font in (fonts.serif, fonts.sans):
        subset = subsetter_from_bytes(font.path.read_bytes())(chars)
        assert subset.cff == font.subset(chars).cff and subset.otf == font.subset(chars).otf
    serif = subsetter_from_bytes(fonts.serif.path.read_bytes())(chars)
    assert (len(serif.cff), len(serif.otf)) == KNOWN_SERIF_LENGTHS
    assert sm3(serif.otf).hex() == KNOWN_SERIF_OTF_SM3


KNOWN_SERIF_LENGTHS = (7357, 10448)
KNOWN_SERIF_OTF_SM3 = "4546a6bd0c666c5de3e9f0e3c415352332802751800d69ac8509120c8088af7b"
