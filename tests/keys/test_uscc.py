"""Unified social credit code, GB 32100-2015 (keys.uscc)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.errors import InvalidCodeError
from keys.uscc import ALPHABET, WEIGHTS, uscc_check_character, validate_uscc

VALID = ["91350100M000100Y43", "11100000000013338W", "11430000006122244L"]


def test_alphabet_and_weights_follow_the_standard() -> None:
    assert len(ALPHABET) == 31
    assert not set("IOSVZ") & set(ALPHABET)
    assert WEIGHTS == [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


@pytest.mark.parametrize("code", VALID)
def test_valid_examples(code: str) -> None:
    assert validate_uscc(code) == code
    assert uscc_check_character(code[:17]) == code[17]


@pytest.mark.parametrize("code", VALID)
def test_wrong_check_character(code: str) -> None:
    wrong = "0" if code[17] != "0" else "1"
    with pytest.raises(InvalidCodeError) as info:
        validate_uscc(code[:17] + wrong)
    message = str(info.value)
    assert f"应为 {code[17]}" in message
    assert f"实为 {wrong}" in message


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_forbidden_letters(letter: str) -> None:
    code = "91350100M000100Y4" + letter
    with pytest.raises(InvalidCodeError, match=letter):
        validate_uscc(code)
    with pytest.raises(InvalidCodeError, match=letter):
        validate_uscc(letter + "1350100M000100Y43")


@pytest.mark.parametrize(
    "code", ["91350100m000100y43", "91350100M000100Y4-", "91350100M000100Y4 ", "９1350100M000100Y43"]
)
def test_other_illegal_characters(code: str) -> None:
    with pytest.raises(InvalidCodeError):
        validate_uscc(code)


@pytest.mark.parametrize("code", ["", "9135010", "91350100M000100Y4", "91350100M000100Y433", "9" * 36])
def test_wrong_length(code: str) -> None:
    with pytest.raises(InvalidCodeError, match=str(len(code))):
        validate_uscc(code)


def test_not_a_string() -> None:
    with pytest.raises(InvalidCodeError):
        validate_uscc(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidCodeError):
        validate_uscc(913501001234567890)  # type: ignore[arg-type]


prefixes = st.text(alphabet=ALPHABET, min_size=17, max_size=17)


@settings(max_examples=300)
@given(prefix=prefixes)
def test_computed_check_character_validates(prefix: str) -> None:
    check = uscc_check_character(prefix)
    assert check in ALPHABET
    assert validate_uscc(prefix + check) == prefix + check


@settings(max_examples=300)
@given(prefix=prefixes, data=st.data())
def test_any_other_check_character_fails(prefix: str, data: st.DataObject) -> None:
    check = uscc_check_character(prefix)
    other = data.draw(st.sampled_from([c for c in ALPHABET if c != check]))
    with pytest.raises(InvalidCodeError, match="校验位"):
        validate_uscc(prefix + other)


@settings(max_examples=200)
@given(prefix=prefixes, data=st.data())
def test_single_substitution_in_body_detected(prefix: str, data: st.DataObject) -> None:
    """Weights 3^i mod 31 are non-zero mod 31 (prime), so any single-character change is caught."""
    code = prefix + uscc_check_character(prefix)
    position = data.draw(st.integers(0, 16))
    other = data.draw(st.sampled_from([c for c in ALPHABET if c != code[position]]))
    with pytest.raises(InvalidCodeError):
        validate_uscc(code[:position] + other + code[position + 1 :])
