"""AES-GCM sealing of patient-context values: roundtrip, tampering, binding, unknown keys, rotation."""

from __future__ import annotations

import base64

import pytest

from carepulse.shared.context_crypto import (
    AuthenticationError,
    ContextCryptoError,
    Keyring,
    KeyringConfigError,
    UnknownKeyError,
    is_sealed,
    new_key_entry,
    open_sealed,
    seal,
)

AAD = b"carepulse:patient:p1:vitals\0temp"
PLAIN = b'{"value": 37.2, "unit": "Cel"}'


def test_roundtrip_hides_the_plaintext_and_uses_a_fresh_nonce() -> None:
    ring = Keyring.parse(new_key_entry("k1"))
    a, b = seal(ring, PLAIN, AAD), seal(ring, PLAIN, AAD)
    assert a.startswith("v1:k1:") and is_sealed(a)
    assert a != b  # random nonce: equal values do not give equal ciphertexts
    assert b"37.2" not in base64.b64decode(a.split(":")[2])
    assert open_sealed(ring, a, AAD) == PLAIN and open_sealed(ring, b, AAD) == PLAIN


@pytest.mark.parametrize("where", [0, 12, -1])  # nonce, ciphertext, tag
def test_any_flipped_byte_fails_authentication(where: int) -> None:
    ring = Keyring.parse(new_key_entry("k1"))
    token = seal(ring, PLAIN, AAD)
    blob = bytearray(base64.b64decode(token.split(":")[2]))
    blob[where] ^= 0x01
    with pytest.raises(AuthenticationError):
        open_sealed(ring, f"v1:k1:{base64.b64encode(bytes(blob)).decode()}", AAD)


def test_truncated_or_malformed_values_fail() -> None:
    ring = Keyring.parse(new_key_entry("k1"))
    with pytest.raises(AuthenticationError):
        open_sealed(ring, "v1:k1:" + base64.b64encode(b"short").decode(), AAD)
    with pytest.raises(AuthenticationError):
        open_sealed(ring, "plain text", AAD)


def test_a_value_moved_to_another_patient_or_field_fails() -> None:
    ring = Keyring.parse(new_key_entry("k1"))
    token = seal(ring, PLAIN, AAD)
    for other in (b"carepulse:patient:p2:vitals\0temp", b"carepulse:patient:p1:vitals\0pulse", b""):
        with pytest.raises(AuthenticationError):
            open_sealed(ring, token, other)


def test_unknown_key_id_and_missing_keyring_are_reported_as_such() -> None:
    token = seal(Keyring.parse(new_key_entry("k1")), PLAIN, AAD)
    with pytest.raises(UnknownKeyError, match="'k1'"):
        open_sealed(Keyring.parse(new_key_entry("k2")), token, AAD)
    with pytest.raises(UnknownKeyError, match="no context key configured"):
        open_sealed(None, token, AAD)
    # Same kid, different key material: authentication, not lookup, catches it.
    with pytest.raises(AuthenticationError):
        open_sealed(Keyring.parse(new_key_entry("k1")), token, AAD)
    assert issubclass(UnknownKeyError, ContextCryptoError) and not issubclass(ContextCryptoError, ValueError)


def test_rotation_old_values_stay_readable_and_new_ones_use_the_new_key() -> None:
    old, new = new_key_entry("2025a"), new_key_entry("2026a")
    before = seal(Keyring.parse(old), PLAIN, AAD)
    rotated = Keyring.parse(f"{new},{old}")
    assert rotated.current == "2026a" and rotated.kids == ("2026a", "2025a")
    assert open_sealed(rotated, before, AAD) == PLAIN
    after = seal(rotated, PLAIN, AAD)
    assert after.startswith("v1:2026a:")
    # Once the old key is dropped, only values sealed with the new one open.
    final = Keyring.parse(new)
    assert open_sealed(final, after, AAD) == PLAIN
    with pytest.raises(UnknownKeyError):
        open_sealed(final, before, AAD)


def test_keyring_accepts_both_base64_alphabets_and_rejects_bad_entries_without_echoing_keys() -> None:
    raw = bytes(range(200, 232))  # encodes with '+'/'/' or '-'/'_' depending on the alphabet
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    token = seal(Keyring.parse(f"a:{std}"), PLAIN, AAD)
    assert open_sealed(Keyring.parse(f" a:{url} , "), token, AAD) == PLAIN
    secret = base64.b64encode(b"x" * 20).decode()
    for bad in ("", " , ", "nokid", f":{std}", f"a:{std},a:{std}", "a:!!!notbase64", f"a:{secret}",
                f"bad kid:{std}"):
        with pytest.raises(KeyringConfigError) as info:
            Keyring.parse(bad)
        assert secret not in str(info.value) and std not in str(info.value)
    with pytest.raises(KeyringConfigError):
        new_key_entry("no spaces")
