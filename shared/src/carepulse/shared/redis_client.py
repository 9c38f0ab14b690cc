"""The one Redis client factory: every CarePulse process connects to Redis through it.

Security comes from settings only (secrets from the environment, never the URL in logs):

- ``CAREPULSE_REDIS_URL=rediss://host:6380/0`` turns on TLS; the server certificate is
  verified against ``CAREPULSE_REDIS_TLS_CA`` (system CAs when unset) and its host name checked.
- ``CAREPULSE_REDIS_TLS_CERT`` / ``_KEY``: a client certificate, for a server with
  ``tls-auth-clients yes`` (mutual TLS).
- ``CAREPULSE_REDIS_USERNAME`` / ``_PASSWORD``: an ACL user (``AUTH user password``); the
  password alone authenticates as the ``default`` user (``requirepass``).

A half-configured setup (TLS files with a ``redis://`` URL, a certificate without its key, a
user without a password, an unreadable file) stops the process when the client is built.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from carepulse.shared.settings import Settings
from carepulse.shared.tls import TlsConfigError, client_context


class RedisConfigError(TlsConfigError):
    """The Redis connection settings are incomplete or contradictory."""


# The least a CarePulse process needs on Redis, as ACL rules for its user: its own key space
# (patient context, ingestion's dedupe records and leases), the commands the stores send and
# the scripts they run. Redis checks the commands a script calls against the same rules.
# Used by docker-compose.yml and the TLS tests; give the user a password: "on >password " + ACL_RULES.
ACL_RULES = ("resetkeys ~carepulse:* resetchannels -@all +ping +select +get +mget +set +del +expire "
             "+hget +hset +hgetall +evalsha +script|load +script|exists")


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``redis.Redis.from_url`` for ``settings.redis_url`` (checked)."""
    scheme = urlsplit(settings.redis_url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise RedisConfigError(f"CAREPULSE_REDIS_URL: unknown scheme {scheme!r} (redis://, rediss:// or unix://)")
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    if settings.redis_username and not password:
        raise RedisConfigError("CAREPULSE_REDIS_USERNAME needs CAREPULSE_REDIS_PASSWORD")
    options: dict[str, Any] = {"password": password, "decode_responses": False}
    if settings.redis_username:
        options["username"] = settings.redis_username
    files = {"ca": settings.redis_tls_ca, "cert": settings.redis_tls_cert, "key": settings.redis_tls_key}
    if scheme != "rediss":
        if any(files.values()):
            named = ", ".join(f"CAREPULSE_REDIS_TLS_{n.upper()}" for n, v in files.items() if v)
            raise RedisConfigError(f"{named} set but CAREPULSE_REDIS_URL is not rediss://: TLS would be off")
        return options
    # redis-py builds its SSL context at the first connection; building one here first means a
    # missing or malformed file stops the start instead of every later command.
    try:
        client_context("Redis", ca=files["ca"], cert=files["cert"], key=files["key"],
                       check_hostname=settings.redis_tls_check_hostname)
    except TlsConfigError as exc:
        raise RedisConfigError(str(exc)) from None
    options |= {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": settings.redis_tls_check_hostname,
        "ssl_ca_certs": str(files["ca"]) if files["ca"] else None,
        "ssl_certfile": str(files["cert"]) if files["cert"] else None,
        "ssl_keyfile": str(files["key"]) if files["key"] else None,
    }
    return options


def make_redis(settings: Settings, **overrides: Any) -> aioredis.Redis:
    """An asyncio Redis client on ``settings.redis_url`` with the settings' TLS and ACL login.

    ``overrides``: further client options (e.g. ``socket_timeout``) that take precedence.
    """
    return aioredis.Redis.from_url(settings.redis_url, **(redis_options(settings) | overrides))
