"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import DateTime, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Always aware UTC in Python; SQLite keeps no zone, so we restore it on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; ask the Clock for aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_ENCRYPTED_PREFIX = "enc:v1:"


class _Cipher:
    """Holds the key for free text at rest; set once at start from IOPBOT_DATA_KEY."""

    fernet: Fernet | None = None


def configure_encryption(key: str) -> None:
    """Use `key` (any passphrase, or a Fernet key) to encrypt free text at rest; '' turns it off."""
    if not key:
        _Cipher.fernet = None
        return
    digest = hashlib.sha256(key.encode()).digest()
    _Cipher.fernet = Fernet(base64.urlsafe_b64encode(digest))


class EncryptedText(TypeDecorator[str]):
    """Free text a participant wrote: encrypted at rest when a data key is configured.

    Rows written before a key was set stay readable; a row encrypted with another key reads as a
    marker instead of crashing a clinician's view.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or _Cipher.fernet is None:
            return value
        return _ENCRYPTED_PREFIX + _Cipher.fernet.encrypt(value.encode()).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not value.startswith(_ENCRYPTED_PREFIX):
            return value
        if _Cipher.fernet is None:
            return "[encrypted: set IOPBOT_DATA_KEY to read]"
        try:
            return _Cipher.fernet.decrypt(value[len(_ENCRYPTED_PREFIX):].encode()).decode()
        except InvalidToken:
            return "[encrypted with another key]"

    def copy(self, **kw: Any) -> EncryptedText:
        return EncryptedText()
