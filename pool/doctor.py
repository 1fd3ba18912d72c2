"""``python -m pool doctor``: every check an operator wants before (or while) running the pool, one line each.

It changes nothing: it reads the configuration and the files it names, asks the node and the wallet, reads the store's
schema version without migrating it, tries to bind the port and, when TLS is set, makes a TLS handshake with the
configured certificate against the public CAs chia's farmer trusts. The wallet is asked to sign a message with the
target address's key (the proof the pool records before it absorbs anything), but nothing is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pool import preflight
from pool.chain.interface import AddressNotOwned, ChainUnavailable
from pool.chain.ownership import ownership_message, signed_for_target
from pool.config import PoolConfig, RpcConfig
from pool.store.abstract import StoreError
from pool.store.factory import peek_schema_version, schema_version_of_this_code
from pool.store.sqlite import database_bytes

if TYPE_CHECKING:
    from pool.chain.wallet_rpc import WalletRpc

CHECK_TIMEOUT = 30.0  # seconds any one check may take


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name:<15} {self.detail}"


async def run_checks(config: PoolConfig, trusted_cas: Path | None = None) -> list[Check]:
    """Every check, in the order a pool starts (config, chia root, node, wallet, target address, store, port,
    TLS); a check that cannot run because an earlier one failed says so."""
    checks = [Check("config", True, f"network {config.chain.network}, pool '{config.pool.name}'")]
    problems = preflight.problems(config)
    checks += [Check("config", False, str(problem)) for problem in problems]
    roots_ok = not preflight.chia_root_problems(config)
    checks.append(await _timed("full node", _node_check(config) if roots_ok else _skipped("the chia root")))
    checks.append(await _timed("wallet", _wallet_check(config) if roots_ok else _skipped("the chia root")))
    checks.append(await _timed("target address", _target_check(config) if roots_ok else _skipped("the chia root")))
    checks.append(await _timed("store", _store_check(config)))
    checks.append(_port_check(config))
    checks.append(await _timed("tls", tls_check(config, trusted_cas)))
    return checks


async def _timed(name: str, check: Awaitable[tuple[bool, str]]) -> Check:
    try:
        ok, detail = await asyncio.wait_for(check, CHECK_TIMEOUT)
    except TimeoutError:
        ok, detail = False, f"no answer within {CHECK_TIMEOUT:.0f} s"
    return Check(name, ok, detail)


async def _skipped(what: str) -> tuple[bool, str]:
    return False, f"not checked: {what} failed above"


async def _node_check(config: PoolConfig) -> tuple[bool, str]:
    """Every configured full node (chain.full_node, then chain.full_nodes): each must be fit to take over."""
    answers = [await _one_node_check(config, rpc) for rpc in config.chain.full_nodes]
    return all(ok for ok, _ in answers), "; ".join(detail for _, detail in answers)


async def _one_node_check(config: PoolConfig, rpc: RpcConfig) -> tuple[bool, str]:
    from pool.chain.node_rpc import RpcFullNode
    from pool.server import StartupError, check_same_network, network_constants

    try:
        node = await RpcFullNode.connect(rpc)
    except ChainUnavailable as exc:
        return False, str(exc)
    try:
        await check_same_network(node, network_constants(config), config.chain.network)
        peak = await node.peak()
    except (ChainUnavailable, StartupError) as exc:
        return False, str(exc)
    finally:
        await node.close()
    if not peak.synced:
        return (
            False,
            f"{rpc.host}:{rpc.port} answers on {config.chain.network} but is not synced (height {peak.height})",
        )
    return True, f"{rpc.host}:{rpc.port}, {config.chain.network}, synced at height {peak.height}"


async def _wallet_check(config: PoolConfig) -> tuple[bool, str]:
    async with _wallet(config) as (wallet, failure):
        if wallet is None:
            return False, failure
        try:
            synced = await wallet.synced()
        except ChainUnavailable as exc:
            return False, str(exc)
    where = f"{config.chain.wallet.host}:{config.chain.wallet.port}"
    return (True, f"{where}, synced") if synced else (False, f"{where} answers but is not synced")


async def _target_check(config: PoolConfig) -> tuple[bool, str]:
    pool = config.pool
    async with _wallet(config) as (wallet, failure):
        if wallet is None:
            return False, f"not checked: {failure}"
        try:
            signed = await signed_for_target(
                wallet,
                pool.target_puzzle_hash,
                pool.target_address,
                ownership_message(pool.name, pool.target_address, 0),
            )
        except AddressNotOwned as exc:
            return False, f"config key 'pool.target_address': {exc}"
        except ChainUnavailable as exc:
            return False, str(exc)
    return True, f"the wallet's key {signed.fingerprint} signed for {pool.target_address}"


@contextlib.asynccontextmanager
async def _wallet(config: PoolConfig) -> AsyncIterator[tuple[WalletRpc | None, str]]:
    from pool.chain.wallet_rpc import WalletRpc

    try:
        wallet = await WalletRpc.connect(config.chain)
    except ChainUnavailable as exc:
        yield None, str(exc)
        return
    try:
        yield wallet, ""
    finally:
        await wallet.close()


async def _store_check(config: PoolConfig) -> tuple[bool, str]:
    where = str(config.store.path) if config.store.backend == "sqlite" else str(config.store.dsn)
    try:
        found = await peek_schema_version(config.store)
    except StoreError as exc:
        return False, str(exc)
    wanted = schema_version_of_this_code(config.store)
    if found is None:
        return True, f"{config.store.backend} {where}: no database yet (the pool creates it when it starts)"
    if found > wanted:
        return False, f"{where} is at schema version {found}, newer than this pool's {wanted}: upgrade the pool"
    if found < wanted:
        detail = f"{config.store.backend} {where} at schema version {found} (the pool migrates it to {wanted})"
    else:
        detail = f"{config.store.backend} {where} at schema version {found}"
    return True, detail + _store_size_note(config)


def _store_size_note(config: PoolConfig) -> str:
    """For an SQLite store larger than the machine's memory, what that costs. Measured (docs/performance.md): with
    30 days of 10 000 farmers (27 GiB on a 24 GiB machine) the reads of all but the newest partials went to the disk,
    and the partials' latency and the pool's CPU a partial moved far more from run to run than on a store that fits."""
    if config.store.backend != "sqlite":
        return ""
    size = database_bytes(config.store.path)
    memory = machine_memory()
    if memory is None or size <= memory:
        return ""
    return (
        f"; {size / 2**30:.1f} GiB, more than this machine's memory ({memory / 2**30:.1f} GiB): much of it is read "
        "from the disk; a shorter partials.retention_days (partials kept row by row) keeps the store smaller"
    )


def machine_memory() -> int | None:
    """The machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _port_check(config: PoolConfig) -> Check:
    """The farmers' port, and the operator's (server.operator_listen) when set: free to listen on."""
    listeners = [("server.port", config.server.host, config.server.port)]
    if config.server.operator_listen is not None:
        listeners.append(("server.operator_listen", *config.server.operator_listen))
    for key, host, port in listeners:
        try:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
        except OSError as exc:
            return Check("port", False, f"config key '{key}': cannot listen on {host}:{port}: {exc.strerror or exc}")
    return Check("port", True, " and ".join(f"{host}:{port}" for _, host, port in listeners) + " free")


async def tls_check(config: PoolConfig, trusted_cas: Path | None) -> tuple[bool, str]:
    """The certificate chain the pool would serve, checked by a real handshake against the public CAs chia's
    farmer trusts (Mozilla's bundle): a missing intermediate fails here, as it would for every farmer."""
    cert, key = config.server.tls_cert, config.server.tls_key
    if cert is None or key is None:
        return True, "not set (a reverse proxy terminates TLS, or a test network without it)"
    from pool.chia_adapter import mozilla_ca_bundle

    try:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        return False, f"config key 'server.tls_cert': cannot load {cert} with {key}: {exc}"
    client = ssl.create_default_context(cafile=str(trusted_cas or mozilla_ca_bundle()))
    client.check_hostname = False  # the name is the proxy's or DNS's business; the chain is what is checked here
    try:
        await _handshake(server, client)
    except (OSError, ssl.SSLError) as exc:
        return False, f"config key 'server.tls_cert': the chain in {cert} does not verify: {exc}"
    against = "the given CAs" if trusted_cas else "Mozilla's CA bundle"
    return True, f"{cert}: the chain verifies against {against}"


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listening = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    try:
        port = listening.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    finally:
        listening.close()
        await listening.wait_closed()


def print_checks(checks: list[Check], write: Callable[[str], None] = print) -> bool:
    for check in checks:
        write(check.line())
    return all(check.ok for check in checks)
