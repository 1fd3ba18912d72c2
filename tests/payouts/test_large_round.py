"""One payout round to a thousand farmers on the simulator, paid with chia's real wallet: a real reward won by a
PlotNFT, claimed and buried, shared out over 1 000 farmers' points, paid in transactions the mempool takes, each
payment found on chain exactly once and the books balanced; what a payment costs, measured on the mempool."""

from __future__ import annotations

import dataclasses
import secrets
from collections import Counter
from pathlib import Path

from pool.chia_adapter import SpendBundle, bytes32
from pool.devnet.world import World
from pool.payouts.fees import payment_cost
from pool.protocol.partials import proof_key
from pool.store.models import BatchStatus, FarmerRecord, PartialRecord, RoundStatus
from tests.loops.loops_harness import THRESHOLD, Clock, Pool, check_chain, random_puzzle_hash, win_and_claim

FARMERS = 1_000
PER_TRANSACTION = 400


def synthetic_farmer(template: FarmerRecord) -> FarmerRecord:
    """A member with a launcher id and a payout address of its own; only the ledger sees it (no loop follows it)."""
    payout = random_puzzle_hash()
    return dataclasses.replace(
        template,
        launcher_id=bytes32(secrets.token_bytes(32)),
        p2_singleton_puzzle_hash=random_puzzle_hash(),  # nothing to claim there
        payout_instructions=payout.hex(),
        payout_puzzle_hash=payout,
        points=0,
    )


async def test_a_thousand_farmers_are_paid_in_one_round_each_once(world: World, tmp_path: Path) -> None:
    plotnft = await world.create_plotnft(pool_url="http://127.0.0.1:1", relative_lock_height=5)
    await world.farm_blocks(THRESHOLD + 1)
    pool = await Pool.start(
        world,
        tmp_path / "pool.sqlite",
        Clock(),
        payouts={"max_additions_per_transaction": PER_TRANSACTION, "min_payment": 0, "fee_reserve": 0},
    )
    try:
        store = pool.ctx.store
        winner = await pool.add_farmer(plotnft, random_puzzle_hash())
        farmers = [winner] + [synthetic_farmer(winner) for _ in range(1, FARMERS)]
        for farmer in farmers[1:]:
            await store.add_farmer(farmer)
        # Points for everyone, 1 to 5 each, credited as the confirmation loop credits them.
        now = pool.ctx.now()
        sp_hash = bytes32(secrets.token_bytes(32))
        partials = [
            PartialRecord(
                farmer.launcher_id,
                proof_key(sp_hash, bytes32(secrets.token_bytes(32))),
                sp_hash,
                False,
                bytes32(secrets.token_bytes(32)),
                now,
                1 + index % 5,
            )
            for index, farmer in enumerate(farmers)
        ]
        ids = [added for added in await store.record_partials(partials) if isinstance(added, int)]
        assert len(ids) == FARMERS and len(await store.confirm_partials(ids)) == FARMERS

        reward = await win_and_claim(pool, world, plotnft)
        payout = await pool.run_payouts()
        assert payout.created and payout.distribution_id is not None and payout.round_id is not None
        round_id = payout.round_id
        payments = await store.payments(round_id=round_id)
        assert len(payments) == FARMERS + 1  # and the fee address
        batches = await store.batches(round_id)
        assert len(batches) == -(-(FARMERS + 1) // PER_TRANSACTION)

        # Batches go out as coins allow (one reward coin: the next batch spends the change of the last), each taken
        # by the mempool at its cost, then buried.
        measured: list[tuple[int, int]] = []
        mempool = world.simulator.full_node.mempool_manager.mempool
        for _ in range(40):
            for batch in await store.batches(round_id):
                if batch.status is BatchStatus.SUBMITTED and batch.spend_bundle is not None:
                    item = mempool.get_item_by_id(SpendBundle.from_bytes(batch.spend_bundle).name())
                    if item is not None:
                        additions = len([p for p in payments if p.batch_index == batch.index])
                        measured.append((additions, int(item.cost)))
            await world.farm_blocks(THRESHOLD + 1)
            await pool.run_payouts()
            done = await store.get_round(round_id)
            assert done is not None
            if done.status is RoundStatus.DONE:
                break
        else:
            raise AssertionError(f"round {round_id} not done: {await store.batches(round_id)}")

        # Every payment on chain exactly once, of its amount, at its address; the books balanced.
        records = await pool.ctx.node.coin_records_by_puzzle_hashes(
            [p.puzzle_hash for p in payments], include_spent=True
        )
        on_chain = Counter((r.coin.puzzle_hash, int(r.coin.amount)) for r in records)
        # The fee address is the devnet's, shared by every pool on this chain: this round's payment is among its coins.
        (fee_payment,) = [p for p in payments if p.launcher_id is None]
        assert on_chain.pop((fee_payment.puzzle_hash, fee_payment.amount), 0) >= 1
        on_chain = Counter({key: n for key, n in on_chain.items() if key[0] != fee_payment.puzzle_hash})
        assert on_chain == Counter((p.puzzle_hash, p.amount) for p in payments if p.launcher_id is not None)
        ledger = await store.ledger()
        assert ledger.balanced and ledger.owed == 0
        assert ledger.farmer_payments + ledger.pool_fee_payments + ledger.blockchain_fees <= reward
        await check_chain(pool)

        # The cost estimate the fees and the batch sizes rely on is an upper bound of what the mempool measured.
        assert measured, "no batch seen in the mempool"
        for additions, cost in sorted(set(measured)):
            print(f"{additions} payments in one transaction: cost {cost} ({cost // additions} per payment)")
        for additions, cost in set(measured):
            assert cost <= payment_cost(additions), (additions, cost, payment_cost(additions))
    finally:
        await pool.stop()
