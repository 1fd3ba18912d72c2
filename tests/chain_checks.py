"""The pool's store checked against the chain, not only against itself: what every money test ends with."""

from __future__ import annotations

from collections import Counter

from pool.chain.interface import FullNode
from pool.chain.reward_spends import RewardPaid, reward_fate
from pool.chia_adapter import SpendBundle, bytes32
from pool.payouts.on_chain import fee_of
from pool.payouts.split import merged_additions
from pool.store.abstract import AbstractPoolStore
from pool.store.models import BatchStatus, ClaimStatus


async def store_agrees_with_chain(
    store: AbstractPoolStore, node: FullNode, target_puzzle_hash: bytes32, max_cost: int
) -> None:
    """Every confirmed batch has exactly one of its versions on chain (every coin it creates exists and every coin it
    spends was spent in that block, and it is no part of another such version), and that version made exactly the
    batch's payments; a batch not yet confirmed has at most one; every confirmed claim's reward paid the pool's target
    and every lost one did not; every claim whose fee settled is charged exactly the fees of its fee spends on chain
    (of the versions of one absorb at most one)."""
    for payout_round in await store.rounds(limit=10**6):
        assert payout_round.id is not None
        for batch in await store.batches(payout_round.id):
            assert batch.id is not None
            landed = await _landed(node, [v.spend_bundle for v in await store.batch_versions(batch.id)])
            if batch.status is not BatchStatus.CONFIRMED:
                assert len(landed) <= 1, f"batch {batch.id}: {len(landed)} versions on chain"
                continue
            assert len(landed) == 1, f"confirmed batch {batch.id}: {len(landed)} versions on chain"
            (made_ids, fee), *_ = landed
            assert batch.fee == fee, f"batch {batch.id} is charged {batch.fee} mojos of fee, its version paid {fee}"
            payments = await store.payments(round_id=payout_round.id, batch_index=batch.index)
            records = [await node.coin_record(coin_id) for coin_id in made_ids]
            outputs = Counter((r.coin.puzzle_hash, int(r.coin.amount)) for r in records if r is not None)
            wanted = Counter(merged_additions([(p.puzzle_hash, p.amount) for p in payments]))
            assert wanted - outputs == Counter(), f"batch {batch.id} did not make its payments on chain"
    for claim in await store.reward_claims():
        if claim.status not in (ClaimStatus.CONFIRMED, ClaimStatus.LOST):
            continue
        record = await node.coin_record(claim.coin_id)
        assert record is not None and record.spent
        fate = await reward_fate(node, record, target_puzzle_hash, max_cost)
        assert isinstance(fate, RewardPaid) == (claim.status is ClaimStatus.CONFIRMED), (claim, fate)
    for claim in await store.reward_claims():
        if claim.fee_settled:
            fee_spends = [v.spend_bundle for v in await store.claim_fee_versions(claim.coin_id)]
            paid = sum(fee for _, fee in await _landed(node, fee_spends))
            assert paid == claim.fee + claim.earlier_fees, (
                f"claim of {claim.coin_id.hex()}: charged {claim}, paid {paid}"
            )


async def _landed(node: FullNode, versions: list[bytes]) -> list[tuple[set[bytes32], int]]:
    """The versions of a transaction that landed: the coins each made, and its fee."""
    present: list[tuple[set[bytes32], set[bytes32], int]] = []
    for version in versions:
        bundle = SpendBundle.from_bytes(version)
        if await _on_chain(node, bundle):
            spent, made = {c.name() for c in bundle.removals()}, {c.name() for c in bundle.additions()}
            present.append((spent, made, fee_of(bundle)))
    # A version all of whose coins are among those of another that fits the chain did not land itself.
    return [(made, fee) for spent, made, fee in present if not any(spent < other for other, _, _ in present)]


async def _on_chain(node: FullNode, bundle: SpendBundle) -> bool:
    """Every coin the transaction creates exists, and every coin it spends was spent in the block that made them."""
    heights: set[int] = set()
    for coin in bundle.additions():
        record = await node.coin_record(coin.name())
        if record is None:
            return False
        heights.add(int(record.confirmed_block_index))
    if len(heights) != 1:
        return False
    for coin in bundle.removals():
        record = await node.coin_record(coin.name())
        if record is None or not record.spent or int(record.spent_block_index) not in heights:
            return False
    return True
