"""The address pinning relay relies on, over real TLS on 127.0.0.1.

relay refuses loopback unless it is allow-listed, and allow-listed hosts are not pinned, so
these tests drive the very request relay sends for a pinned hop (`pin` + `request_for`)
straight through httpx against a TLS server whose certificate names only `media.test`: the
certificate is checked against the name, not the IP, and a connection made for one name is
never reused for another.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from storage._urlsafety import pin
from storage.relay import request_for


@dataclass
class Pki:
    ca_pem: bytes
    cert_file: Path
    key_file: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("test ca")).issuer_name(_name("test ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("media.test")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("media.test")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("pki")
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return Pki(ca.public_bytes(serialization.Encoding.PEM), directory / "cert.pem",
               directory / "key.pem")


@pytest.fixture
async def port(pki: Pki) -> AsyncIterator[int]:
    async def video(request: web.Request) -> web.Response:
        return web.Response(body=request.host.encode(), content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/v.mp4", video)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(pki.cert_file, pki.key_file)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl).start()
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.fixture
async def client(pki: Pki) -> AsyncIterator[httpx.AsyncClient]:
    trust = ssl.create_default_context(cadata=pki.ca_pem.decode())
    async with httpx.AsyncClient(verify=trust, trust_env=False) as http:
        yield http


async def fetch(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.send(request_for(pin(httpx.URL(url), "127.0.0.1"), client))


async def test_pinned_request_verifies_the_certificate_against_the_name(
    client: httpx.AsyncClient, port: int,
) -> None:
    response = await fetch(client, f"https://media.test:{port}/v.mp4")
    assert response.status_code == 200
    assert response.content == f"media.test:{port}".encode()  # the Host header kept the name


async def test_pinned_request_for_another_name_fails_the_certificate_check(
    client: httpx.AsyncClient, port: int,
) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await fetch(client, f"https://evil.test:{port}/v.mp4")


async def test_a_pinned_connection_is_not_reused_for_another_name(
    client: httpx.AsyncClient, port: int,
) -> None:
    assert (await fetch(client, f"https://media.test:{port}/v.mp4")).status_code == 200
    # Were the first connection (to 127.0.0.1, verified for media.test) kept alive, httpx
    # would hand it to this request too and skip the certificate check for evil.test.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await fetch(client, f"https://evil.test:{port}/v.mp4")
