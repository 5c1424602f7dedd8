"""SM2 digital signatures (GB/T 32918.2) with SM3 (GB/T 32905) on OpenSSL's libcrypto.

Signing always hashes `e = SM3(Z || M)` where Z binds the signer's ID and public key
(GB/T 32918.2 §5.5); signatures are DER `SEQUENCE { r, s }` (GM/T 0009). We compute Z in Python
(it is cached per key and ID) and hand OpenSSL the 32-byte `e`: that way the same code serves
one-shot signing and staged/batch signing, where `e` is computed first and signed later.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cached_property
from typing import cast

from asn1crypto import algos, keys, pem
from cryptography.hazmat.primitives import hashes

from keys._openssl import ffi, last_error, lib, version
from keys.armor import der_from
from keys.errors import ASN1_DECODE_ERRORS, InvalidKeyError
from keys.oids import SM2_CURVE, SM2_CURVE_NAME

__all__ = ["SIGNATURE_MAX_DER", "SM2PrivateKey", "SM2PublicKey", "backend_version", "raw_to_der", "sm3"]

# The recommended curve parameters (GB/T 32918.5).
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

DEFAULT_ID = b"1234567812345678"
SIGNATURE_MAX_DER = 72


def sm3(data: bytes) -> bytes:
    """SM3 digest (GB/T 32905)."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _int32(value: int) -> bytes:
    return value.to_bytes(32, "big")


def der_to_raw(signature: bytes) -> bytes:
    """DER `SEQUENCE { r, s }` → 64-byte r||s (the form some systems exchange)."""
    try:
        parsed = algos.DSASignature.load(signature, strict=True)
        r, s = parsed["r"].native, parsed["s"].native
    except ASN1_DECODE_ERRORS as exc:
        raise ValueError(f"not a DER SM2 signature: {exc}") from exc
    if not (0 < r < N and 0 < s < N):
        raise ValueError("SM2 signature r or s out of range")
    return _int32(r) + _int32(s)


def raw_to_der(raw: bytes) -> bytes:
    """64-byte r||s → DER `SEQUENCE { r, s }`."""
    if len(raw) != 64:
        raise ValueError(f"a raw SM2 signature is 64 bytes (r||s), got {len(raw)}")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    return cast(bytes, algos.DSASignature({"r": r, "s": s}).dump())  # asn1crypto is untyped


def _evp_from_der(der: bytes, *, private: bool) -> object:
    buf = ffi.new("unsigned char[]", der)
    ptr = ffi.new("const unsigned char **", buf)
    loader = lib.d2i_AutoPrivateKey if private else lib.d2i_PUBKEY
    pkey = loader(ffi.NULL, ptr, len(der))
    if pkey == ffi.NULL:
        raise InvalidKeyError(f"OpenSSL rejected the SM2 key: {last_error()}")
    pkey = ffi.gc(pkey, lib.EVP_PKEY_free)
    if lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:
        raise InvalidKeyError("OpenSSL did not load the key as an SM2 key")
    return pkey


def _check_sm2_algorithm(algorithm: keys.PublicKeyAlgorithm | keys.PrivateKeyAlgorithm) -> None:
    name = algorithm["algorithm"].native
    if name != "ec":
        raise InvalidKeyError(f"expected an SM2 key, got an {name.upper()} key")
    params = algorithm["parameters"]
    curve = params.chosen.dotted if params.name == "named" else "explicit parameters"
    if curve != SM2_CURVE:
        known = params.chosen.native if params.name == "named" else curve
        raise InvalidKeyError(f"expected an SM2 key (curve {SM2_CURVE}), got an EC key on {known}")


class SM2PublicKey:
    """An SM2 public key: a point on the SM2 curve, validated by OpenSSL when built."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y
        self._z_cache: dict[bytes, bytes] = {}
        # OpenSSL checks the point is on the curve.
        self._evp = _evp_from_der(self.to_der(), private=False)

    @classmethod
    def from_point(cls, point: bytes) -> SM2PublicKey:
        """From an uncompressed point `04||x||y` (65 bytes) or raw `x||y` (64 bytes)."""
        if len(point) == 64:
            point = b"\x04" + point
        if len(point) != 65 or point[0] != 4:
            raise InvalidKeyError("an SM2 public key point is 04||x||y (65 bytes) or x||y (64 bytes)")
        return cls(int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"))

    @classmethod
    def from_der(cls, data: bytes) -> SM2PublicKey:
        """From DER or PEM SubjectPublicKeyInfo (id-ecPublicKey with the SM2 curve)."""
        der = der_from(data, ("PUBLIC KEY",), InvalidKeyError)
        try:
            info = keys.PublicKeyInfo.load(der, strict=True)
            _check_sm2_algorithm(info["algorithm"])
            point = info["public_key"].native
        except ASN1_DECODE_ERRORS as exc:
            raise InvalidKeyError(f"malformed SubjectPublicKeyInfo: {exc}") from exc
        if isinstance(point, tuple):  # asn1crypto may decode the point as (x, y)
            return cls(*point)
        if len(point) == 33 and point[0] in (2, 3):
            # Compressed point (SEC 1 §2.3.4). OpenSSL re-encodes a key in the form it was read,
            # so decompress here: p ≡ 3 (mod 4), y = rhs^((p+1)/4). The constructor validates.
            x = int.from_bytes(point[1:], "big")
            rhs = (pow(x, 3, P) + A * x + B) % P
            y = pow(rhs, (P + 1) // 4, P)
            if x >= P or y * y % P != rhs:
                raise InvalidKeyError("compressed SM2 point is not on the curve")
            return cls(x, y if y % 2 == point[0] % 2 else P - y)
        return cls.from_point(point)

    from_pem = from_der

    def to_point(self) -> bytes:
        return b"\x04" + _int32(self.x) + _int32(self.y)

    def to_der(self) -> bytes:
        info = keys.PublicKeyInfo(
            {
                "algorithm": {"algorithm": "ec", "parameters": ("named", SM2_CURVE_NAME)},
                "public_key": self.to_point(),
            }
        )
        return cast(bytes, info.dump())  # asn1crypto is untyped

    def to_pem(self) -> bytes:
        return cast(bytes, pem.armor("PUBLIC KEY", self.to_der()))  # asn1crypto is untyped

    @cached_property
    def key_identifier(self) -> bytes:
        """SHA-1 of the public key bit string (RFC 5280 §4.2.1.2 method 1): SKI/AKI and OCSP."""
        return hashlib.sha1(self.to_point(), usedforsecurity=False).digest()

    def z(self, signer_id: bytes = DEFAULT_ID) -> bytes:
        """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA), GB/T 32918.2 §5.5."""
        cached = self._z_cache.get(signer_id)
        if cached is None:
            bits = len(signer_id) * 8
            if bits > 0xFFFF:
                raise ValueError("SM2 signer ID longer than 8191 bytes")
            cached = sm3(
                bits.to_bytes(2, "big")
                + signer_id
                + b"".join(_int32(v) for v in (A, B, GX, GY, self.x, self.y))
            )
            self._z_cache[signer_id] = cached
        return cached

    def digest(self, message: bytes, signer_id: bytes = DEFAULT_ID) -> bytes:
        """e = SM3(Z || M): what is actually signed."""
        return sm3(self.z(signer_id) + message)

    def verify(self, signature: bytes, message: bytes, signer_id: bytes = DEFAULT_ID) -> bool:
        """True when `signature` (DER) is a valid SM2 signature of `message` by this key."""
        return self.verify_digest(signature, self.digest(message, signer_id))

    def verify_digest(self, signature: bytes, e: bytes) -> bool:
        """True when `signature` (DER) signs the precomputed `e = SM3(Z || M)`."""
        if len(e) != 32 or not signature or len(signature) > SIGNATURE_MAX_DER:
            return False
        ctx = lib.EVP_PKEY_CTX_new(self._evp, ffi.NULL)
        try:
            ok: bool = lib.EVP_PKEY_verify_init(ctx) == 1 and (  # lib: cffi ABI mode, untyped
                lib.EVP_PKEY_verify(ctx, signature, len(signature), e, 32) == 1
            )
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
            lib.ERR_clear_error()
        return ok

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))

    def __repr__(self) -> str:
        return f"SM2PublicKey({self.to_point()[1:9].hex()}…)"


def _spki_from_evp(evp: object) -> bytes:
    size = lib.i2d_PUBKEY(evp, ffi.NULL)
    out = ffi.new("unsigned char[]", size)
    lib.i2d_PUBKEY(evp, ffi.new("unsigned char **", out))
    return bytes(ffi.buffer(out, size))


class SM2PrivateKey:
    """An SM2 private key. Only `keys` handles these: other packages get a `Signer`.

    The scalar is kept out of repr() and str(); `pkcs8_der()` is for the key store alone.
    """

    __slots__ = ("_d", "_evp", "public_key")

    def __init__(self, d: int) -> None:
        # GB/T 32918.1 §6.1: d ∈ [1, n-2]
        if not 1 <= d <= N - 2:
            raise InvalidKeyError("SM2 private key out of range [1, n-2]")
        self._d = d
        self._evp = _evp_from_der(self._pkcs8(with_public=None), private=True)
        # OpenSSL derives the public point from d.
        self.public_key = SM2PublicKey.from_der(_spki_from_evp(self._evp))

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        return cls(secrets.randbelow(N - 2) + 1)

    @classmethod
    def from_pkcs8_der(cls, data: bytes) -> SM2PrivateKey:
        """From unencrypted PKCS#8 (DER or PEM 'PRIVATE KEY'). See `keys.pkcs8` for encrypted."""
        der = der_from(data, ("PRIVATE KEY",), InvalidKeyError)
        try:
            info = keys.PrivateKeyInfo.load(der, strict=True)
            _check_sm2_algorithm(info["private_key_algorithm"])
            ec_key = info["private_key"].parsed
            ec_key.native  # noqa: B018  (parse every part now)
            # asn1crypto keeps unknown elements as extra children instead of failing; one could
            # hide the public key below (a garbled [1] tag) and so skip the consistency check.
            if len(ec_key.children) > len(keys.ECPrivateKey._fields):
                raise InvalidKeyError("malformed ECPrivateKey: unexpected element")
            d = ec_key["private_key"].native
            stored_point = ec_key["public_key"].native  # None only when absent (RFC 5915: optional)
        except ASN1_DECODE_ERRORS as exc:
            raise InvalidKeyError(f"malformed PKCS#8 private key: {exc}") from exc
        key = cls(d)
        # Also when present but empty or malformed: the check must not be skippable.
        if stored_point is not None and stored_point != key.public_key.to_point():
            raise InvalidKeyError("PKCS#8 public key does not match its private key")
        return key

    def _pkcs8(self, with_public: SM2PublicKey | None) -> bytes:
        ec_key = keys.ECPrivateKey({"version": "ecPrivkeyVer1", "private_key": self._d})
        ec_key["private_key"].set_encoded_width(32)  # RFC 5915: fixed-width scalar
        if with_public is not None:
            ec_key["public_key"] = with_public.to_point()
        info = keys.PrivateKeyInfo(
            {
                "version": 0,
                "private_key_algorithm": {
                    "algorithm": "ec",
                    "parameters": ("named", SM2_CURVE_NAME),
                },
                "private_key": ec_key,
            }
        )
        return cast(bytes, info.dump())  # asn1crypto is untyped

    def pkcs8_der(self) -> bytes:
        """Plain PKCS#8 DER of this key. Only for encrypting it at rest (`keys.pkcs8`)."""
        return self._pkcs8(with_public=self.public_key)

    def sign(self, message: bytes, signer_id: bytes = DEFAULT_ID) -> bytes:
        """DER SM2 signature of `message` (hashes SM3(Z || M) first)."""
        return self.sign_digest(self.public_key.digest(message, signer_id))

    def sign_digest(self, e: bytes) -> bytes:
        """DER SM2 signature of a precomputed `e = SM3(Z || M)` (32 bytes)."""
        if len(e) != 32:
            raise ValueError("an SM2 digest e = SM3(Z || M) is 32 bytes")
        ctx = lib.EVP_PKEY_CTX_new(self._evp, ffi.NULL)
        sig = ffi.new(f"unsigned char[{SIGNATURE_MAX_DER}]")
        size = ffi.new("size_t *", SIGNATURE_MAX_DER)
        try:
            if lib.EVP_PKEY_sign_init(ctx) != 1 or lib.EVP_PKEY_sign(ctx, sig, size, e, 32) != 1:
                raise RuntimeError(f"SM2 signing failed in OpenSSL: {last_error()}")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        return bytes(ffi.buffer(sig, size[0]))

    def __repr__(self) -> str:
        return f"SM2PrivateKey(public={self.public_key!r})"

    def __reduce__(self) -> str:
        raise TypeError("SM2 private keys are not picklable; pass a key store label instead")


def backend_version() -> str:
    """The libcrypto these signatures run on, e.g. 'OpenSSL 3.0.19 27 Jan 2026' (for reports)."""
    return version()
