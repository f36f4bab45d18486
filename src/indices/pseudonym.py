"""NHS numbers: the Modulus 11 check, and the keyed pseudonym that replaces them at the boundary."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

KEY_ENV = "INDICES_PSEUDONYM_KEY"
KEY_FILE = "pseudonym.key"


def is_valid_nhs_number(text: str) -> bool:
    """The Modulus 11 check of the NHS Data Dictionary: weights 10 to 2 on the first nine
    digits; check = 11 - (sum mod 11), where 11 means 0 and 10 makes the number invalid.
    Spaces and hyphens are allowed."""
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = (11 - total % 11) % 11
    return check != 10 and check == int(digits[9])


def load_key(warehouse_dir: Path | str) -> bytes:
    """The pseudonym key: `INDICES_PSEUDONYM_KEY`, or a key file created once in the warehouse."""
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return from_env.encode()
    from indices import leftovers, storage

    if storage.is_url(warehouse_dir):
        path = storage.join(warehouse_dir, KEY_FILE)
        if not storage.exists(path):
            # Two runs starting together must not each write a different key.
            with contextlib.suppress(FileExistsError):
                storage.write_text(path, secrets.token_hex(32), exclusive=True)
        return storage.read_text(path).strip().encode()
    path = Path(warehouse_dir) / KEY_FILE
    if not path.exists():
        # Written whole and private beside, then linked into place, which fails if another run
        # got there first: two runs starting together never each use a different key, and none
        # reads a key file still being written.
        with storage.writing(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
            leftovers.sweep_beside(path)
            tmp = path.with_name(f".{KEY_FILE}.{leftovers.owner_tag()}.tmp")
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
    return [hmac.new(key, n.encode(), hashlib.sha256).hexdigest()[:32] for n in nhs_numbers]
