"""Kafka over TLS / mutual TLS / SASL: the one settings→client mapping, and real traffic over TLS.

Tansu 0.6.0 (the embedded broker) cannot serve TLS or SASL itself (its ``--cert`` and
``--key`` flags exclude each other; SASL handshakes are refused), so the integration part
puts a TLS terminator in front of it, the way a load balancer or a sidecar terminates TLS
for a broker: the clients speak real TLS 1.2+/1.3 with a certificate from a CA minted here,
the terminator requires a client certificate from that CA (mutual TLS), and the broker
advertises the terminator's address so every connection goes through it. SCRAM is covered
by the mapping tests only (no broker here verifies SCRAM).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import select
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError as AioKafkaError
from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from pydantic import SecretStr

from carepulse.shared.health import HealthChecks
from carepulse.shared.kafka.admin import create_topics
from carepulse.shared.kafka.headers import Headers, fhir_headers
from carepulse.shared.kafka.lag import LagMonitor
from carepulse.shared.kafka.producer import AsyncFhirProducer, FhirProducer, OutRecord, make_producer
from carepulse.shared.kafka.security import (
    KafkaSecurity,
    KafkaSecurityError,
    kafka_client_security,
)
from carepulse.shared.kafka.streams import Outgoing, add_handler, make_publisher, make_stream_app
from carepulse.shared.platform.processes import free_port, spawn, stop, wait_for_port
from carepulse.shared.platform.servers import tansu_binary
from carepulse.shared.settings import Settings
from carepulse.shared.testing.tls import Pki, make_pki
from carepulse.shared.testing.topics import TopicReader
from carepulse.shared.topics import Topics

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("kafka-pki"), "kafka", "care")


# --- the mapping, per client library -------------------------------------------------------

def test_plaintext_is_the_default_and_adds_nothing() -> None:
    assert kafka_client_security(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_ssl_with_client_certificate_maps_to_one_verifying_context_for_every_library(pki: Pki) -> None:
    s = Settings(kafka_security_protocol="SSL", kafka_tls_ca=pki.ca.ca_file, kafka_tls_cert=pki.client.cert,
                 kafka_tls_key=pki.client.key)
    kwargs = kafka_client_security(s)
    assert set(kwargs) == {"security_protocol", "ssl_context"} and kwargs["security_protocol"] == "SSL"
    ctx: ssl.SSLContext = kwargs["ssl_context"]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "hospital test CA"),),)]
    assert not Settings(kafka_security_protocol="SSL", kafka_tls_check_hostname=False,
                        kafka_tls_ca=pki.ca.ca_file).model_dump()["kafka_tls_check_hostname"]
    assert not kafka_client_security(Settings(kafka_security_protocol="SSL", kafka_tls_ca=pki.ca.ca_file,
                                              kafka_tls_check_hostname=False))["ssl_context"].check_hostname


@pytest.mark.parametrize(("protocol", "mechanism"), [("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "SCRAM-SHA-256"),
                                                     ("SASL_SSL", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-512")])
def test_sasl_maps_user_password_mechanism_for_kafka_python_and_aiokafka(
    pki: Pki, protocol: str, mechanism: str
) -> None:
    s = Settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism, kafka_sasl_username="care",
                 kafka_sasl_password=SecretStr("s3cret"),
                 kafka_tls_ca=pki.ca.ca_file if protocol == "SASL_SSL" else None)
    security = KafkaSecurity.from_settings(s)
    kwargs = security.client_kwargs()
    assert kwargs == kafka_client_security(s) | {"ssl_context": kwargs.get("ssl_context")} if security.tls \
        else kwargs == kafka_client_security(s)
    assert kwargs["security_protocol"] == protocol and kwargs["sasl_mechanism"] == mechanism
    assert kwargs["sasl_plain_username"] == "care" and kwargs["sasl_plain_password"] == "s3cret"
    assert ("ssl_context" in kwargs) is (protocol == "SASL_SSL")
    assert "s3cret" not in repr(KafkaSecurity.from_settings(s)) and "s3cret" not in repr(s)

    async def construct() -> None:
        # aiokafka checks its security options when a client is made (no connection yet).
        AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", **kwargs)
        AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", **kwargs)
    asyncio.run(construct())


def test_half_configured_security_stops_every_client_at_build(pki: Pki, tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    bad = {
        "TLS files with PLAINTEXT": {"kafka_tls_ca": pki.ca.ca_file},
        "SASL user with SSL": {"kafka_security_protocol": "SSL", "kafka_sasl_username": "care",
                               "kafka_sasl_password": SecretStr("pw")},
        "SASL without password": {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "care"},
        "SASL without user": {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": SecretStr("pw")},
        "PLAIN in clear": {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN",
                           "kafka_sasl_username": "care", "kafka_sasl_password": SecretStr("pw")},
        "certificate without key": {"kafka_security_protocol": "SSL", "kafka_tls_cert": pki.client.cert},
        "missing CA file": {"kafka_security_protocol": "SSL", "kafka_tls_ca": tmp_path / "absent.pem"},
        "CA not PEM": {"kafka_security_protocol": "SSL", "kafka_tls_ca": not_pem},
        "key of another certificate": {"kafka_security_protocol": "SSL", "kafka_tls_cert": pki.client.cert,
                                       "kafka_tls_key": pki.server.key},
    }
    for case, update in bad.items():
        s = Settings(**update)
        for build in (kafka_client_security, _run_stream_app,
                      lambda s: AsyncFhirProducer(s, "t"), lambda s: LagMonitor(s)):
            with pytest.raises(KafkaSecurityError):
                build(s)
                pytest.fail(case)


def _run_stream_app(s: Settings) -> None:
    # A stream worker checks the settings before it opens a connection or its web port.
    asyncio.run(make_stream_app(s, "carepulse-sec-test", web_port=0, health=HealthChecks()).run(asyncio.Event()))


def _client_calls(path: Path) -> list[tuple[str, ast.Call]]:
    names = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient", "AIOKafkaProducer", "AIOKafkaConsumer"}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in names:
                found.append((name, node))
    return found


def test_every_kafka_client_the_product_builds_gets_the_security_settings() -> None:
    """A client built without them would talk plaintext to a TLS-only cluster (and fail) or,
    worse, be the one link left in clear: every construction passes ``**security`` kwargs."""
    sources = [*(ROOT / "shared" / "src").rglob("*.py"), *(ROOT / "services").glob("*/src/**/*.py"),
               *(ROOT / "deploy").rglob("*.py")]
    seen = 0
    for path in sources:
        for name, call in _client_calls(path):
            seen += 1
            kws = {k.arg for k in call.keywords}
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            assert None in kws, f"{where}: {name}(...) without the Kafka security settings"
    assert seen >= 10  # the scan found the clients (producer, admin, lag, consumers, streams, topic job)


# --- real traffic over (mutual) TLS ---------------------------------------------------------

class TlsTerminator:
    """TLS in front of a plaintext broker (one thread per connection); records refused handshakes."""

    def __init__(self, upstream_port: int, context: ssl.SSLContext) -> None:
        self.upstream_port = upstream_port
        self.context = context
        self.accepted = 0
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._conns: list[threading.Thread] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="tls-terminator", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._sock.accept()
            except TimeoutError:
                continue
            conn = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            conn.start()
            self._conns.append(conn)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)  # the whole handshake, client cert included
        except OSError as exc:  # ssl.SSLError is an OSError
            self.refused.append(f"{type(exc).__name__}: {exc}")
            raw.close()
            return
        self.accepted += 1
        # One thread does both directions: an SSL socket must not be read and written concurrently.
        with tls, contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.upstream_port)) as up:
            tls.settimeout(None)
            other = {tls: up, up: tls}
            while not self._stop.is_set():
                ready = [tls] if tls.pending() else select.select([tls, up], [], [], 0.2)[0]
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    other[src].sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.join(5)
        self._sock.close()


@dataclass(frozen=True)
class TlsBroker:
    terminator: TlsTerminator
    bootstrap: str


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsBroker]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca.ca_file))
    server_ctx.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    server_ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: a client certificate from the hospital CA
    broker_port = free_port()
    terminator = TlsTerminator(broker_port, server_ctx)
    # The broker advertises the terminator: metadata sends every client back through TLS.
    proc = spawn([tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
                  "--advertised-listener-url", f"tcp://127.0.0.1:{terminator.port}",
                  "--storage-engine", "memory://tansu/"], tmp_path_factory.mktemp("kafka-tls") / "kafka.log")
    try:
        wait_for_port("127.0.0.1", broker_port, 20, proc)
        yield TlsBroker(terminator, f"127.0.0.1:{terminator.port}")
    finally:
        terminator.close()  # first: Tansu lingers ~5 s on SIGTERM while connections stay open
        stop(proc)


def _tls_settings(broker: TlsBroker, pki: Pki, **update: Any) -> Settings:
    fields: dict[str, Any] = {
        "kafka_bootstrap_servers": broker.bootstrap, "kafka_security_protocol": "SSL",
        "kafka_tls_ca": pki.ca.ca_file, "kafka_tls_cert": pki.client.cert, "kafka_tls_key": pki.client.key,
        "topic_prefix": f"t{uuid.uuid4().hex[:8]}."}
    return Settings(**(fields | update))


def _records(topic: str, n: int, tag: str) -> list[OutRecord]:
    return [OutRecord(topic, f"Patient/{tag}{i}", f'{{"resourceType":"Basic","id":"{tag}{i}"}}'.encode(),
                      fhir_headers("Basic", f"{tag}-{i}", "tls-test")) for i in range(n)]


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_produce_and_consume_over_mutual_tls_with_every_client(tls_broker: TlsBroker, pki: Pki) -> None:
    s = _tls_settings(tls_broker, pki)
    topics = Topics.with_prefix(s.topic_prefix)
    assert topics.observation in create_topics(s, topics, partitions=2, timeout=20)  # kafka-python admin

    sync = FhirProducer(make_producer(s, "tls-sync"))  # kafka-python producer

    async def produce() -> list[BaseException | None]:
        errors = await sync.send_many(_records(topics.observation, 3, "sync"))
        pub = AsyncFhirProducer(s, "tls-async")  # aiokafka producer
        await pub.start()
        try:
            return errors + await pub.send_many(_records(topics.observation, 3, "async"))
        finally:
            await pub.stop()

    try:
        assert asyncio.run(produce()) == [None] * 6
    finally:
        sync.close()

    reader = TopicReader(s)  # kafka-python consumer
    try:
        got = reader.read(topics.observation, at_least=6, timeout=30)
    finally:
        reader.close()
    assert sorted(r.key for r in got) == sorted([f"Patient/sync{i}" for i in range(3)]
                                                + [f"Patient/async{i}" for i in range(3)])

    # A stream worker (care, nlp, imaging) reads them with its own consumer and answers with its producer.
    app = make_stream_app(s, f"carepulse-tls-{uuid.uuid4()}", web_port=free_port(), health=HealthChecks())
    publish = make_publisher(app)
    got_keys: list[bytes | None] = []
    stop_app = asyncio.Event()

    async def collect(key: bytes | None, value: bytes, headers: Headers) -> None:
        await publish(Outgoing(topics.derived, (key or b"").decode(), value, headers))
        got_keys.append(key)
        if len(got_keys) == 6:
            stop_app.set()

    add_handler(app, topics.observation, collect, service="tls-test", deadletter_topic=topics.deadletter,
                source_name="tls-test", publish=publish)

    async def consume() -> int:
        await asyncio.wait_for(app.run(stop_app), 60)
        return len(got_keys)

    assert asyncio.run(consume()) == 6
    reader = TopicReader(s)
    try:
        answered = reader.read(topics.derived, at_least=6, timeout=30)
    finally:
        reader.close()
    assert sorted(r.key for r in answered) == sorted(r.key for r in got)
    assert isinstance(LagMonitor(s).measure(), list)  # kafka-python admin of the lag exporter
    assert tls_broker.terminator.accepted > 0 and tls_broker.terminator.refused == []


def _refused(s: Settings, broker: TlsBroker) -> str:
    """Both libraries fail to connect with ``s``; returns what the terminator saw."""
    before = len(broker.terminator.refused)

    async def aio() -> None:
        pub = AsyncFhirProducer(s, "tls-refused")
        with pytest.raises(AioKafkaError):
            await pub.start()
        with contextlib.suppress(Exception):
            await pub.stop()
    asyncio.run(aio())
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=s.kafka_servers, bootstrap_timeout_ms=2000, **kafka_client_security(s))
    assert len(broker.terminator.refused) > before, "the refusal must happen in the TLS handshake"
    return " ".join(broker.terminator.refused[before:]).lower()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_client_without_a_certificate_is_refused_under_mutual_tls(tls_broker: TlsBroker, pki: Pki) -> None:
    seen = _refused(_tls_settings(tls_broker, pki, kafka_tls_cert=None, kafka_tls_key=None), tls_broker)
    assert "certificate" in seen


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_client_certificate_from_another_ca_is_refused(tls_broker: TlsBroker, pki: Pki) -> None:
    seen = _refused(_tls_settings(tls_broker, pki, kafka_tls_cert=pki.stranger_client.cert,
                                  kafka_tls_key=pki.stranger_client.key), tls_broker)
    assert "certificate" in seen or "unknown ca" in seen


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_broker_certificate_from_an_untrusted_ca_is_refused_by_the_client(tls_broker: TlsBroker, pki: Pki) -> None:
    seen = _refused(_tls_settings(tls_broker, pki, kafka_tls_ca=pki.stranger.ca_file), tls_broker)
    assert "unknown ca" in seen


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_plaintext_client_is_refused(tls_broker: TlsBroker, pki: Pki) -> None:
    plain = Settings(kafka_bootstrap_servers=tls_broker.bootstrap)
    _refused(plain, tls_broker)
