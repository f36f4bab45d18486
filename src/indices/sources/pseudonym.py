"""NHS numbers: the Modulus 11 check, the keyed pseudonym that replaces them at the boundary,
and the scrubber that masks anything that looks like one in text from a raw file."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from nhs_number.constants import (
    REGION_EIRE,
    REGION_ENGLAND_WALES_IOM,
    REGION_NORTHERN_IRELAND,
    REGION_SCOTLAND,
    REGION_SYNTHETIC,
)

KEY_ENV = "INDICES_PSEUDONYM_KEY"
PSEUDONYM_HEX_DIGITS = 32  # of the HMAC-SHA256, as `person_id`
PSEUDONYM_PATTERN = f"[0-9a-f]{{{PSEUDONYM_HEX_DIGITS}}}"

# The ranges numbers are issued from (the nhs-number package's table): Scotland's CHI,
# Northern Ireland, England, Wales and the Isle of Man, Ireland's IHI; and 9xx, never issued
# to a patient but where test and synthetic patients are numbered (the demo extracts' range).
# Outside them (000-009, 3113-3199, 5xx, 86-89) a number passing Modulus 11 is no one's.
ISSUED_REGIONS = (
    REGION_SCOTLAND,
    REGION_NORTHERN_IRELAND,
    REGION_ENGLAND_WALES_IOM,
    REGION_EIRE,
    REGION_SYNTHETIC,
)
_TEN_DIGITS = re.compile(r"[0-9]{10}")  # ASCII only: str.isdigit is true for ² and ９


def is_valid_nhs_number(text: str) -> bool:
    """An NHS number after dropping spaces and hyphens: ten ASCII digits, not all the same, in an
    issued range (`ISSUED_REGIONS`), passing the Modulus 11 check of the NHS Data Dictionary:
    weights 10 to 2 on the first nine digits; check = 11 - (sum mod 11), where 11 means 0 and
    10 makes the number invalid. Other digits (full-width, Arabic-Indic) are not read as
    digits: such a number is invalid, not another person."""
    digits = text.replace(" ", "").replace("-", "")
    if not _TEN_DIGITS.fullmatch(digits) or len(set(digits)) == 1:
        return False
    if not any(region.contains_number(digits) for region in ISSUED_REGIONS):
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = (11 - total % 11) % 11
    return check != 10 and check == int(digits[9])


# The scrubber, for any text from a raw file that reaches a message, a log or the quarantine:
# ten or more decimal digits of any script, each pair optionally separated by any run of
# spaces, dots or dashes, is masked whole as `MASK`. One pattern, written for Python's `re`
# and for DuckDB's RE2 (which spells Unicode digits and spaces differently); a test checks that
# the two agree.
MASK = "nnnnnnnnnn"
_DOTS_AND_DASHES = ".\\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\uff0e"
_PYTHON_PATTERN = re.compile(rf"\d(?:[\s{_DOTS_AND_DASHES}]*\d){{9,}}")
_RE2_PATTERN = rf"\p{{Nd}}(?:[\s\p{{Z}}{_DOTS_AND_DASHES}]*\p{{Nd}}){{9,}}"


def mask_nhs_numbers(text: str) -> str:
    """The text with anything that could be an NHS number masked (see `MASK`)."""
    return _PYTHON_PATTERN.sub(MASK, text)


def mask_nhs_numbers_sql(expression: str) -> str:
    """DuckDB SQL for `mask_nhs_numbers` of a text expression."""
    pattern = "'" + _RE2_PATTERN.replace("'", "''") + "'"
    return f"regexp_replace({expression}, {pattern}, '{MASK}', 'g')"


def load_key(warehouse_dir: Path | str) -> bytes:
    """The pseudonym key: `INDICES_PSEUDONYM_KEY`, or a key file created once in the warehouse."""
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return from_env.encode()
    from indices.core import leftovers, storage, warehouse

    if storage.is_url(warehouse_dir):
        path = warehouse.pseudonym_key(warehouse_dir)
        if not storage.exists(path):
            # Two runs starting together must not each write a different key.
            with contextlib.suppress(FileExistsError):
                storage.write_text(path, secrets.token_hex(32), exclusive=True)
        return storage.read_text(path).strip().encode()
    path = Path(warehouse.pseudonym_key(warehouse_dir))
    if not path.exists():
        # Written whole and private beside, then linked into place, which fails if another run
        # got there first: two runs starting together never each use a different key, and none
        # reads a key file still being written.
        with storage.writing(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
            leftovers.sweep_beside(path)
            tmp = path.with_name(f".{path.name}.{leftovers.owner_tag()}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    return path.read_text().strip().encode()


def pseudonymise(key: bytes, nhs_numbers: Iterable[str]) -> list[str]:
    """HMAC-SHA256 of each normalised NHS number under the key, as 32 hex characters."""
    digest = hashlib.sha256
    return [
        hmac.new(key, n.encode(), digest).hexdigest()[:PSEUDONYM_HEX_DIGITS] for n in nhs_numbers
    ]
