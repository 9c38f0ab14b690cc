"""The services the platform knows how to run, their ports and health endpoints.

A service is started only when its package is installed, so a machine set up for
some services runs exactly those ("every service built so far").
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str  # run as ``python -m <module>``
    ports: dict[str, int]  # env var -> default port
    health_port: str  # which of ``ports`` serves /livez, /readyz, /metrics

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


CATALOGUE: tuple[ServiceSpec, ...] = (
    ServiceSpec("inference", "carepulse.inference",
                {"CAREPULSE_INFERENCE_GRPC_PORT": 8001, "CAREPULSE_INFERENCE_METRICS_PORT": 8002},
                "CAREPULSE_INFERENCE_METRICS_PORT"),
    ServiceSpec("ingestion", "carepulse.ingestion", {"CAREPULSE_INGESTION_PORT": 8080}, "CAREPULSE_INGESTION_PORT"),
    ServiceSpec("care", "carepulse.care", {"CAREPULSE_CARE_PORT": 8090}, "CAREPULSE_CARE_PORT"),
    ServiceSpec("nlp", "carepulse.nlp", {"CAREPULSE_NLP_PORT": 8091}, "CAREPULSE_NLP_PORT"),
    ServiceSpec("imaging", "carepulse.imaging", {"CAREPULSE_IMAGING_PORT": 8092}, "CAREPULSE_IMAGING_PORT"),
)


def installed_services(only: list[str] | None = None) -> list[ServiceSpec]:
    return [s for s in CATALOGUE if s.installed() and (not only or s.name in only)]
