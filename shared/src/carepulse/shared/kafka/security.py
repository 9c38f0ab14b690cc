"""Kafka transport security from settings, in the shape each client library wants.

One place turns ``CAREPULSE_KAFKA_SECURITY_PROTOCOL``, ``_TLS_*`` and ``_SASL_*`` into the
keyword arguments of kafka-python (producer, admin, consumers) and aiokafka (ingestion's
producer, the stream workers' consumer and producer), so every client of every service
connects the same way:

- ``PLAINTEXT``: nothing (the embedded platform, tests).
- ``SSL``: TLS to the brokers, verified against ``KAFKA_TLS_CA``; with ``KAFKA_TLS_CERT`` and
  ``_KEY`` the client also presents a certificate (mutual TLS, the broker's principal).
- ``SASL_SSL``: TLS plus a SASL login, SCRAM-SHA-512 by default (the password never
  crosses the wire); a client certificate may be added as well.
- ``SASL_PLAINTEXT``: SCRAM without TLS, for a private network only; PLAIN is refused
  there, since it would send the password in clear.

A half-configured setup (files without a TLS protocol, a SASL protocol without a user,
a certificate without its key) stops the client at build time: it never falls back to
plaintext and never silently ignores a credential.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from carepulse.shared.settings import Settings
from carepulse.shared.tls import TlsConfigError, client_context

_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


class KafkaSecurityError(TlsConfigError):
    """The Kafka security settings are incomplete or contradictory."""


@dataclass(frozen=True)
class KafkaSecurity:
    """What a Kafka client needs to reach the brokers: protocol, TLS context, SASL login."""

    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.protocol in _TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        return self.protocol in _SASL_PROTOCOLS

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """Checked settings; raises :class:`KafkaSecurityError` on anything incomplete."""
        protocol = settings.kafka_security_protocol
        tls, sasl = protocol in _TLS_PROTOCOLS, protocol in _SASL_PROTOCOLS
        files = {n: getattr(settings, f"kafka_tls_{n}") for n in ("ca", "cert", "key")}
        if not tls and any(files.values()):
            named = ", ".join(f"CAREPULSE_KAFKA_TLS_{n.upper()}" for n, v in files.items() if v)
            raise KafkaSecurityError(f"{named} set but CAREPULSE_KAFKA_SECURITY_PROTOCOL is {protocol}: "
                                     "use SSL or SASL_SSL")
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        if not sasl and (settings.kafka_sasl_username or password):
            raise KafkaSecurityError(f"CAREPULSE_KAFKA_SASL_* set but CAREPULSE_KAFKA_SECURITY_PROTOCOL is "
                                     f"{protocol}: use SASL_SSL")
        if sasl and not (settings.kafka_sasl_username and password):
            raise KafkaSecurityError(f"{protocol} needs CAREPULSE_KAFKA_SASL_USERNAME and "
                                     "CAREPULSE_KAFKA_SASL_PASSWORD")
        if protocol == "SASL_PLAINTEXT" and settings.kafka_sasl_mechanism == "PLAIN":
            raise KafkaSecurityError("SASL PLAIN sends the password in clear: use SASL_SSL or a SCRAM mechanism")
        try:
            context = client_context("Kafka", ca=files["ca"], cert=files["cert"], key=files["key"],
                                     check_hostname=settings.kafka_tls_check_hostname) if tls else None
        except TlsConfigError as exc:
            raise KafkaSecurityError(str(exc)) from None
        if not sasl:
            return cls(protocol, context)
        return cls(protocol, context, settings.kafka_sasl_mechanism, settings.kafka_sasl_username, password)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's and aiokafka's clients (both use these names)."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            # One pre-built context: every other ssl_* option of the libraries is then ignored,
            # so both libraries verify exactly alike.
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl:
            kwargs |= {"sasl_mechanism": self.sasl_mechanism, "sasl_plain_username": self.sasl_username,
                       "sasl_plain_password": self.sasl_password}
        return kwargs


def kafka_client_security(settings: Settings) -> dict[str, Any]:
    """Security kwargs for kafka-python's ``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``
    and aiokafka's ``AIOKafkaProducer``/``AIOKafkaConsumer`` (the libraries share these names)."""
    return KafkaSecurity.from_settings(settings).client_kwargs()
