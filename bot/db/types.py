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


# Free text at rest: "enc:v2:<key fingerprint>:<Fernet token>". The fingerprint names the key (never
# reveals it), so the bot can tell "encrypted with another key" from "damaged", and a key rotation
# can resume where it stopped. "enc:v1:<token>" (no fingerprint) is what earlier versions wrote.
ENCRYPTED_PREFIX = "enc:"
_V1 = "enc:v1:"
_V2 = "enc:v2:"
FINGERPRINT_CHARS = 16


class EncryptionKeyMissing(RuntimeError):
    """Text would be written in the clear although this database keeps it encrypted."""


def fernet_key(key: str) -> bytes:
    """The Fernet key for a passphrase (any text; a long random one, see README)."""
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())


def fingerprint(key: str) -> str:
    """A short name for a key that does not reveal it: stored in the database and on every value."""
    return hashlib.sha256(b"iopbot data key fingerprint\0" + fernet_key(key)).hexdigest()[:FINGERPRINT_CHARS]


def encrypt_value(fernet: Fernet, key_fingerprint: str, text: str) -> str:
    return f"{_V2}{key_fingerprint}:{fernet.encrypt(text.encode()).decode()}"


def value_fingerprint(raw: str) -> str | None:
    """The fingerprint on a stored value; "" for the old format (unknown key); None if plain text."""
    if raw.startswith(_V2):
        return raw[len(_V2):len(_V2) + FINGERPRINT_CHARS]
    return "" if raw.startswith(_V1) else None


def decrypt_value(fernet: Fernet, raw: str) -> str:
    """The text of a stored value (plain text is returned as it is). Raises InvalidToken."""
    if raw.startswith(_V2):
        return fernet.decrypt(raw[len(_V2) + FINGERPRINT_CHARS + 1:].encode()).decode()
    if raw.startswith(_V1):
        return fernet.decrypt(raw[len(_V1):].encode()).decode()
    return raw


class _Cipher:
    """Holds the key for free text at rest; set once at start from IOPBOT_DATA_KEY."""

    fernet: Fernet | None = None
    fingerprint: str = ""
    # The database says its text is encrypted: writing text without a key is refused, never plain.
    required: bool = False


def configure_encryption(key: str, *, required: bool = False) -> None:
    """Use `key` (any passphrase) to encrypt free text at rest; '' turns it off. `required`: this
    database keeps its text encrypted, so writing text without a key raises EncryptionKeyMissing."""
    _Cipher.required = required
    if not key:
        _Cipher.fernet, _Cipher.fingerprint = None, ""
        return
    _Cipher.fernet, _Cipher.fingerprint = Fernet(fernet_key(key)), fingerprint(key)


def configured_fingerprint() -> str:
    return _Cipher.fingerprint


class EncryptedText(TypeDecorator[str]):
    """Free text a participant wrote: encrypted at rest when a data key is configured.

    Rows written before a key was set stay readable; a row encrypted with another key reads as a
    marker instead of crashing a clinician's view (the bot refuses to start with the wrong key, so
    this is for a row a key rotation has not reached).
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if _Cipher.fernet is None:
            if _Cipher.required:
                raise EncryptionKeyMissing("this database keeps free text encrypted, but IOPBOT_DATA_KEY is not set")
            return value
        return encrypt_value(_Cipher.fernet, _Cipher.fingerprint, value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not value.startswith(ENCRYPTED_PREFIX):
            return value
        if _Cipher.fernet is None:
            return "[encrypted: set IOPBOT_DATA_KEY to read]"
        marked = value_fingerprint(value)
        if marked and marked != _Cipher.fingerprint:
            return "[encrypted with another key]"
        try:
            return decrypt_value(_Cipher.fernet, value)
        except InvalidToken:
            return "[encrypted with another key]"

    def copy(self, **kw: Any) -> EncryptedText:
        return EncryptedText()
