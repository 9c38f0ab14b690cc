"""TLS and mutual TLS of the inference gRPC server and the shared client, with a CA made here.

Every certificate is minted in tmp_path by the test: a CA, a server certificate for
127.0.0.1/localhost, a client certificate from the same CA and one from a stranger CA.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from inference_fixtures import affine_reference
from pydantic import ValidationError

from carepulse.inference.server import InferenceServer, TlsConfigError
from carepulse.inference.settings import InferenceSettings
from carepulse.inference.testing import ServerThread, local_settings
from carepulse.shared.inference.client import InferenceClient, InferenceError, InferenceTlsConfigError
from carepulse.shared.inference.settings import InferenceClientSettings
from carepulse.shared.testing.tls import Pki, make_pki

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "inference", "nlp")


def _server(model_repo: Path, pki: Pki, *, mutual: bool) -> ServerThread:
    return ServerThread(local_settings(
        model_repo, inference_models="affine",
        inference_server_tls_cert=pki.server.cert, inference_server_tls_key=pki.server.key,
        inference_server_tls_client_ca=pki.ca.ca_file if mutual else None,
    ))


@pytest.fixture(scope="module")
def tls_server(model_repo: Path, pki: Pki) -> Iterator[ServerThread]:
    with _server(model_repo, pki, mutual=False) as running:
        yield running


@pytest.fixture(scope="module")
def mtls_server(model_repo: Path, pki: Pki) -> Iterator[ServerThread]:
    with _server(model_repo, pki, mutual=True) as running:
        yield running


def _infer(url: str, **tls: Any) -> np.ndarray:
    """One affine inference through the shared client built from its settings, no retries."""
    settings = InferenceClientSettings(inference_url=url, inference_retries=0, inference_deadline_s=5, **tls)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)

    async def main() -> np.ndarray:
        async with InferenceClient.from_settings(settings) as client:
            out = await client.infer("affine", {"x": x}, version="1")
        return out["probs"]

    probs = asyncio.run(main())
    np.testing.assert_allclose(probs, affine_reference(x, 1)[1], rtol=1e-5)
    return probs


def _refused(url: str, **tls: Any) -> InferenceError:
    with pytest.raises(InferenceError) as exc:
        _infer(url, **tls)
    return exc.value


def test_tls_client_with_the_ca_infers(tls_server: ServerThread, pki: Pki) -> None:
    _infer(tls_server.grpc_url, inference_client_tls_ca=pki.ca.ca_file)
    # The certificate names localhost too, so the name checked can differ from the dialled host.
    _infer(tls_server.grpc_url, inference_client_tls_ca=pki.ca.ca_file, inference_client_tls_server_name="localhost")


def test_plaintext_client_is_refused_by_a_tls_server(tls_server: ServerThread) -> None:
    assert _refused(tls_server.grpc_url).code == grpc.StatusCode.UNAVAILABLE


def test_client_trusting_another_ca_refuses_the_server(tls_server: ServerThread, pki: Pki) -> None:
    assert _refused(tls_server.grpc_url, inference_client_tls_ca=pki.stranger.ca_file).code == \
        grpc.StatusCode.UNAVAILABLE


def test_server_name_not_in_the_certificate_is_refused(tls_server: ServerThread, pki: Pki) -> None:
    err = _refused(tls_server.grpc_url, inference_client_tls_ca=pki.ca.ca_file,
                   inference_client_tls_server_name="inference.elsewhere.example")
    assert err.code == grpc.StatusCode.UNAVAILABLE


def test_mtls_client_with_a_valid_certificate_infers(mtls_server: ServerThread, pki: Pki) -> None:
    _infer(mtls_server.grpc_url, inference_client_tls_ca=pki.ca.ca_file,
           inference_client_tls_cert=pki.client.cert, inference_client_tls_key=pki.client.key)


def test_mtls_client_without_a_certificate_is_refused(mtls_server: ServerThread, pki: Pki) -> None:
    assert _refused(mtls_server.grpc_url, inference_client_tls_ca=pki.ca.ca_file).code == \
        grpc.StatusCode.UNAVAILABLE


def test_mtls_client_with_a_certificate_from_another_ca_is_refused(mtls_server: ServerThread, pki: Pki) -> None:
    err = _refused(mtls_server.grpc_url, inference_client_tls_ca=pki.ca.ca_file,
                   inference_client_tls_cert=pki.stranger_client.cert,
                   inference_client_tls_key=pki.stranger_client.key)
    assert err.code == grpc.StatusCode.UNAVAILABLE


def test_mtls_plaintext_client_is_refused(mtls_server: ServerThread) -> None:
    assert _refused(mtls_server.grpc_url).code == grpc.StatusCode.UNAVAILABLE


def test_half_configured_tls_is_rejected_by_settings(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="set together"):
        InferenceSettings(inference_server_tls_cert=pki.server.cert)
    with pytest.raises(ValidationError, match="TLS_CLIENT_CA needs"):
        InferenceSettings(inference_server_tls_client_ca=pki.ca.ca_file)
    with pytest.raises(ValidationError, match="set together"):
        InferenceClientSettings(inference_client_tls_ca=pki.ca.ca_file, inference_client_tls_key=pki.client.key)
    with pytest.raises(ValidationError, match="needs CAREPULSE_INFERENCE_CLIENT_TLS_CA"):
        InferenceClientSettings(inference_client_tls_cert=pki.client.cert, inference_client_tls_key=pki.client.key)


def test_unreadable_tls_files_stop_the_start(model_repo: Path, pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    settings = local_settings(model_repo, inference_models="affine", inference_server_tls_cert=missing,
                              inference_server_tls_key=pki.server.key)
    server = InferenceServer(settings)
    with pytest.raises(TlsConfigError, match="missing.pem"):
        asyncio.run(server.start())  # fails before anything binds or loads
    assert server.grpc_port == 0
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate")
    with pytest.raises(InferenceTlsConfigError, match="not PEM"):
        InferenceClient.from_settings(InferenceClientSettings(inference_client_tls_ca=not_pem))
