"""GB/T 36904 identifiers, GB 11643 citizen ID numbers and masking."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.errors import InvalidCodeError
from templates.identifier import (
    ALPHABET,
    LicenceIdentifier,
    check_character,
    mask_holder_code,
    validate_citizen_id,
    validate_holder_code,
)

REAL = "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U"  # SPEC.md
TYPE, ISSUER = "11100000000013338W011", "11430000006122244L"
serials = st.text(alphabet=ALPHABET, min_size=7, max_size=32)


def test_real_identifier_validates() -> None:
    identifier = LicenceIdentifier.parse(REAL)
    assert (identifier.type_code, identifier.issuer_code, identifier.serial, identifier.version) == (
        TYPE,
        ISSUER,
        "20230000403",
        1,
    )
    assert str(identifier) == REAL


def test_next_version_keeps_the_serial() -> None:
    changed = LicenceIdentifier.parse(REAL).next_version()
    assert str(changed).startswith(REAL[: REAL.rindex(".001.")] + ".002.")
    assert LicenceIdentifier.parse(str(changed)).version == 2


@given(serial=serials, version=st.integers(1, 999))
def test_format_parse_round_trip(serial: str, version: int) -> None:
    identifier = LicenceIdentifier(TYPE, ISSUER, serial, version)
    assert LicenceIdentifier.parse(str(identifier)) == identifier


@given(serial=serials, position=st.integers(0, 31), replacement=st.sampled_from(ALPHABET))
def test_any_single_substitution_is_caught(serial: str, position: int, replacement: str) -> None:
    """MOD 37,36 detects every single-character error (ISO/IEC 7064)."""
    chars = TYPE + ISSUER + serial + "001"
    position %= len(chars)
    if chars[position] == replacement:
        return
    changed = chars[:position] + replacement + chars[position + 1 :]
    assert check_character(changed) != check_character(chars)


@given(serial=serials, position=st.integers(0, 31))
def test_adjacent_transpositions_are_caught(serial: str, position: int) -> None:
    chars = TYPE + ISSUER + serial + "001"
    position %= len(chars) - 1
    if chars[position] == chars[position + 1]:
        return
    swapped = chars[:position] + chars[position + 1] + chars[position] + chars[position + 2 :]
    assert check_character(swapped) != check_character(chars)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (REAL[:-1] + "V", "校验位错误：按 GB/T 17710"),
        (REAL.replace("1.2.156.3005.2", "1.2.156.3005.3"), "开头"),
        (REAL.replace(".001.", ".01."), "版本号应为3位"),
        (REAL.replace(".20230000403.", ".2023-403."), "顺序号"),
        (REAL.replace("13338W011", "13338X011"), "校验位"),
        (REAL.rsplit(".", 1)[0], "应为 1.2.156.3005.2.类型代码"),
    ],
)
def test_malformed_identifiers_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidCodeError, match=message):
        LicenceIdentifier.parse(text)


def test_area_code_as_issuer() -> None:
    identifier = LicenceIdentifier(TYPE, "350100", "ABC1234", 1)
    assert LicenceIdentifier.parse(str(identifier)).issuer_code == "350100"


def test_citizen_id() -> None:
    assert validate_citizen_id("11010519491231002X") == "11010519491231002X"
    for number, message in [
        ("110105194912310021", "校验位错误：应为 X"),
        ("11010519490230002X", "不是有效日期"),
        ("1101051949123100", "18位"),
        ("11010518891231002X", "合理范围"),
        ("1101051949123100AX", "前17位应为数字"),
    ]:
        with pytest.raises(InvalidCodeError, match=message):
            validate_citizen_id(number, today=dt.date(2026, 11, 22))


def test_holder_code_by_type() -> None:
    assert validate_holder_code("001", "91350100M000100Y43")
    with pytest.raises(InvalidCodeError):
        validate_holder_code("001", "11010519491231002X")
    with pytest.raises(InvalidCodeError, match="不支持"):
        validate_holder_code("414", "E12345678")


def test_masking() -> None:
    assert mask_holder_code("11010519491231002X") == "110105********002X"
    assert mask_holder_code("91350100M000100Y43") == "913501********0Y43"
    assert mask_holder_code("12345") == "*****"
