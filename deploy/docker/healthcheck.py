"""Container health check: GET /readyz (``--live``: /livez) on this service's health port; exit 0 only on 200.

The port comes from the same variable the service reads (``CAREPULSE_<NAME>_PORT``, for
inference ``CAREPULSE_INFERENCE_METRICS_PORT``), as listed in the platform catalogue, so
overriding a port in the environment moves the check with it. When ingestion serves HTTPS
(``CAREPULSE_INGESTION_TLS_CERT``) the check speaks HTTPS to it; under mutual TLS
(``CAREPULSE_INGESTION_TLS_CLIENT_CA``) it presents the server's own certificate and key,
which must then be issued for client authentication by a CA in that bundle. Standard library only.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request

from carepulse.shared.platform.catalogue import CATALOGUE


def health_url(service: str, environ: dict[str, str], path: str = "/readyz") -> str:
    spec = next((s for s in CATALOGUE if s.name == service), None)
    if spec is None:
        raise SystemExit(f"unknown service {service!r}")
    port = environ.get(spec.health_port) or str(spec.ports[spec.health_port])
    scheme = "https" if service == "ingestion" and environ.get("CAREPULSE_INGESTION_TLS_CERT") else "http"
    return f"{scheme}://127.0.0.1:{port}{path}"


def tls_context(environ: dict[str, str]) -> ssl.SSLContext | None:
    """For ingestion over HTTPS: a context for the loopback self-check (the process checks its own
    listener, so the server certificate's name is not what is being tested)."""
    cert, key = environ.get("CAREPULSE_INGESTION_TLS_CERT"), environ.get("CAREPULSE_INGESTION_TLS_KEY")
    if not cert or not key:
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if environ.get("CAREPULSE_INGESTION_TLS_CLIENT_CA"):
        ctx.load_cert_chain(cert, key)
    return ctx


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    environ = dict(os.environ)
    service = environ.get("SERVICE", "")
    url = health_url(service, environ, "/livez" if "--live" in args else "/readyz")
    try:
        ctx = tls_context(environ) if url.startswith("https:") else None
        with urllib.request.urlopen(url, timeout=4, context=ctx) as resp:  # noqa: S310 (loopback URL built above)
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
