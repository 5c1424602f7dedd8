"""Minimal cffi (ABI mode) binding to the system OpenSSL libcrypto for SM2.

Why: `cryptography` has no SM2, and measured in the same run (see README, `ecas bench crypto`)
OpenSSL's SM2 signs ~30x faster than pure-Python gmssl and faster than tongsuopy and the GmSSL
wrappers. ABI mode needs no compiler: libcrypto.so.3 ships with every Debian/Ubuntu system.
Only this module and `keys.sm2` touch it.
"""

from __future__ import annotations

import ctypes.util
from typing import Any

from cffi import FFI

ffi = FFI()
ffi.cdef(
    """
    typedef struct evp_pkey_st EVP_PKEY;
    typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;

    EVP_PKEY *d2i_AutoPrivateKey(EVP_PKEY **a, const unsigned char **pp, long length);
    EVP_PKEY *d2i_PUBKEY(EVP_PKEY **a, const unsigned char **pp, long length);
    int i2d_PUBKEY(const EVP_PKEY *a, unsigned char **pp);
    int EVP_PKEY_is_a(const EVP_PKEY *pkey, const char *name);
    void EVP_PKEY_free(EVP_PKEY *pkey);

    EVP_PKEY_CTX *EVP_PKEY_CTX_new(EVP_PKEY *pkey, void *engine);
    void EVP_PKEY_CTX_free(EVP_PKEY_CTX *ctx);
    int EVP_PKEY_sign_init(EVP_PKEY_CTX *ctx);
    int EVP_PKEY_sign(EVP_PKEY_CTX *ctx, unsigned char *sig, size_t *siglen,
                      const unsigned char *tbs, size_t tbslen);
    int EVP_PKEY_verify_init(EVP_PKEY_CTX *ctx);
    int EVP_PKEY_verify(EVP_PKEY_CTX *ctx, const unsigned char *sig, size_t siglen,
                        const unsigned char *tbs, size_t tbslen);

    unsigned long ERR_get_error(void);
    void ERR_clear_error(void);
    void ERR_error_string_n(unsigned long e, char *buf, size_t len);
    unsigned long OpenSSL_version_num(void);
    const char *OpenSSL_version(int t);
    """
)


def _load() -> Any:
    names = [ctypes.util.find_library("crypto"), "libcrypto.so.3"]
    errors = []
    for name in filter(None, names):
        try:
            return ffi.dlopen(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    raise ImportError(
        "OpenSSL 3 libcrypto not found (install the system package libssl3): " + "; ".join(errors)
    )


lib: Any = _load()


def version() -> str:
    """The libcrypto version string, e.g. 'OpenSSL 3.0.19 27 Jan 2026'."""
    return str(ffi.string(lib.OpenSSL_version(0)).decode())


if lib.OpenSSL_version_num() < 0x30000000:
    raise ImportError("OpenSSL 3.0 or newer is required for SM2, found " + version())


def last_error() -> str:
    """Drain OpenSSL's error queue into one readable string."""
    messages = []
    buf = ffi.new("char[256]")
    while code := lib.ERR_get_error():
        lib.ERR_error_string_n(code, buf, 256)
        messages.append(ffi.string(buf).decode(errors="replace"))
    return "; ".join(messages) or "unknown OpenSSL error"
