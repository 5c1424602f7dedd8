"""The public surface of the inner packages (keys, templates, seals, verification), pinned.

The convention: a package's `__init__.__all__` lists the modules other packages may import; each
of those modules' `__all__` lists the names other packages may import from it (sibling modules
inside the package may use the rest; internal modules carry no `__all__`). The lists below are
literal on purpose: widening or narrowing a surface is a deliberate, visible change to this file.

And the surface is real: every import from an inner package in another package (cert_authority,
or an inner package above it) goes through it, checked by an AST scan like
tests/test_import_direction.py's. mypy (implicit_reexport off for the inner packages) checks the
other half: a name reaches another package only through the exporting module's `__all__`.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INNER = ("keys", "templates", "seals", "verification")
IMPORTERS = ("cert_authority", *INNER)

# The modules each inner package offers to other packages.
PUBLIC_MODULES: dict[str, list[str]] = {
    "keys": ["aead", "ca", "crl", "datakeys", "errors", "keystore", "ocsp", "oids", "signer", "sm2", "uscc", "x509"],
    "templates": [
        "errors",
        "fonts",
        "identifier",
        "images",
        "layout",
        "layout_spec",
        "ofd",
        "pdf",
        "png",
        "qr",
        "render",
        "spec",
        "units",
    ],
    "seals": [
        "box",
        "errors",
        "licence_files",
        "ofd_package",
        "ofd_seal",
        "pdf_reader",
        "pdf_seal",
        "picture",
        "ses",
        "signed_data",
        "timestamp",
    ],
    "verification": [
        "eseal",
        "merkle",
        "ofd_file",
        "report",
        "sealed_file",
        "show_token",
        "timestamp",
        "transparency",
        "trust",
        "trust_bundle",
    ],
}

# The names each public module offers to other packages.
SURFACE: dict[str, list[str]] = {
    "keys.ca": [
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
    ],
    "keys.crl": ["Crl", "REASONS", "RevokedEntry", "build_crl", "parse_reason", "reason_text"],
    "keys.errors": [
        "ASN1_DECODE_ERRORS",
        "CAError",
        "CheckCharacterError",
        "InvalidCertificateError",
        "InvalidCodeError",
        "InvalidKeyError",
        "KeyExistsError",
        "KeyNotFoundError",
        "KeysError",
        "SealedValueError",
        "WrongPassphraseError",
    ],
    "keys.aead": ["NONCE_BYTES", "SM4_KEY_BYTES", "TAG_BYTES", "hmac_sm3", "sm4_gcm_open", "sm4_gcm_seal"],
    "keys.datakeys": ["DataKey", "DataKeyRing", "FileRingStorage", "RingStorage"],
    "keys.keystore": ["KeyDirectory", "KeyFiles", "KeyStore", "SoftwareKeyStore", "create_key_file", "open_key_file"],
    "keys.ocsp": ["CertStatus", "OcspResult", "ocsp_error_response", "ocsp_request", "parse_ocsp_response"],
    "keys.oids": ["SM2_SIGN", "SM2_WITH_SM3", "SM2_WITH_SM3_NAME", "SM3", "SM3_NAME"],
    "keys.signer": ["Signer"],
    "keys.sm2": ["SIGNATURE_MAX_DER", "SM2PrivateKey", "SM2PublicKey", "backend_version", "raw_to_der", "sm3"],
    "keys.uscc": ["uscc_check_character", "validate_uscc"],
    "keys.x509": ["Certificate", "CertificationRequest", "make_name"],
    "templates.errors": ["FontError", "ImageError", "LayoutError", "MissingGlyphError", "SpecError", "TemplateError"],
    "templates.fonts": ["FontSet", "SubsetFont", "subsetter_from_bytes"],
    "templates.identifier": [
        "ID_CHECK",
        "ID_WEIGHTS",
        "LicenceIdentifier",
        "ROOT",
        "mask_holder_code",
        "validate_citizen_id",
        "validate_holder_code",
    ],
    "templates.images": ["MAX_UPLOAD_BYTES", "Picture", "load_picture"],
    "templates.layout": [
        "BlockStyle",
        "LicenceFace",
        "PT_MM",
        "PageLayout",
        "TextRun",
        "annotate",
        "build_layout",
        "check_glyphs",
        "make_qr",
        "text_block",
    ],
    "templates.layout_spec": ["Box", "DESIGNS", "TemplateSpec"],
    "templates.ofd": [
        "DOC_DIR",
        "PackageEntry",
        "ZipDateTime",
        "ofd_numbers",
        "ofd_parts",
        "package_entries",
        "write_package",
    ],
    "templates.pdf": ["PT_PER_MM", "PdfFile", "build_pdf", "pdf_date", "pdf_number", "pdf_stream", "utf16_hex"],
    "templates.png": ["png_bytes", "render_image"],
    "templates.qr": ["qr_png", "qr_svg"],
    "templates.units": ["unbreakable_spans"],
    "templates.render": [
        "FORMATS",
        "FontSet",
        "LicenceFace",
        "MEDIA_TYPES",
        "PHONE_WIDTH_PX",
        "PRINT_DPI",
        "PageLayout",
        "build_layout",
        "check_fits",
        "phone_dpi",
        "prepare_background",
        "render",
        "render_ofd",
        "render_pdf",
        "render_png",
        "sample_face",
    ],
    "templates.spec": [
        "FieldType",
        "HOLDER_CODE_TYPES",
        "LicenceTypeSpec",
        "ValidityPolicy",
        "as_value_error",
        "check_template",
        "chinese_date",
        "parse_model",
        "problem_text",
        "validate_type_code",
    ],
    "seals.box": ["SealBox"],
    "seals.errors": [
        "DocumentError",
        "MalformedSealError",
        "PictureError",
        "SealError",
        "SealInputError",
        "SealSigningError",
    ],
    "seals.licence_files": ["SealedLicence", "seal_licence", "seal_page_pdf"],
    "seals.ofd_package": ["child", "child_text", "children", "local_name", "parse_xml", "read_package", "resolve"],
    "seals.ofd_seal": ["seal_ofd"],
    "seals.pdf_reader": ["FastHexPdfReader"],
    "seals.pdf_seal": ["seal_pdf"],
    "seals.picture": [
        "MAX_UPLOAD_BYTES",
        "PictureFingerprint",
        "decode_seal_picture",
        "generate_round_seal",
        "load_seal_picture",
        "picture_fingerprint",
    ],
    "seals.ses": ["CERT_LIST_CERTIFICATES", "Seal", "SealSignature", "make_seal", "parse_seal", "parse_signature"],
    "seals.signed_data": ["signed_attributes", "signed_data", "timestamp_token", "tst_signed_attributes"],
    "seals.timestamp": [
        "HASH_ALGORITHMS",
        "MAX_REQUEST_BYTES",
        "SHA256",
        "StampRequest",
        "TimeStampRequestError",
        "TimeStampToken",
        "granted_reply",
        "make_tokens",
        "parse_reply",
        "parse_request",
        "parse_token",
        "rejection_reply",
    ],
    "verification.eseal": ["check_maker_chain", "check_seal_made", "seal_maker"],
    "verification.merkle": [
        "NodeReader",
        "SHA256_TREE",
        "SM3_TREE",
        "TreeHasher",
        "consistency_proof",
        "inclusion_proof",
        "root_hash",
        "subtree_hash",
        "verify_consistency",
        "verify_inclusion",
    ],
    "verification.ofd_file": ["inspect_ofd"],
    "verification.report": ["Check", "Report", "Status", "shown_time"],
    "verification.timestamp": ["TIME_STAMPING", "check_timestamp"],
    "verification.sealed_file": ["verify_sealed_file"],
    "verification.show_token": ["MAX_TOKEN_CHARS", "PREFIX", "ShowToken", "make_token", "read_token"],
    "verification.transparency": [
        "AnchorLeaf",
        "COMMITTED_FORMAT",
        "EVENTS",
        "LEAF_FORMAT",
        "LeafFormatError",
        "LogLeaf",
        "SignedTreeHead",
        "decode_hashes",
        "decode_leaf",
        "record_commitment",
    ],
    "verification.trust": ["TrustAnchors"],
    "verification.trust_bundle": ["BUNDLE_FORMAT", "TrustBundleError", "canonical", "load_trust_bundle"],
}

# Imports that reach past the surface today, each with where and why. Fix the importer and delete
# the entry; test_known_exceptions_are_still_needed fails when an entry is no longer used.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _internal_modules(package: str) -> list[str]:
    return sorted(
        path.stem
        for path in (ROOT / package).glob("*.py")
        if path.stem != "__init__" and path.stem not in PUBLIC_MODULES[package]
    )


@pytest.mark.parametrize("package", INNER)
def test_package_lists_its_public_modules(package: str) -> None:
    exported = importlib.import_module(package).__all__
    assert sorted(exported) == PUBLIC_MODULES[package]
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert (ROOT / package / f"{name}.py").is_file(), f"{package}.__all__ names {name}, which is no module"


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_module_surface_is_pinned(module: str) -> None:
    imported = importlib.import_module(module)
    exported = imported.__all__
    assert sorted(exported) == SURFACE[module]
    assert len(set(exported)) == len(exported)
    missing = [name for name in exported if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"


def test_every_public_module_is_pinned() -> None:
    public = {f"{package}.{module}" for package, modules in PUBLIC_MODULES.items() for module in modules}
    assert public == set(SURFACE)


@pytest.mark.parametrize("package", INNER)
def test_internal_modules_declare_no_surface(package: str) -> None:
    """A module with an __all__ is public: list it in the package's __all__, or drop its __all__."""
    for name in _internal_modules(package):
        tree = ast.parse((ROOT / package / f"{name}.py").read_text(encoding="utf-8"))
        assigned = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        assert "__all__" not in assigned, f"{package}.{name} has an __all__ but is not in {package}.__all__"


def surface_violations(source: str, importer: str) -> list[tuple[int, str]]:
    """(line, imported module or module.name) for each import in `source`, the text of a module of
    package `importer`, that reaches into another inner package past its surface."""
    found: list[tuple[int, str]] = []

    def check_module(line: int, dotted: str) -> bool:
        """Whether `dotted` (an inner package or one of its modules) may be imported; record it if not."""
        package, _, rest = dotted.partition(".")
        if not rest:
            return True
        module = rest.split(".")[0]
        if module not in PUBLIC_MODULES[package]:
            found.append((line, f"{package}.{module}"))
            return False
        return True

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                package = alias.name.split(".")[0]
                if package in INNER and package != importer:
                    check_module(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            package = node.module.split(".")[0]
            if package not in INNER or package == importer:
                continue
            if node.module == package:  # from keys import x: x must be a public module
                for alias in node.names:
                    check_module(node.lineno, f"{package}.{alias.name}")
            elif check_module(node.lineno, node.module):
                public = SURFACE.get(node.module, [])
                found.extend(
                    (node.lineno, f"{node.module}.{alias.name}") for alias in node.names if alias.name not in public
                )
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                dotted = first.value
                if isinstance(dotted, str) and dotted.split(".")[0] in INNER and dotted.split(".")[0] != importer:
                    check_module(node.lineno, dotted)
    return found


def _all_violations() -> dict[tuple[str, str], list[int]]:
    violations: dict[tuple[str, str], list[int]] = {}
    for importer in IMPORTERS:
        for path in sorted((ROOT / importer).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, imported in surface_violations(path.read_text(encoding="utf-8"), importer):
                violations.setdefault((relative, imported), []).append(line)
    return violations


def test_other_packages_import_only_the_surface() -> None:
    unexpected = [
        f"{path}:{lines[0]}: {imported} is not in the public surface"
        for (path, imported), lines in _all_violations().items()
        if (path, imported) not in KNOWN_EXCEPTIONS
    ]
    assert not unexpected, "\n".join(unexpected)


def test_known_exceptions_are_still_needed() -> None:
    stale = set(KNOWN_EXCEPTIONS) - set(_all_violations())
    assert not stale, f"no longer imported past the surface, remove them from KNOWN_EXCEPTIONS: {sorted(stale)}"


def test_the_scan_sees_what_it_must() -> None:
    source = (
        "from keys.x509 import Certificate\n"  # public
        "from keys.x509 import utc\n"  # a public module's internal name
        "from keys.pkcs8 import encrypt_private_key\n"  # an internal module
        "from keys import armor, sm2\n"  # an internal module, a public one
        "import seals.der_shapes\n"
        "import importlib\n"
        "importlib.import_module('verification.evidence')\n"
        "from cert_authority.store import db\n"  # not an inner package
    )
    assert surface_violations(source, "cert_authority") == [
        (2, "keys.x509.utc"),
        (3, "keys.pkcs8"),
        (4, "keys.armor"),
        (5, "seals.der_shapes"),
        (7, "verification.evidence"),
    ]
    assert surface_violations("from keys.pkcs8 import encrypt_private_key\n", "keys") == []  # siblings are free
