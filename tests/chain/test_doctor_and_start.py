"""What the pool checks before it runs, against the real parts: ``python -m pool doctor`` against the simulated chain's
node and wallet; a start that refuses a target address its wallet does not own; a start without a wallet that serves
farmers and makes the ownership proof once the wallet answers; and the TLS chain a farmer would see."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pool.chain.status import ChainStatus
from pool.chia_adapter import bytes32
from pool.config import PoolConfig, load_config_file
from pool.devnet.pool_config import OPERATOR_HEADERS, world_pool_config, world_pool_document
from pool.devnet.session import free_port
from pool.devnet.world import World
from pool.doctor import Check, run_checks, tls_check
from pool.loops.peak import PeakLoop
from pool.loops.rewards import RewardLoop, proof_holds
from pool.server import StartupError, pool_context, serve
from tests.faults import SilentProxy

REPO = Path(__file__).resolve().parents[2]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def with_target(config: PoolConfig, target: bytes32) -> PoolConfig:
    return dataclasses.replace(config, pool=dataclasses.replace(config.pool, target_puzzle_hash=target))


async def test_doctor_passes_on_the_devnet_and_names_the_key_of_what_fails(world: World, tmp_path: Path) -> None:
    config = world_pool_config(world, store_path=tmp_path / "pool.sqlite", server_port=free_port())
    checks = by_name(await run_checks(config))
    assert all(check.ok for check in checks.values()), [check.line() for check in checks.values()]
    assert set(checks) == {"config", "full node", "wallet", "target address", "store", "port", "tls"}
    assert (
        f"key {world.pool_wallet_fingerprint} signed for {config.pool.target_address}"
        in checks["target address"].detail
    )
    assert "synced at height" in checks["full node"].detail and "no database yet" in checks["store"].detail

    # An address of another key (the farmer's wallet), and the port taken by someone else.
    foreign = with_target(config, await world.farmer_wallet_address())
    with socket.socket() as taken:
        taken.bind((config.server.host, config.server.port))
        taken.listen()
        failing = [check for check in await run_checks(foreign) if not check.ok]
    assert [check.name for check in failing] == ["target address", "port"]
    assert failing[0].detail.startswith("config key 'pool.target_address':") and "has no key" in failing[0].detail
    assert failing[1].detail.startswith("config key 'server.port': cannot listen on")
    assert not (tmp_path / "pool.sqlite").exists()  # the doctor changes nothing


async def test_doctor_on_the_command_line(world: World, tmp_path: Path) -> None:
    """An operator's run: every line printed, exit 0; the same config with a wallet nobody runs fails, exit 1."""
    document = world_pool_document(world, store_path=tmp_path / "pool.sqlite", server_port=free_port())
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(document))
    document["chain"]["wallet"]["rpc_port"] = free_port()
    no_wallet = tmp_path / "no-wallet.yaml"
    no_wallet.write_text(yaml.safe_dump(document))
    results = [await _run_doctor(path) for path in (good, no_wallet)]
    assert results[0].returncode == 0, results[0].stdout + results[0].stderr
    lines = results[0].stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["config", "full", "wallet", "target", "store", "port", "tls"]
    assert all(line.startswith("ok") for line in lines)
    assert results[1].returncode == 1 and "Traceback" not in results[1].stderr
    failed = [line for line in results[1].stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split()[1] for line in failed] == ["wallet", "target"], results[1].stdout


async def test_start_refuses_a_target_address_its_wallet_does_not_own(world: World, tmp_path: Path) -> None:
    """Every reward would be absorbed where the pool cannot pay from: the pool does not start, and names the key."""
    config = with_target(
        world_pool_config(world, store_path=tmp_path / "pool.sqlite", server_port=free_port()),
        await world.farmer_wallet_address(),
    )
    with pytest.raises(StartupError, match=r"config key 'pool\.target_address': .*has no key"):
        async with pool_context(config):
            pytest.fail("the pool started with a target address its wallet does not own")


async def test_without_its_wallet_the_pool_serves_farmers_and_proves_the_target_once_it_answers(
    world: World, tmp_path: Path
) -> None:
    """A wallet resync must not take the farmer API down: the pool starts, answers farmers, says since when the
    wallet is away, absorbs nothing (no ownership proof yet); the wallet comes back where it was, the proof is made."""
    wallet_port = free_port()
    proxy = SilentProxy(world.pool_wallet_rpc.host, world.pool_wallet_rpc.port)  # the wallet, once started
    config = world_pool_config(world, store_path=tmp_path / "pool.sqlite", server_port=free_port())
    config = dataclasses.replace(
        config,
        chain=dataclasses.replace(config.chain, wallet=dataclasses.replace(config.chain.wallet, port=wallet_port)),
    )
    stop = asyncio.Event()
    base = f"http://127.0.0.1:{config.server.port}"
    async with pool_context(config) as ctx, aiohttp.ClientSession() as session:
        serving = asyncio.create_task(serve(ctx, stop, with_loops=False))
        try:
            info = await _first_answer(session, f"{base}/pool_info")
            assert info["target_puzzle_hash"] == "0x" + config.pool.target_puzzle_hash.hex()
            status = await _first_answer(session, f"{base}/status", OPERATOR_HEADERS)
            assert isinstance(status["chain"], dict) and status["chain"]["wallet_unavailable_since"] is not None
            chain_status = ChainStatus()
            peak, rewards = PeakLoop(chain_status), RewardLoop(chain_status)
            await peak.run_once(ctx)
            assert chain_status.node_ready and not chain_status.wallet_synced
            assert (await rewards.run_once(ctx)).waiting_for_proof
            assert await ctx.store.target_proof(config.pool.target_puzzle_hash) is None

            await proxy.start(wallet_port)  # the wallet is back
            await peak.run_once(ctx)
            assert chain_status.wallet_synced
            assert not (await rewards.run_once(ctx)).waiting_for_proof
            proof = await ctx.store.target_proof(config.pool.target_puzzle_hash)
            assert proof is not None and proof_holds(proof) and proof.fingerprint == world.pool_wallet_fingerprint
            status = await _first_answer(session, f"{base}/status", OPERATOR_HEADERS)
            assert isinstance(status["chain"], dict) and status["chain"]["wallet_unavailable_since"] is None
        finally:
            stop.set()
            await serving
            await proxy.stop()


async def _first_answer(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> dict[str, object]:
    for _ in range(100):
        try:
            async with session.get(url, headers=headers) as response:
                assert response.status == 200
                return dict(await response.json())
        except aiohttp.ClientConnectorError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


# --- TLS: the chain a farmer's client verifies ------------------------------------------------------------------------


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None, ca: bool
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("pool.example")]), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(certificate.public_bytes(serialization.Encoding.PEM) for certificate in certificates)


async def test_doctor_checks_the_tls_chain_as_a_farmer_would(tmp_path: Path) -> None:
    """A certificate served without its intermediate verifies in a browser that cached the intermediate, and fails
    in every farmer: the doctor's handshake finds it; the full chain passes against its CA, and a private CA does
    not pass against the public CAs chia's farmer trusts."""
    root_key, middle_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _certificate("test root CA", root_key, None, ca=True)
    middle = _certificate("test intermediate CA", middle_key, ("test root CA", root_key), ca=True)
    leaf = _certificate("pool.example", leaf_key, ("test intermediate CA", middle_key), ca=False)
    (tmp_path / "root.pem").write_bytes(_pem(root))
    (tmp_path / "leaf-only.pem").write_bytes(_pem(leaf))
    (tmp_path / "full-chain.pem").write_bytes(_pem(leaf, middle))
    (tmp_path / "pool.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    base = load_config_file(REPO / "config.yaml")

    def serving(cert: str) -> PoolConfig:
        server = dataclasses.replace(base.server, tls_cert=tmp_path / cert, tls_key=tmp_path / "pool.key")
        return dataclasses.replace(base, server=server)

    ok, detail = await tls_check(serving("leaf-only.pem"), tmp_path / "root.pem")
    assert not ok and detail.startswith("config key 'server.tls_cert':") and "does not verify" in detail
    ok, detail = await tls_check(serving("full-chain.pem"), tmp_path / "root.pem")
    assert ok, detail
    ok, detail = await tls_check(serving("full-chain.pem"), None)
    assert not ok and "does not verify" in detail
    ok, detail = await tls_check(serving("missing.pem"), None)
    assert not ok and "cannot load" in detail
    ok, detail = await tls_check(base, None)
    assert ok and detail.startswith("not set")


async def _run_doctor(config_path: Path) -> subprocess.CompletedProcess[str]:
    """The doctor in its own process; awaited, so the devnet in this process goes on answering it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pool",
        "doctor",
        "--config",
        str(config_path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return subprocess.CompletedProcess(config_path.name, process.returncode, stdout.decode(), stderr.decode())
