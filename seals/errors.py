"""The exceptions of `seals`. Messages are zh-CN: department staff and seal administrators read
them. Foreign errors (Pillow, asn1crypto, zipfile, XML, pyHanko) are translated at the boundary so
callers handle one tree:

    SealError
    ├── SealInputError (ValueError)   the input is wrong; the caller can fix it and try again
    │   ├── PictureError              a seal picture is not a PNG, too large, or a decompression bomb
    │   ├── MalformedSealError        an SES_Seal / SES_Signature that does not decode (GB/T 38540)
    │   └── DocumentError             a PDF or OFD that cannot be read, or a page/box that is not on it
    └── SealSigningError              the signer failed or returned a signature that does not verify
                                      (an HSM fault, a wrong key): never embedded in a document
"""

from __future__ import annotations

__all__ = ["DocumentError", "MalformedSealError", "PictureError", "SealError", "SealInputError", "SealSigningError"]


class SealError(Exception):
    """Base class of every error raised by `seals`."""


class SealInputError(SealError, ValueError):
    """Bad input: a wrong value, a malformed file. Safe to show to the user."""


class PictureError(SealInputError):
    pass


class MalformedSealError(SealInputError):
    pass


class DocumentError(SealInputError):
    pass


class SealSigningError(SealError):
    pass
