"""Container health check: GET /readyz on this service's health port; exit 0 only on 200.

The port comes from the same variable the service reads (``CAREPULSE_<NAME>_PORT``, for
inference ``CAREPULSE_INFERENCE_METRICS_PORT``), as listed in the platform catalogue, so
overriding a port in the environment moves the check with it. Standard library only.
"""

from __future__ import annotations

import os
import sys
import urllib.request

from carepulse.shared.platform.catalogue import CATALOGUE


def health_url(service: str, environ: dict[str, str]) -> str:
    spec = next((s for s in CATALOGUE if s.name == service), None)
    if spec is None:
        raise SystemExit(f"unknown service {service!r}")
    port = environ.get(spec.health_port) or str(spec.ports[spec.health_port])
    return f"http://127.0.0.1:{port}/readyz"


def main() -> int:
    url = health_url(os.environ.get("SERVICE", ""), dict(os.environ))
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:  # noqa: S310 (loopback URL built above)
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
