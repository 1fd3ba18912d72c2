"""The pool's store checked against the chain, not only against itself: what every money test ends with."""

from __future__ import annotations

from collections import Counter

from pool.chain.interface import FullNode
from pool.chain.reward_spends import RewardPaid, reward_fate
from pool.chia_adapter import SpendBundle, bytes32
from pool.payouts.split import merged_additions
from pool.store.abstract import AbstractPoolStore
from pool.store.models import BatchStatus, ClaimStatus


async def store_agrees_with_chain(
    store: AbstractPoolStore, node: FullNode, target_puzzle_hash: bytes32, max_cost: int
) -> None:
    """Every confirmed batch has exactly one of its versions on chain (every coin it creates exists), and that
    version made exactly the batch's payments; a batch not yet confirmed has at most one; every confirmed claim's
    reward paid the pool's target and every lost one did not."""
    for payout_round in await store.rounds(limit=10**6):
        assert payout_round.id is not None
        for batch in await store.batches(payout_round.id):
            assert batch.id is not None
            landed = []
            for version in await store.batch_versions(batch.id):
                created = SpendBundle.from_bytes(version.spend_bundle).additions()
                if all([await node.coin_record(coin.name()) is not None for coin in created]):
                    landed.append(created)
            if batch.status is not BatchStatus.CONFIRMED:
                assert len(landed) <= 1, f"batch {batch.id}: {len(landed)} versions on chain"
                continue
            assert len(landed) == 1, f"confirmed batch {batch.id}: {len(landed)} versions on chain"
            payments = await store.payments(round_id=payout_round.id, batch_index=batch.index)
            made = Counter((coin.puzzle_hash, int(coin.amount)) for coin in landed[0])
            wanted = Counter(merged_additions([(p.puzzle_hash, p.amount) for p in payments]))
            assert wanted - made == Counter(), f"batch {batch.id} did not make its payments on chain"
    for claim in await store.reward_claims():
        if claim.status not in (ClaimStatus.CONFIRMED, ClaimStatus.LOST):
            continue
        record = await node.coin_record(claim.coin_id)
        assert record is not None and record.spent
        fate = await reward_fate(node, record, target_puzzle_hash, max_cost)
        assert isinstance(fate, RewardPaid) == (claim.status is ClaimStatus.CONFIRMED), (claim, fate)
