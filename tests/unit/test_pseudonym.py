"""NHS number validation (Modulus 11) and the keyed pseudonym."""

from __future__ import annotations

import random
import stat

import nhs_number

from indices.sources.pseudonym import KEY_ENV, is_valid_nhs_number, load_key, pseudonymise

# Every region the nhs-number package knows but the unallocated and the reserved ranges.
ISSUED = [r for name, r in nhs_number.REGIONS.items() if name not in ("UNALLOCATED", "RESERVED")]


def reference_valid(number: str) -> bool:
    """The published check, by the nhs-number package's checksum and ranges (its own `is_valid`
    also applies Scottish CHI date rules, which the spec does not), and not one digit repeated."""
    return (
        number.isdigit()
        and len(number) == 10
        and len(set(number)) > 1
        and any(region.contains_number(number) for region in ISSUED)
        and (nhs_number.calculate_checksum(number[:9]) == int(number[9]))
    )


def test_the_check_digit_agrees_with_the_published_one():
    generator = random.Random(7)
    numbers = ["".join(generator.choice("0123456789") for _ in range(10)) for _ in range(5000)]
    numbers += ["9434765919", "943476591", "94347659199", "943476591X", "", "1111111111"]
    expected = {x: reference_valid(x) for x in numbers}
    assert {x: is_valid_nhs_number(x) for x in numbers} == expected
    # about 1 in 11 random numbers passes Modulus 11, and five in six of those are in a range
    assert sum(expected.values()) > 300


def test_spaces_and_hyphens_are_allowed():
    assert is_valid_nhs_number("943 476 5919") and is_valid_nhs_number("943-476-5919")
    assert not is_valid_nhs_number("943 476 5918")


def test_the_key_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "secret")
    assert load_key(tmp_path) == b"secret"
    assert not (tmp_path / "pseudonym.key").exists()


def test_a_local_key_file_is_made_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    first = load_key(tmp_path)
    assert load_key(tmp_path) == first and len(first) == 64
    assert stat.S_IMODE((tmp_path / "pseudonym.key").stat().st_mode) == 0o600


def test_pseudonyms_are_keyed_and_stable():
    one = pseudonymise(b"k1", ["9434765919", "4010232137"])
    assert one == pseudonymise(b"k1", ["9434765919", "4010232137"])
    assert one != pseudonymise(b"k2", ["9434765919", "4010232137"])
    assert all(len(p) == 32 and "9434765919" not in p for p in one)
