"""AES-GCM sealing of patient-context values, with a keyring that allows key rotation.

Keys come only from the environment (``CAREPULSE_CONTEXT_KEYS``, a comma-separated list of
``kid:base64key``). The first key seals new values; every key listed can open old ones, so a
rotation is "prepend the new key, let the old values expire or be rewritten, drop the old key".

A sealed value is the text ``v1:<kid>:<base64(nonce | ciphertext+tag)>``. The caller passes
associated data that names where the value lives (Redis key and field), so a sealed value
copied to another patient or field fails to open instead of being read as theirs.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
NONCE_BYTES = 12  # 96-bit random nonce: the size GCM is specified for
_TAG_BYTES = 16
_KID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_TOKEN = re.compile(rf"{VERSION}:([A-Za-z0-9_.-]{{1,32}}):([A-Za-z0-9+/=_-]+)")


class ContextCryptoError(Exception):
    """A stored value cannot be opened. Not a ValueError on purpose: the record being
    processed is not at fault (the keys or the store are), so it must not be dead-lettered."""


class UnknownKeyError(ContextCryptoError):
    """The value was sealed with a key id this keyring does not hold (or no keyring at all)."""


class AuthenticationError(ContextCryptoError):
    """The value fails authentication: tampered, truncated, or moved to another key/field."""


class KeyringConfigError(ValueError):
    """``CAREPULSE_CONTEXT_KEYS`` is malformed. Messages never include key material."""


def _b64decode(text: str) -> bytes:
    # Accept both the standard and the URL-safe alphabet: keys get pasted from either.
    return base64.b64decode(text.translate(str.maketrans("-_", "+/")), validate=True)


@dataclass(frozen=True)
class Keyring:
    """Ordered AES keys by id: the first seals, all open."""

    kids: tuple[str, ...]
    _ciphers: dict[str, AESGCM] = field(repr=False, compare=False)

    @property
    def current(self) -> str:
        return self.kids[0]

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Build from ``kid:base64key[,kid:base64key…]`` (16, 24 or 32-byte keys; 32 recommended)."""
        kids: list[str] = []
        ciphers: dict[str, AESGCM] = {}
        for n, entry in enumerate((e.strip() for e in spec.split(",")), start=1):
            if not entry:
                continue
            kid, sep, b64 = entry.partition(":")
            kid = kid.strip()
            if not sep or not _KID.fullmatch(kid):
                raise KeyringConfigError(f"context key entry {n}: expected 'kid:base64key' with kid [A-Za-z0-9_.-]")
            if kid in ciphers:
                raise KeyringConfigError(f"context key id {kid!r} listed twice")
            try:
                key = _b64decode(b64.strip())
            except (binascii.Error, ValueError):
                raise KeyringConfigError(f"context key {kid!r}: not valid base64") from None
            if len(key) not in (16, 24, 32):
                raise KeyringConfigError(f"context key {kid!r}: {len(key)} bytes, expected 16, 24 or 32")
            kids.append(kid)
            ciphers[kid] = AESGCM(key)
        if not kids:
            raise KeyringConfigError("no context key given")
        return cls(tuple(kids), ciphers)


def new_key_entry(kid: str) -> str:
    """A fresh ``kid:base64key`` entry with a random 256-bit key (for operators rotating keys)."""
    if not _KID.fullmatch(kid):
        raise KeyringConfigError("key id must match [A-Za-z0-9_.-]{1,32}")
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def is_sealed(text: str) -> bool:
    """Whether ``text`` has the shape of a sealed value (used to refuse reading one as plaintext)."""
    return _TOKEN.fullmatch(text) is not None


def seal(keyring: Keyring, plaintext: bytes, aad: bytes) -> str:
    """Encrypt with the current key and a random nonce; ``aad`` is authenticated, not stored."""
    nonce = os.urandom(NONCE_BYTES)
    ct = keyring._ciphers[keyring.current].encrypt(nonce, plaintext, aad)
    return f"{VERSION}:{keyring.current}:{base64.b64encode(nonce + ct).decode()}"


def open_sealed(keyring: Keyring | None, token: str, aad: bytes) -> bytes:
    """Decrypt a value made by :func:`seal` with the same ``aad``; raise a ContextCryptoError otherwise."""
    m = _TOKEN.fullmatch(token)
    if m is None:
        raise AuthenticationError("not a sealed context value")
    kid, b64 = m.groups()
    cipher = keyring._ciphers.get(kid) if keyring is not None else None
    if cipher is None:
        held = "no context key configured" if keyring is None else f"keys held: {', '.join(keyring.kids)}"
        raise UnknownKeyError(f"context value sealed with key {kid!r}; {held}")
    try:
        blob = _b64decode(b64)
    except (binascii.Error, ValueError):
        raise AuthenticationError(f"context value under key {kid!r} is not valid base64") from None
    if len(blob) < NONCE_BYTES + _TAG_BYTES:
        raise AuthenticationError(f"context value under key {kid!r} is truncated")
    try:
        return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise AuthenticationError(f"context value under key {kid!r} failed authentication") from None
