"""A real Prometheus server (Debian's ``prometheus`` package, installed by ``make prometheus``) scraping a pool every
second, with the pool's alert rules loaded, asked through its HTTP API."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import yaml

from pool.bench.processes import answers_ok
from pool.devnet.pool_config import DEVNET_OPERATOR_TOKEN
from pool.devnet.session import free_port

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
READY_WITHIN = 60.0  # a hang guard: Prometheus is ready in a second or two


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    async def api(self, path: str, **params: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/api/v1/{path}", params=params) as got:
            answer = await got.json()
        assert answer["status"] == "success", answer
        return answer["data"]

    async def sample(self, query: str, at: float | None = None) -> tuple[float, float] | None:
        """The instant query's one value now (or ``at``), with the time it was evaluated at (None: no series)."""
        params = {"query": query} if at is None else {"query": query, "time": f"{at:.3f}"}
        result = (await self.api("query", **params))["result"]
        assert len(result) <= 1, result
        return (float(result[0]["value"][0]), float(result[0]["value"][1])) if result else None

    async def value(self, query: str, at: float | None = None) -> float | None:
        sample = await self.sample(query, at)
        return None if sample is None else sample[1]

    async def values(self, query: str, start: float, end: float) -> list[float]:
        """The query's one series from ``start``, one value a second until ``end`` (the last may be up to a second
        before it)."""
        data = await self.api("query_range", query=query, start=f"{start:.3f}", end=f"{end:.3f}", step="1")
        (series,) = data["result"]
        return [float(value) for _, value in series["values"]]


@asynccontextmanager
async def prometheus_scraping(target: str, work_dir: Path) -> AsyncIterator[Prometheus]:
    """Prometheus scraping ``target`` (host:port, GET /metrics) every second as job "pool"."""
    binary = shutil.which("prometheus")
    assert binary is not None, (
        "Debian's prometheus is not installed: run `make prometheus` (apt-get install prometheus)"
    )
    config = _write_config(target, work_dir)
    log = _log_file(work_dir)
    address = f"127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={work_dir / 'data'}",
        f"--web.listen-address={address}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    try:
        await _ready(f"http://{address}", process)
        yield Prometheus(f"http://{address}")
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        log.close()


def _write_config(target: str, work_dir: Path) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ALERTS)],
                "scrape_configs": [
                    {
                        "job_name": "pool",
                        "static_configs": [{"targets": [target]}],
                        # The devnet pool's operator endpoints want its token, as a real pool's do.
                        "authorization": {"credentials": DEVNET_OPERATOR_TOKEN},
                    }
                ],
            }
        )
    )
    return config


def _log_file(work_dir: Path) -> BinaryIO:
    return (work_dir / "prometheus.log").open("wb")


async def _ready(url: str, process: asyncio.subprocess.Process) -> None:
    ends = time.monotonic() + READY_WITHIN
    async with aiohttp.ClientSession() as session:
        while True:
            assert process.returncode is None, "prometheus exited; see prometheus.log in the test's directory"
            if await answers_ok(session, f"{url}/-/ready"):
                return
            assert time.monotonic() < ends, "prometheus did not get ready"
            await asyncio.sleep(0.2)
