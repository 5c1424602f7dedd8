"""Licence identifiers (证照标识, GB/T 36904) and holder codes (GB 11643 citizen ID numbers).

`1.2.156.3005.2.<type code>.<issuer code>.<serial>.<version>.<check>`, where the check character is
ISO/IEC 7064 MOD 37,36 (GB/T 17710) over type code + issuer code + serial + version.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from keys.errors import CheckCharacterError, InvalidCodeError
from keys.uscc import validate_uscc
from templates.spec import validate_type_code

__all__ = [
    "ID_CHECK",
    "ID_WEIGHTS",
    "ROOT",
    "LicenceIdentifier",
    "mask_holder_code",
    "validate_citizen_id",
    "validate_holder_code",
]

ROOT = "1.2.156.3005.2"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SERIAL = re.compile(r"^[0-9A-Z]{7,32}$")


def check_character(chars: str) -> str:
    """ISO/IEC 7064 MOD 37,36 (hybrid system, GB/T 17710) over digits and upper-case letters."""
    p = 36
    for char in chars:
        s = (p + ALPHABET.index(char)) % 36 or 36
        p = (2 * s) % 37
    return ALPHABET[(37 - p) % 36]


@dataclass(frozen=True)
class LicenceIdentifier:
    type_code: str
    issuer_code: str
    serial: str
    version: int

    def __post_init__(self) -> None:
        validate_type_code(self.type_code)
        if not (len(self.issuer_code) == 6 and self.issuer_code.isdigit()):
            validate_uscc(self.issuer_code)
        if not SERIAL.match(self.serial):
            raise InvalidCodeError(f"证照标识的顺序号应为7至32位数字或大写字母，收到 {self.serial!r}")
        if not 1 <= self.version <= 999:
            raise InvalidCodeError(f"证照标识的版本号应为001至999，收到 {self.version}")

    @property
    def check(self) -> str:
        return check_character(f"{self.type_code}{self.issuer_code}{self.serial}{self.version:03d}")

    def __str__(self) -> str:
        return f"{ROOT}.{self.type_code}.{self.issuer_code}.{self.serial}.{self.version:03d}.{self.check}"

    def next_version(self) -> LicenceIdentifier:
        """The identifier of the changed licence (变更): same serial, version + 1."""
        return LicenceIdentifier(self.type_code, self.issuer_code, self.serial, self.version + 1)

    @classmethod
    def parse(cls, text: str) -> LicenceIdentifier:
        """Parse and check an identifier; InvalidCodeError says exactly what is wrong."""
        if not isinstance(text, str) or not text.startswith(ROOT + "."):
            raise InvalidCodeError(f"证照标识应以 {ROOT}. 开头")
        parts = text[len(ROOT) + 1 :].split(".")
        if len(parts) != 5:
            raise InvalidCodeError("证照标识应为 1.2.156.3005.2.类型代码.颁证单位代码.顺序号.版本号.校验位")
        type_code, issuer, serial, version, check = parts
        if not (len(version) == 3 and version.isdigit()):
            raise InvalidCodeError(f"证照标识的版本号应为3位数字，收到 {version!r}")
        identifier = cls(type_code, issuer, serial, int(version))
        if check != identifier.check:
            # One vendor ships a different variant; only GB/T 17710 MOD 37,36 is accepted.
            raise CheckCharacterError(
                f"证照标识校验位错误：按 GB/T 17710（ISO/IEC 7064 MOD 37,36）应为 {identifier.check}，实为 {check!r}"
            )
        return identifier


ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def validate_citizen_id(number: str, today: dt.date | None = None) -> str:
    """A citizen ID number per GB 11643-1999: 17 digits, a real birth date, the check character."""
    if not isinstance(number, str) or len(number) != 18:
        raise InvalidCodeError(f"公民身份号码应为18位，收到 {len(number) if isinstance(number, str) else 0} 位")
    if not number[:17].isdigit() or not number[:17].isascii():
        raise InvalidCodeError("公民身份号码前17位应为数字")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidCodeError(f"公民身份号码中的出生日期 {number[6:14]} 不是有效日期") from None
    if not dt.date(1900, 1, 1) <= birth <= (today or dt.date.today()):
        raise InvalidCodeError(f"公民身份号码中的出生日期 {number[6:14]} 不在合理范围内")
    expected = ID_CHECK[sum(int(d) * w for d, w in zip(number[:17], ID_WEIGHTS, strict=True)) % 11]
    if number[17] != expected:
        raise InvalidCodeError(f"公民身份号码校验位错误：应为 {expected}，实为 {number[17]}")
    return number


def validate_holder_code(code_type: str, code: str) -> str:
    """Check a holder code by its GB/T 36903 code type: 111 citizen ID number, 001 USCC."""
    if code_type == "111":
        return validate_citizen_id(code)
    if code_type == "001":
        return validate_uscc(code)
    raise InvalidCodeError(f"不支持的持证主体代码类型 {code_type}")


def mask_holder_code(code: str) -> str:
    """Personal codes in logs and lists: first 6 and last 4 characters (110105********002X)."""
    if len(code) <= 10:
        return "*" * len(code)
    return code[:6] + "*" * (len(code) - 10) + code[-4:]
