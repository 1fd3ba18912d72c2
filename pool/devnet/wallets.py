"""Wallets and PlotNFTs: the pool wallet and the farmer wallet, funding, and PlotNFTs created and left through RPC.

Both are real chia wallet services synced to the simulator's node; the farmer wallet holds the key BlockTools plots and
farms with, so the farmer service owns the PlotNFTs it creates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chia_rs import G1Element, PrivateKey
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint8, uint16, uint32, uint64

from pool.chia_adapter import Program, auth_v2_secret_key, reward_puzzle_hash_v2
from pool.chia_adapter.simulation import (
    DEFAULT_TX_CONFIG,
    CreateNewWallet,
    CreateNewWalletType,
    GetNextAddress,
    GetTransaction,
    GetWalletBalance,
    GetWallets,
    NewPoolWalletInitialTargetState,
    PeerInfo,
    PoolingShareState,
    PoolSingletonState,
    PoolWalletInfo,
    PWAbsorbRewards,
    PWSelfPool,
    PWStatus,
    SendTransaction,
    WalletCreationMode,
    WalletRpcClient,
    WalletType,
    decode_puzzle_hash,
    encode_puzzle_hash,
    find_authentication_sk,
    find_owner_sk,
    plotnft_v2_synthetic_secret_key,
    setup_wallet_node,
    std_hash,
)
from pool.devnet.base import _WAIT_SECONDS, RpcEndpoint, WorldBase, _wait_until, _Wallet

# The farmer wallet uses the key BlockTools plots and farms with, so the farmer service holds the PlotNFT owner key.
_FARMER_KEY_ENTROPY = std_hash(b"block_tools farmer key")
_POOL_WALLET_KEY_ENTROPY = std_hash(b"chia pool devnet pool wallet")

T = TypeVar("T")


@dataclass(frozen=True)
class PlotNFTInfo:
    launcher_id: bytes32
    p2_singleton_puzzle_hash: bytes32
    owner_public_key: G1Element
    owner_secret_key: PrivateKey
    # The key the farmer signs GET /farmer, POST /partial etc. with (index 0, as chia's farmer uses).
    authentication_secret_key: PrivateKey
    wallet_id: int
    pool_url: str
    target_puzzle_hash: bytes32
    relative_lock_height: int


@dataclass(frozen=True)
class PlotNFTV2Info:
    """A PlotNFT v2 (Pool Protocol v2) of the farmer wallet, and the keys its farmer signs with."""

    launcher_id: bytes32
    reward_puzzle_hash: bytes32  # RewardPuzzle(launcher_id): its plots' pool contract puzzle hash
    synthetic_public_key: G1Element  # its authentication key
    synthetic_secret_key: PrivateKey  # signs partials with the plot key
    wallet_id: int
    pool_url: str
    target_puzzle_hash: bytes32
    relative_lock_height: int

    @property
    def auth_secret_key(self) -> PrivateKey:
        """Signs GET /v2/auth, POST /v2/farmer and /v2/login."""
        return auth_v2_secret_key(self.synthetic_secret_key)


class _WalletPart(Generic[T]):
    """A read-only attribute of the world: one part (endpoint, client, fingerprint) of one of its two wallets."""

    def __init__(self, wallet: str, part: Callable[[_Wallet], T]) -> None:
        self._wallet = wallet
        self._part = part

    def __get__(self, world: WorldBase, owner: type | None = None) -> T:
        return self._part(world._wallets[self._wallet])


# chia's wallet tracks at most this many PlotNFT v2 of one key.
MAX_PLOTNFT_V2_PER_KEY = 5


class WalletsMixin(WorldBase):
    """The wallets of a World and the PlotNFTs of its farmer wallet."""

    async def _start_wallet(self, name: str, key_entropy: bytes32) -> _Wallet:
        wallet_bt = self._block_tools(self.work_dir / name)
        service = await self._stack.enter_async_context(
            setup_wallet_node(self.self_hostname, self.constants, wallet_bt, key_seed=key_entropy)
        )
        wallet_node = service._node
        # A trusted node lets the wallet skip proof checks: it syncs in milliseconds instead of seconds.
        node_id = self.simulator.full_node.server.node_id.hex()
        wallet_node.config["trusted_peers"] = {node_id: node_id}
        await wallet_node.server.start_client(PeerInfo(self.self_hostname, self.full_node_port), None)
        assert service.rpc_server is not None
        port = service.rpc_server.listen_port
        client = await self._stack.enter_async_context(
            WalletRpcClient.create_as_context(self.self_hostname, uint16(port), wallet_bt.root_path, service.config)
        )
        self._record_ports(wallet_bt.root_path, "wallet", rpc_port=port)
        assert wallet_node.logged_in_fingerprint is not None
        endpoint = RpcEndpoint(self.self_hostname, port, wallet_bt.root_path)
        return _Wallet(service, client, endpoint, wallet_node.logged_in_fingerprint)

    pool_wallet_rpc = _WalletPart("pool", lambda wallet: wallet.endpoint)
    farmer_wallet_rpc = _WalletPart("farmer", lambda wallet: wallet.endpoint)
    pool_wallet_client = _WalletPart("pool", lambda wallet: wallet.client)
    farmer_wallet_client = _WalletPart("farmer", lambda wallet: wallet.client)
    pool_wallet_fingerprint = _WalletPart("pool", lambda wallet: wallet.fingerprint)
    farmer_wallet_fingerprint = _WalletPart("farmer", lambda wallet: wallet.fingerprint)

    async def wait_for_wallets_synced(self, timeout: float = _WAIT_SECONDS) -> None:
        nodes = [wallet.service._node for wallet in self._wallets.values()]
        await self.simulator.wait_for_wallets_synced(wallet_nodes=nodes, timeout=timeout)

    # ------------------------------------------------------------------ wallets and PlotNFTs

    async def _wallet_address(self, wallet: str) -> bytes32:
        client = self._wallets[wallet].client
        response = await client.get_next_address(GetNextAddress(wallet_id=uint32(1), new_address=False))
        return decode_puzzle_hash(response.address)

    async def _spendable(self, wallet: str) -> int:
        response = await self._wallets[wallet].client.get_wallet_balance(GetWalletBalance(wallet_id=uint32(1)))
        return int(response.wallet_balance.spendable_balance)

    async def fund_farmer_wallet(self, blocks: int = 2) -> int:
        """Farm ``blocks`` blocks to the farmer wallet; returns its spendable balance once the coins arrived."""
        address = await self._wallet_address("farmer")
        before = await self._spendable("farmer")
        await self.farm_blocks(blocks, address)
        # The last block's rewards are paid in the next transaction block.
        await self.farm_blocks(1)

        async def arrived() -> bool:
            return await self._spendable("farmer") > before

        await _wait_until(arrived, _WAIT_SECONDS, "farmer wallet funds")
        return await self._spendable("farmer")

    async def _farm_until(self, condition: Callable[[], Awaitable[bool]], what: str, max_blocks: int = 30) -> None:
        """Farm one block at a time until ``condition`` holds (a wallet state change needs its spend confirmed)."""
        for _ in range(max_blocks):
            if await condition():
                return
            await self.farm_blocks(1)
        if not await condition():
            raise TimeoutError(f"{what} did not happen within {max_blocks} blocks")

    async def _wait_in_mempool(self, transaction_ids: list[bytes32]) -> None:
        mempool = self.simulator.full_node.mempool_manager.mempool

        async def in_mempool() -> bool:
            return all(mempool.get_item_by_id(tx_id) is not None for tx_id in transaction_ids)

        await _wait_until(in_mempool, _WAIT_SECONDS, "transactions in the mempool")

    async def _confirm(self, wallet: str, transaction_ids: list[bytes32]) -> None:
        client = self._wallets[wallet].client

        async def confirmed() -> bool:
            for tx_id in transaction_ids:
                record = (await client.get_transaction(GetTransaction(transaction_id=tx_id))).transaction
                if not record.confirmed:
                    return False
            return True

        await self._farm_until(confirmed, "transaction confirmation")

    @staticmethod
    def _spend_ids(records: list[Any]) -> list[bytes32]:
        # Only records that carry a spend reach the mempool (the wallet also records incoming coins).
        return [record.name for record in records if record.spend_bundle is not None]

    async def _self_send_random_amount(self) -> None:
        """Move a random small amount to the farmer wallet itself and confirm it.

        The simulated chain is deterministic, so the same keys would make the same launcher every run. The PlotNFT
        launcher's parent is the smallest coin able to pay 1 mojo: after this, that is the random coin.
        """
        address = encode_puzzle_hash(await self._wallet_address("farmer"), "txch")
        amount = uint64(self._rng.randrange(1_000, 1_000_000))
        response = await self.farmer_wallet_client.send_transaction(
            SendTransaction(wallet_id=uint32(1), amount=amount, address=address, push=True), DEFAULT_TX_CONFIG
        )
        ids = self._spend_ids(response.transactions)
        await self._wait_in_mempool(ids)
        await self._confirm("farmer", ids)

    async def _pool_wallet_ids(self) -> set[int]:
        response = await self.farmer_wallet_client.get_wallets(GetWallets(type=uint16(WalletType.POOLING_WALLET)))
        return {int(wallet.id) for wallet in response.wallets}

    async def plotnft_status(self, wallet_id: int) -> PoolWalletInfo:
        response = await self.farmer_wallet_client.pw_status(PWStatus(wallet_id=uint32(wallet_id)))
        return response.state

    async def create_plotnft(
        self,
        *,
        pool_url: str,
        target_puzzle_hash: bytes32 | None = None,
        relative_lock_height: int = 5,
        fresh_launcher: bool = True,
    ) -> PlotNFTInfo:
        """Create a PlotNFT farming to a pool through the farmer wallet's RPC, and farm until it is confirmed.

        ``target_puzzle_hash`` defaults to the pool wallet's address (the pool's target). ``fresh_launcher`` makes a
        random self-send first so that the launcher_id differs from earlier runs.
        """
        known = await self._pool_wallet_ids()
        await self._launch_plotnft(1, target_puzzle_hash, pool_url, relative_lock_height, b"\x80", fresh_launcher)
        wallet_id = await self._wait_for_new_plotnft(known)
        return await self._plotnft_info(wallet_id)

    async def _launch_plotnft(
        self,
        version: int,
        target_puzzle_hash: bytes32 | None,
        pool_url: str,
        relative_lock_height: int,
        pool_memoization: bytes,
        fresh_launcher: bool,
    ) -> None:
        """Have the farmer wallet launch a PlotNFT of ``version`` farming to a pool (the pool wallet's address by
        default), funding the wallet first if need be; returns once the launch is in the mempool. ``fresh_launcher``
        makes a random self-send first so that the launcher_id (and so its plots) differs from earlier runs."""
        if await self._spendable("farmer") < 1_000_000:
            await self.fund_farmer_wallet()
        if fresh_launcher:
            await self._self_send_random_amount()
        response = await self.farmer_wallet_client.create_new_wallet(
            CreateNewWallet(
                wallet_type=CreateNewWalletType.POOL_WALLET,
                initial_target_state=NewPoolWalletInitialTargetState(
                    state=PoolSingletonState.FARMING_TO_POOL.name,
                    target_puzzle_hash=target_puzzle_hash or self.pool_target_puzzle_hash,
                    pool_url=pool_url,
                    relative_lock_height=uint32(relative_lock_height),
                    pool_memoization=Program.from_bytes(pool_memoization),
                ),
                mode=WalletCreationMode.NEW,
                fee=uint64(0),
                push=True,
                plotnft_version=uint8(version),
            ),
            DEFAULT_TX_CONFIG,
        )
        await self._wait_in_mempool(self._spend_ids(response.transactions))

    async def _plotnft_v2_ids(self) -> set[int]:
        response = await self.farmer_wallet_client.get_wallets(GetWallets(type=uint16(WalletType.PLOTNFT_2)))
        return {int(wallet.id) for wallet in response.wallets}

    async def create_plotnft_v2(
        self,
        *,
        pool_url: str,
        target_puzzle_hash: bytes32 | None = None,
        relative_lock_height: int = 5,
        pool_memoization: bytes = b"\x80",
        fresh_launcher: bool = True,
    ) -> PlotNFTV2Info:
        """Create a PlotNFT v2 farming to a pool through the farmer wallet's ordinary RPC (``create_new_wallet`` with
        ``plotnft_version=2``), and farm until the wallet sees it farming. The wallet writes its pooling share state
        with ``version: 2``, so the farmer speaks Pool Protocol v2 for it. At most MAX_PLOTNFT_V2_PER_KEY."""
        known = await self._plotnft_v2_ids()
        if len(known) >= MAX_PLOTNFT_V2_PER_KEY:
            raise RuntimeError(f"the farmer wallet already tracks {len(known)} PlotNFT v2, chia's wallet's limit")
        await self._launch_plotnft(
            2, target_puzzle_hash, pool_url, relative_lock_height, pool_memoization, fresh_launcher
        )
        return await self._plotnft_v2_info(await self._wait_for_new_plotnft(known, self._plotnft_v2_ids))

    async def _plotnft_v2_info(self, wallet_id: int) -> PlotNFTV2Info:
        state = await self.plotnft_status(wallet_id)
        synthetic_pk = state.current.owner_pubkey
        wallet_root = self.farmer_wallet_rpc.root_path
        index = None
        for p2 in PoolingShareState.get_all_p2_singleton_puzzle_hashes(root_path=wallet_root):
            with PoolingShareState.acquire(root_path=wallet_root, p2_singleton_puzzle_hash=p2, read_only=True) as entry:
                if entry.launcher_id == state.launcher_id:
                    index = entry.key_derivation_index
        assert index is not None, "the wallet wrote no pooling share state for its PlotNFT v2"
        synthetic_sk = plotnft_v2_synthetic_secret_key(self.block_tools.farmer_master_sk, index)
        assert synthetic_sk.get_g1() == synthetic_pk, "the farmer key does not own the PlotNFT v2"
        return PlotNFTV2Info(
            launcher_id=state.launcher_id,
            reward_puzzle_hash=reward_puzzle_hash_v2(state.launcher_id),
            synthetic_public_key=synthetic_pk,
            synthetic_secret_key=synthetic_sk,
            wallet_id=wallet_id,
            pool_url=state.current.pool_url or "",
            target_puzzle_hash=state.current.target_puzzle_hash,
            relative_lock_height=int(state.current.relative_lock_height),
        )

    async def _wait_for_new_plotnft(
        self, known: set[int], wallet_ids: Callable[[], Awaitable[set[int]]] | None = None
    ) -> int:
        """The id of the new PlotNFT wallet (``wallet_ids``: where to look, v1's by default) once it farms."""
        new_ids: list[int] = []
        ids = wallet_ids or self._pool_wallet_ids

        async def farming_to_pool() -> bool:
            new_ids[:] = sorted((await ids()) - known)
            if not new_ids:
                return False
            state = await self.plotnft_status(new_ids[-1])
            return bool(state.current.state == PoolSingletonState.FARMING_TO_POOL.value)

        await self._farm_until(farming_to_pool, "PlotNFT creation")
        return new_ids[-1]

    async def _plotnft_info(self, wallet_id: int) -> PlotNFTInfo:
        state = await self.plotnft_status(wallet_id)
        owner_pk = state.current.owner_pubkey
        master_sks = [self.block_tools.farmer_master_sk]
        owner = find_owner_sk(master_sks, owner_pk)
        authentication_sk = find_authentication_sk(master_sks, owner_pk)
        assert owner is not None and authentication_sk is not None, "the farmer key does not own the PlotNFT"
        return PlotNFTInfo(
            launcher_id=state.launcher_id,
            p2_singleton_puzzle_hash=state.p2_singleton_puzzle_hash,
            owner_public_key=owner_pk,
            owner_secret_key=owner[0],
            authentication_secret_key=authentication_sk,
            wallet_id=wallet_id,
            pool_url=state.current.pool_url or "",
            target_puzzle_hash=state.current.target_puzzle_hash,
            relative_lock_height=int(state.current.relative_lock_height),
        )

    async def leave_pool_v2(self, plotnft: PlotNFTV2Info) -> None:
        """A PlotNFT v2 leaves its pool through the wallet's RPC (pw_self_pool): it enters the waiting room; returns
        once that spend is on chain."""
        await self.wait_for_wallets_synced()  # as leave_pool: the wallet must know the singleton's current coin
        response = await self.farmer_wallet_client.pw_self_pool(
            PWSelfPool(wallet_id=uint32(plotnft.wallet_id), fee=uint64(0), push=True), DEFAULT_TX_CONFIG
        )
        await self._wait_in_mempool(self._spend_ids(response.transactions))

        async def leaving() -> bool:
            state = await self.plotnft_status(plotnft.wallet_id)
            return bool(state.current.state == PoolSingletonState.LEAVING_POOL.value)

        await self._farm_until(leaving, "PlotNFT v2 in the waiting room")

    async def leave_pool(self, plotnft: PlotNFTInfo, *, complete: bool = False) -> None:
        """Switch the PlotNFT to self-pooling through the farmer wallet's RPC.

        Returns once it is LEAVING_POOL on chain; with ``complete``, farms on until the wallet finished the move to
        SELF_POOLING (after the relative lock height).
        """
        # The wallet spends the singleton coin it knows: one a spend just farmed (an absorb) replaced would make the
        # node refuse the leave as an invalid spend bundle, and the wallet does not try again.
        await self.wait_for_wallets_synced()
        response = await self.farmer_wallet_client.pw_self_pool(
            PWSelfPool(wallet_id=uint32(plotnft.wallet_id), fee=uint64(0), push=True), DEFAULT_TX_CONFIG
        )
        await self._wait_in_mempool(self._spend_ids(response.transactions))
        wanted = PoolSingletonState.SELF_POOLING if complete else PoolSingletonState.LEAVING_POOL

        async def reached() -> bool:
            state = await self.plotnft_status(plotnft.wallet_id)
            return bool(state.current.state == wanted.value)

        await self._farm_until(reached, f"PlotNFT {wanted.name}", max_blocks=30 + plotnft.relative_lock_height)

    async def sweep_pool_rewards(self, plotnft: PlotNFTInfo) -> None:
        """The farmer wallet absorbs the rewards waiting at the PlotNFT's p2_singleton puzzle hash itself (chia's
        "plotnft claim"), paying the target of the state its singleton is in now: after leaving a pool, its own
        address. Returns once the absorb is on chain."""
        response = await self.farmer_wallet_client.pw_absorb_rewards(
            PWAbsorbRewards(wallet_id=uint32(plotnft.wallet_id), fee=uint64(0), push=True), DEFAULT_TX_CONFIG
        )
        ids = self._spend_ids(response.transactions)
        await self._wait_in_mempool(ids)
        await self._confirm("farmer", ids)

    async def send_from_farmer_wallet(self, puzzle_hash: bytes32, amount: int) -> None:
        """The farmer wallet sends ``amount`` to ``puzzle_hash``; returns once it is in the mempool (not farmed)."""
        address = encode_puzzle_hash(puzzle_hash, "txch")
        response = await self.farmer_wallet_client.send_transaction(
            SendTransaction(wallet_id=uint32(1), amount=uint64(amount), address=address, push=True), DEFAULT_TX_CONFIG
        )
        await self._wait_in_mempool(self._spend_ids(response.transactions))

    async def farmer_wallet_address(self) -> bytes32:
        """An address of the farmer wallet (another key than the pool wallet's)."""
        return await self._wallet_address("farmer")
