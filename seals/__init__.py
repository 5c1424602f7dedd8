"""seals: e-seals and sealing (see ../shared/DESIGN.md). Plain library: values in, values out.

    picture        seal pictures (印模): the drawn round official seal, checked uploads
    ses            GB/T 38540-2020 v4 SESeal / TBS_Sign / SES_Signature: make, sign (staged), parse
    ofd_seal       seal an OFD package (GB/T 33190 §18), staged: prepare → sign → finish
    pdf_seal       seal any PDF with SM2 through pyHanko, staged: prepare → sign → finish
    licence_files  sealed licence PDF and OFD straight from a layout: the issuance hot path
    signed_data    CMS SignedData with SM2 and SM3: the one encoder of it in the project
    timestamp      RFC 3161 / GB/T 20520 time-stamp requests, tokens (SM2, SM3) and replies
    ofd_package    reading OFD packages safely (ZIP limits, part paths, XML without DTDs)
    pdf_reader     pyHanko's PDF reader with a fast hex-string reader
    box            where the seal goes: mm from the page's top-left
    errors         the one exception tree (SealError; SealInputError is a ValueError)

Internal: der_shapes (asn1crypto encodings cached per shape).
Each public module's `__all__` is its surface; tests/test_public_surface.py pins both lists.
Modules are imported by name (pyHanko is heavy; OFD-only callers need not load it).
"""

# The modules other packages may import (the rest are internal to seals).
__all__ = [
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
]
