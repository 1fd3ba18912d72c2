"""Forgeries: chain operations a dishonest farmer could make, built by hand with real keys and pushed to
the simulator, so that tests show the pool refuses them. A part of World like the others (see world.py)."""

from __future__ import annotations

from chia_rs import AugSchemeMPL, G1Element, G2Element
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint32, uint64

from pool.chia_adapter import (
    SINGLETON_LAUNCHER_HASH,
    Addition,
    Coin,
    CoinSpend,
    CreateSignedTransaction,
    PoolState,
    PushTX,
    WalletSpendBundle,
    create_full_puzzle,
    launcher_id_to_p2_puzzle_hash,
    plotnft_puzzle,
    pool_state_to_inner_puzzle,
)
from pool.chia_adapter.simulation import (
    DEFAULT_TX_CONFIG,
    SINGLETON_LAUNCHER,
    PoolSingletonState,
    Program,
    conditions_dict_for_solution,
    create_pool_state,
    create_travel_spend,
    find_authentication_sk,
    make_spend,
    master_sk_to_singleton_owner_sk,
    pkm_pairs_for_conditions_dict,
)
from pool.devnet.wallets import PlotNFTInfo, WalletsMixin


class ForgeriesMixin(WalletsMixin):
    # ------------------------------------------------------------------ forgeries, for the membership checks
    # Chain operations a dishonest farmer could make, built by hand with real keys and pushed to the simulator, so
    # that tests show the pool refuses them. Kept together so that this block moves as one piece.

    async def create_forged_plotnft(
        self, *, claimed_target_puzzle_hash: bytes32, claimed_relative_lock_height: int, delay_time: int = 604_800
    ) -> PlotNFTInfo:
        """A real singleton whose inner puzzle self-pools to the farmer's own address, while its launcher's key-value
        data claims FARMING_TO_POOL to ``claimed_target_puzzle_hash``. The launcher coin comes from the farmer
        wallet; the owner key is the farmer key's, as for a real PlotNFT."""
        if await self._spendable("farmer") < 1_000_000:
            await self.fund_farmer_wallet()
        own_address = await self._wallet_address("farmer")
        master_sks = [self.block_tools.farmer_master_sk]
        owner_sk = master_sk_to_singleton_owner_sk(self.block_tools.farmer_master_sk, uint32(0))
        owner_pk = owner_sk.get_g1()
        authentication_sk = find_authentication_sk(master_sks, owner_pk)
        assert authentication_sk is not None
        real = create_pool_state(PoolSingletonState.SELF_POOLING, own_address, owner_pk, None, uint32(0))
        claimed = create_pool_state(
            PoolSingletonState.FARMING_TO_POOL,
            claimed_target_puzzle_hash,
            owner_pk,
            "http://127.0.0.1:1",
            uint32(claimed_relative_lock_height),
        )
        funding, launcher = await self._launcher_coin(1)
        launcher_id = launcher.name()
        genesis = self.constants.GENESIS_CHALLENGE
        inner = pool_state_to_inner_puzzle(real, launcher_id, genesis, uint64(delay_time), own_address)
        puzzle_hash = create_full_puzzle(inner, launcher_id).get_tree_hash()
        key_values = Program.to([("p", bytes(claimed)), ("t", delay_time), ("h", own_address)])
        await self._launch(funding, make_spend(launcher, SINGLETON_LAUNCHER, Program.to([puzzle_hash, 1, key_values])))
        return PlotNFTInfo(
            launcher_id=launcher_id,
            p2_singleton_puzzle_hash=launcher_id_to_p2_puzzle_hash(launcher_id, uint64(delay_time), own_address),
            owner_public_key=owner_pk,
            owner_secret_key=owner_sk,
            authentication_secret_key=authentication_sk,
            wallet_id=0,
            pool_url="http://127.0.0.1:1",
            target_puzzle_hash=claimed_target_puzzle_hash,
            relative_lock_height=claimed_relative_lock_height,
        )

    async def lying_travel(
        self,
        plotnft: PlotNFTInfo,
        *,
        last_spend: CoinSpend,
        launcher: Coin,
        current: PoolState,
        announced: PoolState,
        delay_time: int,
        delay_puzzle_hash: bytes32,
    ) -> None:
        """Spend the PlotNFT's singleton (after ``last_spend``, in ``current`` state) the way a travel does, signed by
        its owner, but announcing ``announced`` in the extra data: the coin goes where the puzzle sends it (a pool
        member's travel always enters the waiting room), whatever the announcement says."""
        spend, _ = create_travel_spend(
            last_spend,
            launcher,
            current,
            announced,
            self.constants.GENESIS_CHALLENGE,
            uint64(delay_time),
            delay_puzzle_hash,
        )
        conditions = conditions_dict_for_solution(
            spend.puzzle_reveal, spend.solution, self.constants.MAX_BLOCK_COST_CLVM
        )
        pairs = pkm_pairs_for_conditions_dict(conditions, spend.coin, self.constants.AGG_SIG_ME_ADDITIONAL_DATA)
        assert pairs and all(pk == plotnft.owner_public_key for pk, _ in pairs)
        signature = AugSchemeMPL.aggregate([AugSchemeMPL.sign(plotnft.owner_secret_key, msg) for _, msg in pairs])
        await self._push_and_confirm(WalletSpendBundle([spend], signature))

    async def mint_even_plotnft_v2(
        self, *, synthetic_key: G1Element, target_puzzle_hash: bytes32, relative_lock_height: int, memoization: bytes
    ) -> bytes32:
        """A singleton launcher whose spend mints an *even* coin (2 mojos) at exactly the puzzle hash a PlotNFT v2 of
        this launcher farming to the given pool would have: a pool that looks for a coin at the expected puzzle hash
        takes it for a member. Returns the launcher id (its spend confirmed)."""
        if await self._spendable("farmer") < 1_000_000:
            await self.fund_farmer_wallet()
        funding, launcher = await self._launcher_coin(2)
        launcher_id = launcher.name()
        pool = (target_puzzle_hash, relative_lock_height, memoization)
        expected = plotnft_puzzle(launcher_id, self.constants.GENESIS_CHALLENGE, synthetic_key, pool, False)
        await self._launch(
            funding, make_spend(launcher, SINGLETON_LAUNCHER, Program.to([expected.puzzle_hash(nonce=0), 2, []]))
        )
        return launcher_id

    async def _launcher_coin(self, amount: int) -> tuple[WalletSpendBundle, Coin]:
        """A farmer wallet transaction (signed, not pushed) creating a singleton launcher coin of ``amount``, and
        that coin: whoever spends the launcher decides what it launches."""
        signed = await self.farmer_wallet_client.create_signed_transactions(
            CreateSignedTransaction(
                additions=[Addition(puzzle_hash=SINGLETON_LAUNCHER_HASH, amount=uint64(amount))],
                wallet_id=uint32(1),
                fee=uint64(0),
                push=False,
            ),
            DEFAULT_TX_CONFIG,
        )
        funding = signed.signed_tx.spend_bundle
        assert funding is not None
        return funding, next(
            c for c in funding.additions() if c.puzzle_hash == SINGLETON_LAUNCHER_HASH and c.amount == amount
        )

    async def _launch(self, funding: WalletSpendBundle, launcher_spend: CoinSpend) -> None:
        """The launcher coin's transaction and the launcher's spend, pushed together and confirmed."""
        await self._push_and_confirm(
            WalletSpendBundle.aggregate([funding, WalletSpendBundle([launcher_spend], G2Element())])
        )

    async def _push_and_confirm(self, bundle: WalletSpendBundle) -> None:
        await self.farmer_wallet_client.push_tx(PushTX(spend_bundle=bundle))
        await self._wait_in_mempool([bundle.name()])
        await self.farm_blocks(1)
        mempool = self.simulator.full_node.mempool_manager.mempool
        assert mempool.get_item_by_id(bundle.name()) is None, "the spend bundle was not included in the block"
