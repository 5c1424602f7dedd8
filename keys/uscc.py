"""Unified social credit code (统一社会信用代码), GB 32100-2015."""

from __future__ import annotations

from keys.errors import InvalidCodeError

__all__ = ["uscc_check_character", "validate_uscc"]

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
# GB 32100-2015 §4.2: weight of position i is 3^i mod 31.
WEIGHTS = [pow(3, i, 31) for i in range(17)]


def uscc_check_character(first17: str) -> str:
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    """Return `code` if it is a valid USCC, else raise InvalidCodeError saying what is wrong."""
    if not isinstance(code, str) or len(code) != 18:
        raise InvalidCodeError(f"统一社会信用代码应为18位，收到 {len(code) if isinstance(code, str) else 0} 位")
    bad = sorted({c for c in code if c not in ALPHABET})
    if bad:
        raise InvalidCodeError(
            f"统一社会信用代码含非法字符 {''.join(bad)}（仅允许数字和大写字母，不含 I O S V Z）"
        )
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        raise InvalidCodeError(f"统一社会信用代码校验位错误：应为 {expected}，实为 {code[17]}")
    return code
