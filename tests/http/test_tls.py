"""TLS in the pool itself (server.tls_cert / server.tls_key): the pool's real start-up and serve path, with a
certificate made here with the `cryptography` package, asked over HTTPS by a client that trusts only that
certificate. Plain HTTP to the TLS port gets no answer."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import logging
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pool.devnet.pool_config import world_pool_config
from pool.devnet.session import free_port
from pool.devnet.world import World
from pool.server import pool_context, serve


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pool test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "pool.crt", directory / "pool.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_pool_serves_https_with_its_own_certificate(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    config = world_pool_config(world, store_path=tmp_path / "pool.sqlite", server_port=port)
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, tls_cert=cert, tls_key=key))
    stop = asyncio.Event()
    trusting = ssl.create_default_context(cafile=str(cert))
    async with pool_context(config) as ctx:
        serving = asyncio.create_task(serve(ctx, stop, with_loops=False))
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
                info = await _first_answer(session, f"https://127.0.0.1:{port}/pool_info")
                assert info["name"] == config.pool.name
                assert info["target_puzzle_hash"] == "0x" + config.pool.target_puzzle_hash.hex()
                # A client that trusts only the public CAs refuses the certificate (as chia's farmer would).
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await session.get(f"https://127.0.0.1:{port}/pool_info", ssl=ssl.create_default_context())
                # Plain HTTP to the TLS port: no HTTP answer at all.
                with caplog.at_level(logging.DEBUG), pytest.raises(aiohttp.ClientError):
                    await session.get(f"http://127.0.0.1:{port}/pool_info")
        finally:
            stop.set()
            await serving
    # ... and leaves no traceback in the pool's log.
    assert not [r for r in caplog.records if r.name.startswith(("pool", "aiohttp", "asyncio")) and r.exc_info]


async def _first_answer(session: aiohttp.ClientSession, url: str) -> dict[str, object]:
    """GET ``url`` once the server listens (serve() was just started in this loop)."""
    for _ in range(100):
        try:
            async with session.get(url) as response:
                assert response.status == 200
                return dict(await response.json())
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc, aiohttp.ClientConnectorCertificateError):
                raise
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")
