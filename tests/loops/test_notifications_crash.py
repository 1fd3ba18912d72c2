"""Notifications across kill -9: the real pool (``python -m pool`` on the session's chain, SQLite) is killed by
SIGKILL at the worst moments of delivery (pool/kill_points.py: an event committed and not yet posted; posted and
answered 2xx, its delivery not yet recorded) and started again. A real local HTTP server, standing for the operator's
Discord webhook and a farmer's webhook, accepts each idempotency key once: in the end it accepted every event once at
each of them, nothing was lost, and what a crash made the pool send again was recognised by its key."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from pool.devnet.pool_config import world_pool_document
from pool.devnet.session import free_port
from pool.devnet.world import World
from pool.store.models import FarmerSettings, NotificationKind
from pool.store.sqlite import SqlitePoolStore
from tests.loops.webhook_receiver import WebhookReceiver
from tests.store.test_store_contract import h, make_farmer

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # seconds for the pool to answer GET /pool_info (chia's imports take a few seconds)
KILL_TIMEOUT = 60.0  # a hang guard: seconds for the pool to reach its kill point
DELIVERY_TIMEOUT = 60.0


class PoolProcess:
    """``python -m pool --config <path>`` as an operator runs it, its log appended to ``log``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, port: int, kill_at: str | None = None, kill_log: Path | None = None) -> None:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        if kill_at is not None:
            env.update(POOL_KILL_AT=kill_at, POOL_KILL_LOG=str(kill_log))
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pool", "--config", str(self.config), cwd=REPO, env=env, stderr=log
            )
        async with aiohttp.ClientSession() as session:
            for _ in range(int(START_TIMEOUT / 0.1)):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/pool_info") as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if self.process.returncode is not None:
                    return  # it reached its kill point already
                await asyncio.sleep(0.1)
        raise AssertionError(f"the pool did not start: see {self.log}")

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 90)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as started:
        yield started


async def test_events_arrive_once_each_across_kills_between_commit_and_delivery(
    world: World, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    port = free_port()
    document = world_pool_document(world, store_path=tmp_path / "pool.sqlite", server_port=port)
    document["notifications"] = {
        "operator_webhooks": [{"url": receiver.url("discord"), "format": "discord"}],
        "allow_private_webhooks": True,  # the farmer's webhook is this test's server on 127.0.0.1
        "interval": 0.2,
        "retry_after": 1,
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(document))

    # Events committed before the pool runs: a farmer (not a member, so the chain loops leave it alone) whose payout
    # instructions change, and events the leader's own checks would write.
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    farmer = make_farmer(77, member=False)
    await store.add_farmer(farmer)
    await store.change_farmer_settings(FarmerSettings(farmer.launcher_id, webhook_url=receiver.url("farmer")), 1)
    await store.update_farmer_settings(farmer.launcher_id, payout_instructions=(h("elsewhere").hex(), h("elsewhere")))
    for number in range(3):
        await store.add_notification(
            NotificationKind.FARMER_SILENT, f"silent {number}", {"hours": 6}, now=1, launcher_id=farmer.launcher_id
        )
    events = await store.notifications()
    expected, oldest = sorted(event.idempotency_key for event in events), events[-1].idempotency_key
    assert len(expected) == 4

    pool = PoolProcess(config_path, tmp_path / "pool.log")
    kill_log = tmp_path / "kills.log"
    try:
        # Killed with every event committed and none posted: nothing reached the receiver.
        await pool.start(port, "notification-unsent", kill_log)
        assert await pool.wait(KILL_TIMEOUT) == -9
        assert receiver.received == []
        # Killed after the receiver's 2xx, before the pool recorded it: the pool will send that one again.
        await pool.start(port, "notification-posted", kill_log)
        assert await pool.wait(KILL_TIMEOUT) == -9
        assert [(received.path, received.key) for received in receiver.received] == [("discord", oldest)]
        assert kill_log.read_text().split() == ["notification-unsent", "notification-posted"]

        await pool.start(port)
        # An event committed while the pool runs is delivered too.
        await store.update_farmer_settings(farmer.launcher_id, payout_instructions=(h("back").hex(), h("back")))
        expected = sorted(event.idempotency_key for event in await store.notifications())
        for _ in range(int(DELIVERY_TIMEOUT / 0.2)):
            events = await store.notifications()
            if all(event.done_at is not None for event in events):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"not all delivered: {[e for e in events if e.done_at is None]}")
    finally:
        await pool.stop()
        await store.close()

    assert len(expected) == 5
    for path in ("discord", "farmer"):
        assert sorted(receiver.keys(path)) == expected, path  # each event accepted once, none lost
    # The event posted just before the second kill was posted again, and known by its key.
    assert receiver.duplicates("discord") + receiver.duplicates("farmer") == 1
    assert all(event.last_error is None for event in events)
