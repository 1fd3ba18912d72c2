"""The processes the benchmark starts: the full node on the corpus's chain, and the pool exactly as an operator runs it
(``python -m pool --config <file>``), each in its own process so that its CPU and memory are measured apart."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from pool.bench.corpus import DIFFICULTY
from pool.bench.node import PREFIX
from pool.chia_adapter import bytes32
from pool.devnet.pool_config import devnet_pool_document
from pool.devnet.session import free_port

START_TIMEOUT = 300.0  # the node re-adds the whole recorded chain before it is ready


@dataclass(frozen=True)
class NodeEndpoints:
    node_host: str
    node_port: int
    node_root: Path
    wallet_host: str
    wallet_port: int
    wallet_root: Path
    wallet_fingerprint: int
    network: str


class NodeProcess:
    """``python -m pool.bench.node``: chia's simulator node on the recorded chain, told each event over stdin."""

    def __init__(self, process: asyncio.subprocess.Process, endpoints: NodeEndpoints) -> None:
        self.process = process
        self.endpoints = endpoints
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, corpus_path: Path, work_dir: Path, log_path: Path) -> NodeProcess:
        process, ready = await start_answering(
            "pool.bench.node", [str(corpus_path), str(work_dir)], log_path, PREFIX, START_TIMEOUT
        )
        if not ready.startswith("ready "):
            raise RuntimeError(f"the bench node did not start: {ready} (see {log_path})")
        document = json.loads(ready.removeprefix("ready "))
        node_host, node_port, node_root = document["node"]
        wallet_host, wallet_port, wallet_root = document["wallet"]
        endpoints = NodeEndpoints(
            node_host,
            int(node_port),
            Path(node_root),
            wallet_host,
            int(wallet_port),
            Path(wallet_root),
            int(document["wallet_fingerprint"]),
            document["network"],
        )
        return cls(process, endpoints)

    async def announce(self, event: int) -> float:
        """Have the node announce corpus event ``event``; returns the node's CPU seconds spent on it."""
        async with self._lock:
            assert self.process.stdin is not None
            self.process.stdin.write(f"event {event}\n".encode())
            await self.process.stdin.drain()
            answer = await read_answer(self.process, PREFIX)
        words = answer.split()
        if words[:2] != ["ok", str(event)]:
            raise RuntimeError(f"the bench node failed to announce event {event}: {answer}")
        return float(words[2])

    async def stop(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(b"quit\n")
                await self.process.stdin.drain()
                await asyncio.wait_for(self.process.wait(), 60)
            except (OSError, TimeoutError):
                self.process.kill()
                await self.process.wait()


async def start_answering(
    module: str, arguments: list[str], log_path: Path, prefix: str, timeout: float
) -> tuple[asyncio.subprocess.Process, str]:
    """``python -m module arguments`` with pipes for stdin and stdout (stderr to ``log_path``), and its first
    answer (killed if none comes within ``timeout``)."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *arguments,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    try:
        return process, await asyncio.wait_for(read_answer(process, prefix), timeout)
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise


async def read_answer(process: asyncio.subprocess.Process, prefix: str) -> str:
    """The next line that starts with ``prefix`` (chia may print other lines on stdout), without it."""
    assert process.stdout is not None
    while True:
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError(f"the process exited (status {await process.wait()})")
        text = line.decode().strip()
        if text.startswith(prefix + " "):
            return text.removeprefix(prefix + " ")


def pool_document(
    endpoints: NodeEndpoints, run_dir: Path, target_puzzle_hash: bytes32, *, workers: int, store: dict[str, Any]
) -> dict[str, Any]:
    """The pool's configuration: the devnet's, pointed at the bench node, on an empty store.

    Every farmer keeps the bench's difficulty (a partial target far above what the bench sends keeps the difficulty
    loop at the minimum), so every corpus proof is good enough.
    """
    document = devnet_pool_document(
        network=endpoints.network,
        target_puzzle_hash=target_puzzle_hash,
        node_host=endpoints.node_host,
        node_port=endpoints.node_port,
        node_root=endpoints.node_root,
        wallet_host=endpoints.wallet_host,
        wallet_port=endpoints.wallet_port,
        wallet_root=endpoints.wallet_root,
        wallet_fingerprint=endpoints.wallet_fingerprint,
        store_path=run_dir / "pool.sqlite",
        server_port=free_port(),
    )
    document["difficulty"] = {
        "minimum": DIFFICULTY,
        "default": DIFFICULTY,
        "number_of_partials_target": 1_000_000_000,
        "time_target": 86400,
    }
    # The loops, reward collection and payouts at the pool's default intervals, as an operator runs it (the
    # devnet's are short for tests): their work is counted in the pool's CPU per partial and the node's. The
    # confirmation delay stays the devnet's 2 s.
    del document["loops"]
    del document["rewards"]["collect_interval"]
    del document["payouts"]["interval"]
    document["store"] = store
    document["server"]["workers"] = workers
    document["logging"] = {"level": "WARNING"}
    # The budgets of requests that prove nothing (failed signatures, PlotNFT look-ups and walks of unproven
    # requests, refused requests before a cool-down) at the pool's defaults, as an operator runs it: honest farmers
    # never spend them, and the attack phase's attackers (pool.bench.attacks) meet them as they would meet an
    # operator's pool (the devnet's are scaled up for its tests).
    budgets = ("failed_signatures", "failed_signatures_per_address", "launcher_lookups", "singleton_walks")
    for budget in (*budgets, "refused_requests"):
        del document["limits"][budget]
    return document


class PoolProcess:
    """The pool as an operator starts it; stopped with SIGTERM."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, config_path: Path, port: int, log_path: Path) -> PoolProcess:
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pool", "--config", str(config_path), stdout=log, stderr=log
            )
        pool = cls(process, f"http://127.0.0.1:{port}")
        try:
            await pool._wait_listening(log_path)
        except BaseException:
            await pool.stop()
            raise
        return pool

    async def _wait_listening(self, log_path: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    tail = await asyncio.to_thread(log_path.read_text, errors="replace")
                    tail = tail[-2000:]
                    raise RuntimeError(f"the pool exited with status {self.process.returncode}:\n{tail}")
                if await answers_ok(session, f"{self.url}/pool_info"):
                    return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"the pool did not listen within {START_TIMEOUT} s (see {log_path})")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def write_pool_config(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))


async def answers_ok(session: aiohttp.ClientSession, url: str) -> bool:
    """Whether ``url`` answers 200 now (False while nothing listens there yet)."""
    try:
        async with session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False
