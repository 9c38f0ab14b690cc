"""The running service: gRPC (inference protocol + grpc.health.v1) and HTTP (metrics, probes).

Start order: listeners first (so /livez answers and the supervisor sees progress), then the
models load, then readiness flips (ServerReady, grpc.health SERVING, /readyz 200). Stop:
readiness off, in-flight calls get ``shutdown_grace_s``, batchers drain, sessions close.
"""

from __future__ import annotations

import json
import logging

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from carepulse.inference.repository import ModelRepository
from carepulse.inference.servicer import InferenceServicer
from carepulse.inference.settings import InferenceSettings
from carepulse.shared.health import HealthChecks
from carepulse.shared.inference.client import InferenceTlsConfigError, read_pem
from carepulse.shared.inference.protocol import grpc_service_pb2 as pb
from carepulse.shared.inference.protocol import grpc_service_pb2_grpc as pb_grpc
from carepulse.shared.metrics import render_metrics

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name

def grpc_options(settings: InferenceSettings) -> tuple[tuple[str, int], ...]:
    return (
        # Batches of images exceed gRPC's 4 MB default, so the bound is a setting; answers are
        # our own outputs, so sending is not limited.
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", settings.inference_max_request_bytes),
        # Two servers must never share a port silently (SO_REUSEPORT is on by default on Linux).
        ("grpc.so_reuseport", 0),
    )


# The server's name for the shared error: a TLS file it cannot read stops the start.
TlsConfigError = InferenceTlsConfigError


def server_credentials(settings: InferenceSettings) -> grpc.ServerCredentials | None:
    """TLS (or mutual TLS) credentials from the settings' files, read once; None: plaintext."""
    if settings.inference_server_tls_cert is None or settings.inference_server_tls_key is None:
        return None
    pair = (read_pem(settings.inference_server_tls_key, "server TLS key"),
            read_pem(settings.inference_server_tls_cert, "server TLS certificate"))
    client_ca = settings.inference_server_tls_client_ca
    if client_ca is None:
        return grpc.ssl_server_credentials([pair])
    return grpc.ssl_server_credentials([pair], root_certificates=read_pem(client_ca, "client CA bundle"),
                                       require_client_auth=True)


def _tls_mode(settings: InferenceSettings) -> str:
    if not settings.tls_enabled:
        return "off"
    return "mutual" if settings.inference_server_tls_client_ca is not None else "on"


class InferenceServer:
    def __init__(self, settings: InferenceSettings) -> None:
        self._settings = settings
        self.repository = ModelRepository(
            settings.model_repository,
            allowed_providers=settings.allowed_providers,
            intra_op_threads=settings.inference_threads,
        )
        self._ready = False
        self._grpc: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._http: web.AppRunner | None = None
        self._checks = HealthChecks()
        self._checks.add("models", lambda: self._ready)
        self.grpc_port = 0
        self.metrics_port = 0
        self.load_failures: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        host = self._settings.bind_host
        # Read before anything binds: a missing or bad file stops the start with its path named.
        credentials = server_credentials(self._settings)
        await self._set_serving(False)
        self._grpc = grpc.aio.server(options=grpc_options(self._settings))
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self.repository, lambda: self._ready), self._grpc
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        address = f"{host}:{self._settings.inference_grpc_port}"
        if credentials is None:
            self.grpc_port = self._grpc.add_insecure_port(address)
        else:
            self.grpc_port = self._grpc.add_secure_port(address, credentials)
        if self.grpc_port == 0:
            raise OSError(f"cannot bind gRPC to {host}:{self._settings.inference_grpc_port}")
        await self._grpc.start()
        self.metrics_port = await self._start_http(host, self._settings.inference_metrics_port)
        log.info("listening", extra={"fields": {"grpc": f"{host}:{self.grpc_port}",
                                                "metrics": f"{host}:{self.metrics_port}",
                                                "tls": _tls_mode(self._settings)}})

        self.load_failures = await self.repository.load_all(self._settings.startup_models)
        for name, reason in self.load_failures.items():
            log.error("model not loaded", extra={"fields": {"model": name, "reason": reason}})
        # Ready even if a model failed: the others serve, and the index tells which failed
        # (Triton does the same unless --exit-on-error).
        self._ready = True
        await self._set_serving(True)
        log.info("inference ready", extra={"fields": {
            "grpc_port": self.grpc_port, "metrics_port": self.metrics_port,
            "models": [f"{m.name}/{m.version}@{m.provider}" for m in self.repository.loaded()],
        }})

    async def stop(self) -> None:
        self._ready = False
        await self._set_serving(False)
        if self._grpc is not None:
            await self._grpc.stop(self._settings.inference_shutdown_grace_s)
            self._grpc = None
        await self.repository.close()
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        log.info("inference stopped")

    async def _set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", SERVICE_NAME):
            await self._health.set(service, status)

    async def _start_http(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        self._http = web.AppRunner(app, access_log=None)
        await self._http.setup()
        site = web.TCPSite(self._http, host, port)
        await site.start()
        return int(self._http.addresses[0][1])

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render_metrics(), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def _livez(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ok, detail = await self._checks.readiness()
        body = {"status": "ok" if ok else "unavailable", "checks": detail,
                "models": [f"{m.name}/{m.version}" for m in self.repository.loaded()],
                "failed": self.load_failures}
        return web.Response(status=200 if ok else 503, text=json.dumps(body), content_type="application/json")
