"""SIGHUP to a running ``python -m pool`` on the session's chain, with built-in TLS, while partials flow: the log
level, the operator token, the rate limits and the certificate change in place; the fee, which cannot change at run
time, is named and kept; every partial sent meanwhile is answered and stored. An invalid file then is refused and the
pool runs on. The operator's loopback listener answers without a token, the farmers' listener only with one."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from pool.chia_adapter import AugSchemeMPL, bytes32, encode_puzzle_hash, std_hash
from pool.config import load_config_file
from pool.devnet.pool_config import world_pool_document
from pool.devnet.session import free_port
from pool.devnet.world import World
from pool.protocol.auth import current_authentication_token
from pool.store.factory import create_store
from tests.http.farmer_requests import fresh_proofs, partial_body, post_farmer_body, shared_plotnft
from tests.http.test_tls import self_signed_certificate

REPO = Path(__file__).resolve().parents[2]
OLD_TOKEN, NEW_TOKEN = "o" * 24, "n" * 24


def trusting(*certificates: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for certificate in certificates:
        context.load_verify_locations(cafile=str(certificate))
    return context


async def until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.1)


async def get_status(url: str, context: ssl.SSLContext | None, token: str | None = None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context if context is not None else False)) as s,
        s.get(url, headers=headers) as response,
    ):
        return response.status


async def start_pool(config_path: Path, log_path: Path) -> asyncio.subprocess.Process:
    """``python -m pool --config config_path``, its log lines in ``log_path``."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool", "--config", str(config_path), cwd=REPO, env=env, stderr=log
        )


async def test_sighup_reloads_in_place_while_partials_flow(world: World, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    renewed = tmp_path / "renewed"
    renewed.mkdir()
    new_cert, new_key = self_signed_certificate(renewed)
    first_cert = shutil.copyfile(cert, tmp_path / "first.crt")
    port, operator_port = free_port(), free_port()
    document = world_pool_document(world, store_path=tmp_path / "pool.sqlite", server_port=port)
    document["server"].update(
        tls_cert=str(cert),
        tls_key=str(key),
        operator_token=OLD_TOKEN,
        operator_listen=f"127.0.0.1:{operator_port}",
    )
    document["logging"]["level"] = "WARNING"
    config_path, log_path = tmp_path / "config.yaml", tmp_path / "pool.log"
    config_path.write_text(yaml.safe_dump(document))
    config = load_config_file(config_path)
    base, operator = f"https://127.0.0.1:{port}", f"http://127.0.0.1:{operator_port}"

    process = await start_pool(config_path, log_path)

    def log_text() -> str:
        return log_path.read_text()

    async def listening() -> bool:
        assert process.returncode is None, log_text()
        try:
            return await get_status(f"{base}/pool_info", trusting(first_cert)) == 200
        except aiohttp.ClientConnectionError:
            return False

    # The partials' session trusts both certificates: its connection may be opened again after the renewal.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting(first_cert, new_cert)))
    replies: list[dict[str, Any]] = []
    flowing = asyncio.Event()
    try:
        await until(listening, "the pool listens", within=120.0)
        assert " INFO " not in log_text()  # logging.level WARNING

        plotnft, plots = await shared_plotnft(world, "health")
        auth_sk = AugSchemeMPL.key_gen(std_hash(b"reload"))

        def token() -> int:
            return current_authentication_token(int(time.time()), config.pool.authentication_token_timeout)

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with session.post(f"{base}{path}", json=body) as response:
                assert response.status == 200, await response.text()
                reply: dict[str, Any] = await response.json()
                return reply

        payout = encode_puzzle_hash(bytes32(std_hash(b"reload payout")), "txch")
        joined = await post("/farmer", post_farmer_body(plotnft, auth_sk, token(), payout))
        assert "welcome_message" in joined, joined

        async def send_partials() -> None:
            while flowing.is_set():
                sp, found = await fresh_proofs(world, plots)
                replies.append(
                    await post("/partial", partial_body(plotnft.launcher_id, token(), found[0], sp, auth_sk))
                )

        flowing.set()
        sending = asyncio.create_task(send_partials())
        assert await get_status(f"{base}/status", trusting(first_cert), OLD_TOKEN) == 200
        assert await get_status(f"{base}/metrics", trusting(first_cert)) == 401
        assert await get_status(f"{operator}/metrics", None) == 200  # the loopback listener: no token
        await until(lambda: _at_least(replies, 2), "partials before the reload")

        document["logging"]["level"] = "INFO"
        document["server"]["operator_token"] = NEW_TOKEN
        document["limits"]["per_launcher"] = {"rate": 50, "burst": 500}
        document["pool"]["fee"] = "0.02"
        config_path.write_text(yaml.safe_dump(document))
        shutil.copyfile(new_cert, cert)  # the renewal writes over the files the config names
        shutil.copyfile(new_key, key)
        sent_before = len(replies)
        os.kill(process.pid, signal.SIGHUP)
        await until(lambda: _logged(log_path, "reloaded "), "the reload's line")
        await until(lambda: _at_least(replies, sent_before + 2), "partials after the reload")
        flowing.clear()
        await sending

        text = log_text()
        assert "config key 'pool.fee' changed but cannot change at run time" in text
        assert "TLS certificate loaded from" in text
        assert " INFO " in text  # the level was lowered to INFO
        # New connections get the renewed certificate; the old one is no longer presented.
        assert await get_status(f"{base}/pool_info", trusting(new_cert)) == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get_status(f"{base}/pool_info", trusting(first_cert))
        assert await get_status(f"{base}/status", trusting(new_cert), OLD_TOKEN) == 401
        assert await get_status(f"{base}/status", trusting(new_cert), NEW_TOKEN) == 200
        async with session.get(f"{base}/pool_info") as response:
            assert (await response.json())["fee"] == "0.01"  # kept until a restart

        document["pool"]["fee"] = "lots"
        config_path.write_text(yaml.safe_dump(document))
        os.kill(process.pid, signal.SIGHUP)
        await until(lambda: _logged(log_path, "refused, the pool runs on unchanged: config key 'pool.fee'"), "refusal")
        assert await get_status(f"{base}/status", trusting(new_cert), NEW_TOKEN) == 200
        assert process.returncode is None
    finally:
        flowing.clear()
        await session.close()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 90) == 0, log_text()

    # Every partial was answered as accepted, and each one is in the store: none dropped by the reloads.
    assert replies and all("new_difficulty" in reply for reply in replies), replies
    store = create_store(config.store)
    await store.open()
    try:
        assert len(await store.recent_partials(plotnft.launcher_id, since=0)) == len(replies)
    finally:
        await store.close()


async def _at_least(replies: list[dict[str, Any]], count: int) -> bool:
    return len(replies) >= count


async def _logged(path: Path, words: str) -> bool:
    return words in await asyncio.to_thread(path.read_text)


async def test_the_supervisor_passes_sighup_to_every_worker(world: World, tmp_path: Path) -> None:
    """Two workers share the port: after SIGHUP to the supervisor, whichever worker a new connection reaches has the
    new token."""
    port = free_port()
    document = world_pool_document(world, store_path=tmp_path / "pool.sqlite", server_port=port)
    document["server"].update(workers=2, operator_token=OLD_TOKEN)
    config_path, log_path = tmp_path / "config.yaml", tmp_path / "pool.log"
    config_path.write_text(yaml.safe_dump(document))
    process = await start_pool(config_path, log_path)
    url = f"http://127.0.0.1:{port}/status"

    async def both_workers_listen() -> bool:
        assert process.returncode is None, log_path.read_text()
        try:
            await get_status(url, None, OLD_TOKEN)
        except aiohttp.ClientConnectionError:
            return False
        return (await asyncio.to_thread(log_path.read_text)).count(" pool.server: pool 'Devnet Pool' listening on") == 2

    try:
        await until(both_workers_listen, "both workers listen", within=120.0)
        document["server"]["operator_token"] = NEW_TOKEN
        config_path.write_text(yaml.safe_dump(document))
        os.kill(process.pid, signal.SIGHUP)

        async def reloaded_everywhere() -> bool:
            text = await asyncio.to_thread(log_path.read_text)
            return text.count(" pool.reload: reloaded ") == 3  # the supervisor and both workers

        await until(reloaded_everywhere, "the supervisor and both workers reloaded")
        # Each request on a connection of its own: the kernel spreads them over both workers.
        assert {await get_status(url, None, NEW_TOKEN) for _ in range(8)} == {200}
        assert {await get_status(url, None, OLD_TOKEN) for _ in range(8)} == {401}
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 90) == 0, log_path.read_text()
