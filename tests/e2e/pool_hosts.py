"""Several pool hosts on one machine: separate ``python -m pool`` processes, each on its own port with one worker,
sharing one PostgreSQL store, and a round-robin TCP load balancer (pool/devnet/balancer.py) in front of them on the
farmer's pool URL. Each host gets the same config an operator gives every host; only ``server.port`` differs (on one
machine two hosts cannot share it).

The per-process Prometheus counters (GET /metrics) tell what each host did itself: partials it accepted, loop
iterations it ran.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pool.devnet.balancer import Backend, RoundRobinBalancer
from pool.devnet.pool_config import OPERATOR_HEADERS
from pool.devnet.session import free_port
from pool.store.postgres import PostgresPoolStore

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT = 60.0  # importing chia and connecting to the node and the wallet take a few seconds


@dataclass
class PoolHost:
    port: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path, params=params) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.post(self.url + path, json=body) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of this process's samples of ``name`` whose labels include ``labels`` (0 when there are none)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + "/metrics", headers=OPERATOR_HEADERS) as response,
        ):
            assert response.status == 200, await response.text()
            text = await response.text()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    async def wait_listening(self) -> None:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            if self.process.returncode is not None:
                raise AssertionError(f"pool host on port {self.port} exited with {self.process.returncode}")
            try:
                await self.get("/pool_info")
                return
            except aiohttp.ClientError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        await self.process.wait()


@dataclass
class PoolHosts:
    hosts: list[PoolHost]
    store: PostgresPoolStore  # the shared store, for the test's own reads
    _stack: AsyncExitStack
    balancer: RoundRobinBalancer | None = None

    async def balance(self, port: int) -> RoundRobinBalancer:
        """Start the round-robin balancer in front of the hosts on ``port`` (stopped with the hosts)."""
        balancer = RoundRobinBalancer(HOST, port, [Backend(HOST, host.port) for host in self.hosts])
        await balancer.start()
        self._stack.push_async_callback(balancer.stop)
        self.balancer = balancer
        return balancer


def host_config(shared_config: Path, port: int) -> Path:
    """The shared config with this host's port and one worker, written beside it."""
    document = yaml.safe_load(shared_config.read_text())
    document["server"]["port"] = port
    document["server"]["workers"] = 1
    path = shared_config.with_name(f"host-{port}.yaml")
    path.write_text(yaml.safe_dump(document))
    return path


async def start_host(shared_config: Path) -> PoolHost:
    port = free_port()
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    command = [sys.executable, "-m", "pool", "--config", str(host_config(shared_config, port))]
    process = await asyncio.create_subprocess_exec(*command, cwd=REPO, env=env)
    return PoolHost(port, process)


@asynccontextmanager
async def pool_hosts(shared_config: Path, count: int, dsn: str) -> AsyncIterator[PoolHosts]:
    """``count`` pool hosts, listening once entered; all stopped (and the balancer, if started) on exit."""
    async with AsyncExitStack() as stack:
        hosts: list[PoolHost] = []
        for _ in range(count):
            host = await start_host(shared_config)
            stack.push_async_callback(host.stop)
            hosts.append(host)
        await asyncio.gather(*(host.wait_listening() for host in hosts))
        store = PostgresPoolStore(dsn, max_connections=2)
        await store.open()
        stack.push_async_callback(store.close)
        yield PoolHosts(hosts, store, stack)
