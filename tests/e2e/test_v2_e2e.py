"""End to end, both protocol versions at once: one real chia 2.7.5 farmer with a PlotNFT v1 and a PlotNFT v2 (made by
chia's wallet with ``plotnft_version=2``) farming to the same pool.

The tests run in order on one devnet: the v2 calls arrive in the farmer's order, partials of both PlotNFTs are
accepted and credited, a block won by the v2 plot is forwarded and claimed, both farmers are paid by points with the
books balanced, and the v2 PlotNFT leaves through the waiting room, after which its partials are refused.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from pool.config import PoolConfig
from pool.devnet.session import Devnet
from pool.http.access_log import ACCESS_LOGGER
from pool.store.models import ClaimStatus, PartialStatus
from tests.chain_checks import store_agrees_with_chain
from tests.e2e.driving import drive_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Requests(logging.Handler):
    """The pool's access log lines, "METHOD /path", in the order the pool answered them."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        method, path = record.getMessage().split()[:2]
        self.lines.append(f"{method} {path}")


@dataclasses.dataclass
class AccessLoggedDevnet(Devnet):
    def _pool_config(self) -> PoolConfig:
        config = super()._pool_config()
        return dataclasses.replace(config, logging=dataclasses.replace(config.logging, access_log=True))


@pytest.fixture(scope="module")
def requests() -> Requests:
    handler = Requests()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory, requests: Requests) -> AsyncIterator[Devnet]:
    work_dir: Path = tmp_path_factory.mktemp("devnet")
    async with AccessLoggedDevnet(work_dir, farmers_count=1, plots_per_farmer=2, v2_farmers_count=1) as running:
        yield running
    logging.getLogger(ACCESS_LOGGER).removeHandler(requests)


async def confirmed(devnet: Devnet, index: int) -> int:
    farmer = devnet.all_farmers[index]
    partials = await devnet.ctx.store.recent_partials(farmer.plotnft.launcher_id, 0, [PartialStatus.CONFIRMED])
    return len(partials)


async def test_the_v2_calls_arrive_in_the_farmers_order(devnet: Devnet, requests: Requests) -> None:
    async def v2_partial_answered() -> bool:
        return "POST /v2/partial" in requests.lines

    await drive_until(devnet, v2_partial_answered, "a v2 partial")
    v2 = [line for line in requests.lines if " /v2/" in line]
    first = [line for index, line in enumerate(v2) if line not in v2[:index] or line == "GET /v2/auth"]
    assert first[:6] == [
        "GET /v2/pool_info",
        "GET /v2/auth",  # answered 10: the farmer registers
        "POST /v2/farmer",
        "GET /v2/auth",
        "GET /v2/farmer",
        "POST /v2/partial",
    ], v2
    record = await devnet.ctx.store.get_farmer(devnet.v2_farmers[0].plotnft.launcher_id)
    assert record is not None and record.protocol_version == 2 and record.is_pool_member
    # The v1 PlotNFT of the same farmer kept to the v1 paths.
    assert "POST /farmer" in requests.lines and "POST /partial" in requests.lines


async def test_partials_of_both_versions_are_credited(devnet: Devnet) -> None:
    async def both_credited() -> bool:
        return await confirmed(devnet, 0) >= 2 and await confirmed(devnet, 1) >= 2

    await drive_until(devnet, both_credited, "confirmed partials of the v1 and the v2 PlotNFT")
    points = {farmer.launcher_id: farmer.points for farmer in await devnet.ctx.store.list_farmers()}
    assert all(points[farmer.plotnft.launcher_id] > 0 for farmer in devnet.all_farmers), points


async def test_a_block_won_by_the_v2_plot_is_forwarded_and_both_farmers_are_paid(devnet: Devnet) -> None:
    v2 = devnet.v2_farmers[0]
    await devnet.win_block(v2)

    async def claimed() -> bool:
        claims = await devnet.ctx.store.reward_claims(ClaimStatus.CONFIRMED)
        return any(claim.launcher_id == v2.plotnft.launcher_id for claim in claims)

    await drive_until(devnet, claimed, "the v2 reward forwarded and its claim confirmed", farm_every=2)

    async def both_paid() -> bool:
        payments = await devnet.ctx.store.payments()
        paid = {payment.launcher_id for payment in payments}
        return all(farmer.plotnft.launcher_id in paid for farmer in devnet.all_farmers)

    await drive_until(devnet, both_paid, "payments to the v1 and the v2 farmer", farm_every=2)
    ledger = await devnet.ctx.store.ledger()
    assert ledger.balanced
    await store_agrees_with_chain(
        devnet.ctx.store,
        devnet.ctx.node,
        devnet.config.pool.target_puzzle_hash,
        devnet.ctx.constants.MAX_BLOCK_COST_CLVM,
    )


async def test_the_v2_plotnft_leaves_and_its_partials_are_refused_after_the_lock(devnet: Devnet) -> None:
    v2 = devnet.v2_farmers[0]
    await devnet.world.leave_pool_v2(v2.plotnft)

    async def left() -> bool:
        record = await devnet.ctx.store.get_farmer(v2.plotnft.launcher_id)
        return record is not None and not record.is_pool_member

    await drive_until(devnet, left, "the v2 PlotNFT no longer a member after its height lock", farm_every=2)

    async def refused() -> bool:
        counts = await devnet.ctx.store.partial_counts(0, v2.plotnft.launcher_id)
        return any(count.outcome == "INVALID_SINGLETON" for count in counts)

    await drive_until(devnet, refused, "a partial of the v2 PlotNFT refused as no member")
