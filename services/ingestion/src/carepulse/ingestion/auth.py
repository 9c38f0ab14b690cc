"""Who may send what: OAuth 2.0 bearer JWTs as SMART Backend Services issues them, and SMART scopes.

A token is a JWT signed by the authorisation server; its keys come from the server's JWKS
(fetched over HTTPS, cached, fetched again when a token names a key id we do not know,
which is how key rotation shows up, but not more often than a floor so a flood of
made-up ``kid`` values cannot turn us into a load generator against the server).

Scopes: SMART v2 ``system/<Type>.<cruds>`` and v1 ``system/<Type>.<read|write|*>``; a
granular scope with a query (``system/Observation.c?category=...``) grants nothing here,
because ingestion cannot check its condition before publishing. Only ``system/`` scopes
count: a backend service acts for itself, never for a user or patient.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

# Asymmetric only: with an HMAC algorithm a JWKS's public key would be usable as a shared secret.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
ANONYMOUS = "anonymous"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_V2_ORDER = "cruds"


class Unauthenticated(Exception):
    """No token, or a token that is not valid (401). ``error`` is the RFC 6750 error code, or None when
    the request carried no credentials at all."""

    def __init__(self, description: str, error: str | None = "invalid_token") -> None:
        super().__init__(description)
        self.error = error

    def www_authenticate(self, realm: str) -> str:
        if self.error is None:
            return f'Bearer realm="{realm}"'
        return f'Bearer realm="{realm}", error="{self.error}", error_description="{_quote(str(self))}"'


class Forbidden(Exception):
    """A valid token whose scopes do not allow the interaction (403)."""

    def __init__(self, description: str, needed: str) -> None:
        super().__init__(description)
        self.needed = needed

    def www_authenticate(self, realm: str) -> str:
        return f'Bearer realm="{realm}", error="insufficient_scope", scope="{_quote(self.needed)}"'


class AuthUnavailable(RuntimeError):
    """The authorisation server's keys could not be fetched and none are cached (503, transient)."""


def _quote(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]


@dataclass(frozen=True)
class Grant:
    """One scope: a resource type (or ``*``) and the interactions it allows (letters of ``cruds``)."""

    resource_type: str
    interactions: frozenset[str]


def parse_scope(scope: str) -> Grant | None:
    """A SMART ``system/`` scope as a :class:`Grant`, or None for anything that grants no write here."""
    context, _, rest = scope.partition("/")
    if context != "system" or "?" in rest or "." not in rest:
        return None
    rtype, _, perms = rest.rpartition(".")
    if not rtype or not (rtype == "*" or rtype.isalnum()):
        return None
    if perms in _V1:
        return Grant(rtype, frozenset(_V1[perms]))
    # v2: a non-empty subsequence of "cruds", in that order.
    pos = 0
    for ch in perms:
        pos = _V2_ORDER.find(ch, pos) + 1
        if pos == 0:
            return None
    return Grant(rtype, frozenset(perms)) if perms else None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the client id (token ``client_id`` or ``sub``) and what its scopes grant."""

    client_id: str
    issuer: str | None = None
    grants: tuple[Grant, ...] = ()
    unrestricted: bool = False  # authentication turned off: every interaction is allowed
    scopes: tuple[str, ...] = field(default=(), repr=False)

    def allows(self, resource_type: str, interaction: str) -> bool:
        if self.unrestricted:
            return True
        return any(interaction in g.interactions and g.resource_type in ("*", resource_type) for g in self.grants)

    def allows_any(self, interaction: str) -> bool:
        """Whether some resource type may be the object of ``interaction`` (a cheap first gate)."""
        return self.unrestricted or any(interaction in g.interactions for g in self.grants)

    def require(self, resource_type: str, interaction: str) -> None:
        if not self.allows(resource_type, interaction):
            raise Forbidden(f"scope does not allow {_NAMES.get(interaction, interaction)} of {resource_type[:64]}",
                            f"system/{resource_type[:64]}.{interaction}")

    def require_all(self, wanted: Iterable[tuple[str, str, str]]) -> None:
        """Every ``(where, resource type, interaction)`` must be allowed; a 403 names each one that is not."""
        denied = [(where, t, i) for where, t, i in wanted if not self.allows(t, i)]
        if denied:
            where, t, i = denied[0]
            more = f" (and {len(denied) - 1} more)" if len(denied) > 1 else ""
            raise Forbidden(f"{where}: scope does not allow {_NAMES.get(i, i)} of {t[:64]}{more}",
                            " ".join(sorted({f"system/{t[:64]}.{i}" for _, t, i in denied[:20]})))


_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def unrestricted() -> Principal:
    """The caller when authentication is off (the embedded platform's default)."""
    return Principal(ANONYMOUS, unrestricted=True)


@dataclass(frozen=True)
class SigningKey:
    """A public key from the JWKS, with the algorithm it is declared for (``alg``, optional in a JWK)."""

    key: Any
    kty: str
    alg: str | None

    def fits(self, alg: str) -> bool:
        if self.alg is not None:
            return alg == self.alg
        return alg[:2] in ("RS", "PS") if self.kty == "RSA" else alg.startswith("ES") if self.kty == "EC" else False


class JwksCache:
    """The authorisation server's signing keys, by ``kid``.

    Fetched on first use and again after ``ttl_s``; a token naming an unknown ``kid`` triggers a
    fetch at most once per ``min_refetch_s``. When a fetch fails, the keys already held keep working.
    """

    def __init__(self, url: str, *, ttl_s: float = 3600.0, min_refetch_s: float = 30.0, timeout_s: float = 5.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self._url = url
        self._ttl = ttl_s
        self._min_refetch = min_refetch_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s, headers={"Accept": "application/json"})
        self._keys: dict[str | None, SigningKey] = {}
        self._fetched_at = float("-inf")  # last attempt, successful or not (monotonic)
        self._loaded_at = float("-inf")  # last success
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the JWKS was requested (tests and metrics read it)

    async def key(self, kid: str | None) -> SigningKey:
        if time.monotonic() - self._loaded_at > self._ttl or self._lookup(kid) is None:
            await self._refresh()  # first use, expired, or maybe rotated
        found = self._lookup(kid)
        if found is None:
            if not self._keys and self._loaded_at == float("-inf"):
                raise AuthUnavailable("the authorisation server's keys (JWKS) could not be fetched")
            raise Unauthenticated("token signed with an unknown key" if kid else "token has no kid")
        return found

    def _lookup(self, kid: str | None) -> SigningKey | None:
        if kid is None:
            # Without a kid the key is unambiguous only when the set holds one key.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            # Someone else fetched while we waited, or the floor between fetches has not passed.
            if now - self._fetched_at < self._min_refetch:
                return
            self._fetched_at = now
            self.fetches += 1
            try:
                r = await self._client.get(self._url)
                r.raise_for_status()
                doc = r.json()
            except (httpx.HTTPError, ValueError):
                return  # keep the keys held; the caller reports unknown key or unavailable
            keys: dict[str | None, SigningKey] = {}
            for jwk in (doc.get("keys") or []) if isinstance(doc, dict) else []:
                if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                    continue
                try:
                    k = jwt.PyJWK(jwk)
                except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                    continue  # a key type we cannot use (or a symmetric one) is skipped, not fatal
                if k.algorithm_name in ASYMMETRIC_ALGORITHMS:
                    declared = jwk.get("alg")
                    keys[jwk.get("kid")] = SigningKey(k.key, str(jwk.get("kty")),
                                                      declared if isinstance(declared, str) else None)
            self._keys = keys
            self._loaded_at = now

    async def close(self) -> None:
        await self._client.aclose()


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` (or raises 401/503 errors)."""

    def __init__(self, *, issuer: str, audience: str, jwks: JwksCache, leeway_s: float = 30.0,
                 algorithms: Iterable[str] = ASYMMETRIC_ALGORITHMS) -> None:
        self._issuer = issuer
        self._audience = audience
        self._jwks = jwks
        self._leeway = leeway_s
        self._algorithms = [a for a in algorithms if a in ASYMMETRIC_ALGORITHMS]

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("bearer token required", error=None)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("use the Bearer scheme", error="invalid_request")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise Unauthenticated("malformed token") from e
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise Unauthenticated(f"token algorithm {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        key = await self._jwks.key(kid if isinstance(kid, str) else None)
        if not key.fits(alg):
            raise Unauthenticated("token algorithm does not match its key")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self._audience, issuer=self._issuer,
                                leeway=self._leeway, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError as e:
            raise Unauthenticated("token expired") from e
        except jwt.ImmatureSignatureError as e:
            raise Unauthenticated("token not yet valid") from e
        except jwt.InvalidAudienceError as e:
            raise Unauthenticated("token audience is not this server") from e
        except jwt.InvalidIssuerError as e:
            raise Unauthenticated("token issuer is not trusted") from e
        except jwt.InvalidSignatureError as e:
            raise Unauthenticated("token signature is not valid") from e
        except jwt.MissingRequiredClaimError as e:
            raise Unauthenticated(f"token lacks the {e.claim} claim") from e
        except jwt.PyJWTError as e:
            raise Unauthenticated("token is not valid") from e
        return principal_from_claims(claims)

    async def close(self) -> None:
        await self._jwks.close()


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    scopes_claim = claims.get("scope", claims.get("scp", ""))
    scopes = scopes_claim.split() if isinstance(scopes_claim, str) else [
        s for s in scopes_claim if isinstance(s, str)] if isinstance(scopes_claim, list) else []
    client = claims.get("client_id") or claims.get("azp") or claims.get("sub")
    grants = tuple(g for g in (parse_scope(s) for s in scopes) if g is not None)
    return Principal(str(client)[:200] if client else "unknown-client", str(claims.get("iss")), grants,
                     scopes=tuple(scopes))
