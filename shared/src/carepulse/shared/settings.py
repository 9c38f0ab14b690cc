"""Settings, read once from ``CAREPULSE_*`` environment variables and passed down.

Each service subclasses :class:`Settings` with its own fields; nothing reads the
environment anywhere else, so a test can build a settings object and hand it in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """What every CarePulse process needs: where Kafka and Redis are, how to log."""

    model_config = SettingsConfigDict(env_prefix="CAREPULSE_", extra="ignore", frozen=True)

    bind_host: str = Field(
        "127.0.0.1", description="Address servers listen on (0.0.0.0 in containers; loopback on one machine)"
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated"
    )
    kafka_fetch_max_wait_ms: int = Field(
        20, description="How long a consumer's fetch may wait for data: the latency floor of each hop"
    )
    kafka_max_record_bytes: int = Field(
        12 * 1024 * 1024, ge=1024,
        description="Largest record a stream worker handles; a bigger one is dead-lettered (its first 64 KiB kept)",
    )
    stream_lanes: int = Field(
        8, ge=1, le=256,
        description="Records a stream worker handles at once per source topic; records with the same key "
        "(the same patient) always share a lane, so each patient's records keep their order",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL of the patient-context store")
    redis_password: SecretStr | None = Field(None, description="Redis password (kept out of the URL and logs)")
    # Transport security of the two shared links (see carepulse.shared.redis_client and
    # carepulse.shared.kafka.security, which check these at client build and refuse half a setup).
    redis_username: str = Field("", description="Redis ACL user (empty: the default user, password only)")
    redis_tls_ca: Path | None = Field(
        None, description="PEM CA bundle that signed Redis' certificate (rediss:// URLs; unset: system CAs)"
    )
    redis_tls_cert: Path | None = Field(None, description="PEM client certificate for Redis (tls-auth-clients yes)")
    redis_tls_key: Path | None = Field(None, description="PEM private key of the Redis client certificate")
    redis_tls_check_hostname: bool = Field(True, description="Check Redis' certificate names its host")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol: SSL (TLS, mTLS with a client cert) or SASL_SSL (+ SCRAM)"
    )
    kafka_tls_ca: Path | None = Field(
        None, description="PEM CA bundle that signed the brokers' certificates (unset: system CAs)"
    )
    kafka_tls_cert: Path | None = Field(None, description="PEM client certificate for Kafka (mutual TLS)")
    kafka_tls_key: Path | None = Field(None, description="PEM private key of the Kafka client certificate")
    kafka_tls_check_hostname: bool = Field(True, description="Check the brokers' certificates name their hosts")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols); PLAIN only over SASL_SSL"
    )
    kafka_sasl_username: str = Field("", description="SASL user (SASL_* protocols)")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (SASL_* protocols)")
    context_keys: SecretStr | None = Field(
        None,
        description="AES-GCM keys of the patient context in Redis: 'kid:base64key' entries, comma separated; "
        "the first encrypts, all decrypt (rotation: prepend a new key). Unset: values stored in plaintext",
    )
    topic_prefix: str = Field("", description="Prefix put before every topic name (e.g. 'site-a.')")
    log_format: Literal["json", "console"] = Field("console", description="Log line format")
    log_level: str = Field("INFO", description="Root log level")
    ingestion_url: str = Field("http://127.0.0.1:8080", description="Base URL of ingestion (used by the CLI)")
    run_dir: str = Field(".run", description="Folder of the embedded platform's runs (logs, state)")
    services: str = Field("", description="Services `carepulse up` starts, comma separated (empty: all installed)")
    source_name: str = Field("carepulse", description="Value of the 'source' header and MessageHeader.source")

    @property
    def kafka_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
