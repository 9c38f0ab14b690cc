"""Settings, read once from ``CAREPULSE_*`` environment variables and passed down.

Each service subclasses :class:`Settings` with its own fields; nothing reads the
environment anywhere else, so a test can build a settings object and hand it in.
"""

from __future__ import annotations

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
    stream_lanes: int = Field(
        8, ge=1, le=256,
        description="Records a stream worker handles at once per source topic; records with the same key "
        "(the same patient) always share a lane, so each patient's records keep their order",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL of the patient-context store")
    redis_password: SecretStr | None = Field(None, description="Redis password (kept out of the URL and logs)")
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
