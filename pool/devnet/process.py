"""The devnet with the pool run as an operator runs it: ``python -m pool --config <work dir>/pool/config.yaml``.

For the end-to-end tests that stop, kill or multiply the pool's processes: the chain, the wallets and the real farmer
stay in this process, the pool is a child process reading a config file written from the devnet's pool document. The
test reads the pool's state through a store of its own on the same database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from pool.chia_adapter import bytes32
from pool.config import PoolConfig, parse_config
from pool.devnet.pool_config import world_pool_document
from pool.devnet.session import Devnet, free_port
from pool.store.abstract import AbstractPoolStore
from pool.store.factory import create_store

# Where `python -m pool` is run from: the repository (or any folder: the package is installed).
REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 90.0  # seconds for the pool to exit on SIGTERM (it closes connections, at most 60 s)
START_TIMEOUT = 120.0  # seconds for the pool to answer GET /pool_info (chia's imports take a few seconds)


@dataclass
class ProcessDevnet(Devnet):
    """A Devnet whose pool is a ``python -m pool`` child process.

    ``store`` and ``server`` are keys of those config sections (e.g. a PostgreSQL store, ``workers``); by default the
    store is SQLite in the work dir. ``config_options`` go to the devnet pool document (rewards, payouts ...). Each
    start appends the pool's log to ``<work dir>/pool/pool.log``.
    """

    store: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    config_options: dict[str, Any] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = field(init=False, default=None)
    _reader: AbstractPoolStore | None = field(init=False, default=None)
    starts: int = field(init=False, default=0)

    def _pool_config(self) -> PoolConfig:
        document = world_pool_document(
            self.world,
            store_path=self.work_dir / "pool" / "pool.sqlite",
            server_port=free_port(),
            **self.config_options,
        )
        document["store"].update(self.store)
        document["server"].update(self.server)
        path = self.work_dir / "pool" / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
        return parse_config(document, path.parent, source=path)

    @property
    def log_path(self) -> Path:
        return self.work_dir / "pool" / "pool.log"

    async def start_pool(self, env: dict[str, str] | None = None) -> None:
        """Start ``python -m pool``; ``env``: more environment variables for it (pool/kill_points.py's, say)."""
        if self.process is not None:
            raise RuntimeError("the pool is already running")
        assert self.config.source is not None
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **(env or {})}
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pool", "--config", str(self.config.source), cwd=REPO, env=env, stderr=log
            )
        self.starts += 1
        await self._wait_listening(timeout=START_TIMEOUT)
        if self._reader is None:  # once the pool has created (or upgraded) the database
            self._reader = create_store(self.config.store)
            await self._reader.open()

    @property
    def reader(self) -> AbstractPoolStore:
        """The test's own store on the pool's database, to read the pool's state (open once the pool started)."""
        assert self._reader is not None, "the pool has not started yet"
        return self._reader

    async def stop_pool(self) -> None:
        """Stop the pool as an operator would (SIGTERM: it finishes what it is doing and exits)."""
        await self._end_process(signal.SIGTERM)

    async def kill_pool(self) -> None:
        """SIGKILL: the pool dies at once, in the middle of whatever it was doing."""
        await self._end_process(signal.SIGKILL)

    async def wait_for_exit(self, timeout: float) -> int:
        """Wait for the pool to end on its own (a kill point it reached); its exit status (-9 for SIGKILL)."""
        process = self.process
        if process is None:
            raise RuntimeError("the pool is not running")
        code = await asyncio.wait_for(process.wait(), timeout)
        self.process = None
        return code

    async def _end_process(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(how)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"the pool (pid {process.pid}) did not stop on {how.name}: killed") from None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, traceback)
        finally:
            if self._reader is not None:
                await self._reader.close()

    async def registered_launcher_ids(self) -> set[bytes32] | None:
        return {farmer.launcher_id for farmer in await self.reader.list_farmers()}
