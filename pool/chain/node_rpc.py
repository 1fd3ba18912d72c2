"""The FullNode interface over chia's full node RPC (the same code for mainnet, testnet and the simulator)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from pool.chain.interface import ChainUnavailable, ChallengeInfo, FullNode, PeakInfo, PushResult
from pool.chain.shared_reads import RefreshedReads
from pool.chia_adapter import (
    CoinRecord,
    CoinSpend,
    ConsensusConstants,
    EndOfSubSlotBundle,
    FullNodeRpcClient,
    ResponseFailureError,
    SignagePoint,
    SpendBundle,
    bytes32,
    chia_config,
    uint16,
    uint32,
)
from pool.config import RpcConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

# chia's RPC client waits up to 300 s by default; a farmer's partial must be answered within seconds.
DEFAULT_CALL_TIMEOUT = 30.0
# Sub-slot iterations change only at epoch boundaries (hundreds of blocks apart): re-read at most this often, in the
# background after half of it (signage point look-ups keep the value meanwhile), waited for only past it.
SUB_SLOT_ITERS_TTL = 10.0
# chia's node looks for a finished sub-slot only 10 sub-slots back from its peak and calls an older one "reverted".
# The pool searches the chain itself this far back, in chunks: the node remembers the last 50 ends of sub-slot (older
# ones are not found at all), about 1 600 blocks on mainnet (32 a sub-slot on average).
END_OF_SUB_SLOT_SEARCH_BLOCKS = 2048
BLOCK_RECORDS_PER_CALL = 512
SEARCHED_SUB_SLOTS_KEPT = 256  # answers remembered (each partial of a sub-slot's end would ask again)

# The errors that mean "the node is not there or did not answer", as opposed to a well-formed refusal.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)

# A read the node refused for a reason other than "not found" (a busy database, an internal error) is asked again this
# many times in all, waiting READ_RETRY_DELAY seconds times the attempt's number in between; then it is unavailable.
READ_ATTEMPTS = 3
READ_RETRY_DELAY = 0.2

# The node's codes for "there is no such thing" (chia/rpc/rpc_errors.py): statements about the chain, unlike every
# other refusal. A coin asked for at a height where it was not spent (INVALID_HEIGHT_FOR_COIN) is one: the chain moved.
COIN_NOT_FOUND = "COIN_RECORD_NOT_FOUND"
SPEND_NOT_AT_HEIGHT = "INVALID_HEIGHT_FOR_COIN"
SIGNAGE_POINT_NOT_FOUND = "SP_NOT_IN_CACHE"
END_OF_SUB_SLOT_NOT_FOUND = "EOS_NOT_IN_CACHE"
BLOCK_NOT_FOUND = "BLOCK_NOT_FOUND"
NOT_IN_MEMPOOL = "TX_NOT_IN_MEMPOOL"


class RpcFullNode(FullNode):
    """A chia full node reached over its RPC port with the certificates of a chia root."""

    def __init__(
        self,
        client: FullNodeRpcClient,
        where: str,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        read_attempts: int = READ_ATTEMPTS,
    ) -> None:
        self._client = client
        self._where = where  # "host:port", for error messages
        self._call_timeout = call_timeout
        self._read_attempts = max(1, read_attempts)
        self._constants: ConsensusConstants | None = None  # the node's, fetched once
        # Shared by the signage point look-ups of a few seconds, so that many signage points looked up together (the
        # confirmation loop's batch) cost one get_blockchain_state.
        self._sub_slot_iters: RefreshedReads[str, int] = RefreshedReads(SUB_SLOT_ITERS_TTL)
        # sub-slot challenge -> the peak height of the search and whether the chain finished it: found stays found
        # (searched only when the node gave up, so more than 10 sub-slots deep, beyond any reorg), not found is
        # searched again at a new peak.
        self._searched_sub_slots: OrderedDict[bytes32, tuple[int, bool]] = OrderedDict()
        # Told (call name, seconds, answered) after every RPC: the pool's metrics (RPC latency and errors).
        self.observer: Callable[[str, float, bool], None] | None = None

    @classmethod
    async def connect(
        cls, rpc: RpcConfig, root_config: dict[str, Any] | None = None, call_timeout: float = DEFAULT_CALL_TIMEOUT
    ) -> RpcFullNode:
        """Open a client and check the node answers; raises ChainUnavailable("full node at host:port: <reason>")."""
        where = f"{rpc.host}:{rpc.port}"
        try:
            config = root_config if root_config is not None else chia_config(rpc.chia_root)
            client = await FullNodeRpcClient.create(rpc.host, uint16(rpc.port), Path(rpc.chia_root), config)
        except Exception as exc:  # missing certificates, unreadable config: all mean "cannot talk to the node"
            raise ChainUnavailable(f"full node at {where}: cannot create RPC client ({exc})") from exc
        node = cls(client, where, call_timeout)
        try:
            await node._call(client.healthz)
        except ChainUnavailable:
            await node.close()
            raise
        return node

    async def close(self) -> None:
        self._client.close()
        await self._client.await_closed()

    async def _timed(self, request: Awaitable[T]) -> T:
        """Await one RPC with the deadline, telling the observer how long it took and whether the node answered."""
        started, answered = time.monotonic(), False
        try:
            result = await asyncio.wait_for(request, self._call_timeout)
            answered = True
            return result
        except ResponseFailureError:
            answered = True  # a well-formed refusal ("not found"): the node is fine
            raise
        finally:
            if self.observer is not None:
                name = str(getattr(request, "__qualname__", "rpc")).rsplit(".", 1)[-1]
                self.observer(name, time.monotonic() - started, answered)

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Run one read with a deadline. A refusal other than "not found" is asked again (READ_ATTEMPTS in all);
        transport failures and refusals that persist become ChainUnavailable."""
        found, result = await self._attempts(request, ())
        assert found
        return result  # type: ignore[return-value]  # found: the node answered with a value

    async def _call_or_none(self, request: Callable[[], Awaitable[T]], *not_found: str) -> T | None:
        """Like _call, but a refusal with one of the ``not_found`` codes (the node's own statement that there is no
        such thing) is None. Nothing else is: an outage never reads as "not found"."""
        found, result = await self._attempts(request, not_found)
        return result if found else None

    async def _attempts(self, request: Callable[[], Awaitable[T]], not_found: tuple[str, ...]) -> tuple[bool, T | None]:
        for attempt in range(1, self._read_attempts + 1):
            try:
                return True, await self._timed(request())
            except _TRANSPORT_ERRORS as exc:
                raise ChainUnavailable(f"full node at {self._where}: {exc or type(exc).__name__}") from exc
            except ResponseFailureError as exc:
                if refusal_code(exc.response) in not_found:
                    return False, None
                if attempt == self._read_attempts:
                    error = exc.response.get("error", exc)
                    raise ChainUnavailable(f"full node at {self._where}: {error} ({attempt} attempt(s))") from exc
            await asyncio.sleep(READ_RETRY_DELAY * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _blockchain_state(self) -> dict[str, Any]:
        return await self._call(self._client.get_blockchain_state)

    async def peak(self) -> PeakInfo:
        state = await self._blockchain_state()
        peak = state.get("peak")
        if peak is None:
            raise ChainUnavailable(f"full node at {self._where}: the node has no peak yet")
        if peak.is_transaction_block:
            last_tx_height, timestamp = int(peak.height), peak.timestamp
        else:
            last_tx_height, timestamp = int(peak.prev_transaction_block_height), None
            if peak.prev_transaction_block_hash is not None:
                tx_hash = peak.prev_transaction_block_hash
                tx_block = await self._call_or_none(partial(self._client.get_block_record, tx_hash), BLOCK_NOT_FOUND)
                timestamp = tx_block.timestamp if tx_block is not None else None
        return PeakInfo(
            height=int(peak.height),
            header_hash=peak.header_hash,
            synced=bool(state.get("sync", {}).get("synced", False)),
            last_transaction_block_height=last_tx_height,
            timestamp=int(timestamp) if timestamp is not None else None,
            difficulty=int(state.get("difficulty") or 0),
            sub_slot_iters=int(state.get("sub_slot_iters") or 0),
        )

    async def consensus_constants(self) -> ConsensusConstants:
        if self._constants is None:
            self._constants = await self._call(self._client.get_constants)
        return self._constants

    async def signage_point(self, sp_hash: bytes32) -> ChallengeInfo | None:
        found = await self._call_or_none(
            partial(self._client.get_recent_signage_point_or_eos, sp_hash, None), SIGNAGE_POINT_NOT_FOUND
        )
        if found is None:
            return None
        sp: SignagePoint = found["signage_point"]
        if sp.cc_vdf is None:  # the node only caches real signage points here; be safe anyway
            return None
        return ChallengeInfo(
            sp_hash=sp_hash,
            end_of_sub_slot=False,
            # The farmer checks its proofs against the challenge chain VDF's challenge and the VDF output's hash
            # (farmer_protocol.NewSignagePoint.challenge_hash / challenge_chain_sp): use exactly the same inputs.
            challenge_hash=sp.cc_vdf.challenge,
            cc_sp_output_hash=sp.cc_vdf.output.get_hash(),
            signage_point_index=await self._signage_point_index(int(sp.cc_vdf.number_of_iterations)),
            time_received=float(found["time_received"]),
            reverted=bool(found["reverted"]),
        )

    async def _signage_point_index(self, iterations: int) -> int:
        """The signage point's index in its sub-slot: its VDF iterations over the iterations between two points.

        Only v2 plots use it (their plot filter); v1 proofs verify without it. The node's current sub-slot iters
        are used: they change only at epoch boundaries, rarely within a signage point's short life.
        """
        sub_slot_iters = await self._current_sub_slot_iters()
        interval = sub_slot_iters // int((await self.consensus_constants()).NUM_SPS_SUB_SLOT)
        return iterations // interval if interval > 0 else 0

    async def _current_sub_slot_iters(self) -> int:
        return await self._sub_slot_iters.get("sub_slot_iters", self._read_sub_slot_iters)

    async def _read_sub_slot_iters(self) -> int:
        state = await self._blockchain_state()
        return int(state.get("sub_slot_iters") or 0)

    async def end_of_sub_slot(self, challenge_hash: bytes32) -> ChallengeInfo | None:
        found = await self._call_or_none(
            partial(self._client.get_recent_signage_point_or_eos, None, challenge_hash), END_OF_SUB_SLOT_NOT_FOUND
        )
        if found is None:
            return None
        eos: EndOfSubSlotBundle = found["eos"]
        # The node announces an end of sub-slot to farmers as signage point 0 whose challenge and signage point
        # hash are both the new sub-slot's challenge (the finished challenge chain sub-slot's hash).
        sub_slot_challenge = eos.challenge_chain.get_hash()
        return ChallengeInfo(
            sp_hash=challenge_hash,
            end_of_sub_slot=True,
            challenge_hash=sub_slot_challenge,
            cc_sp_output_hash=sub_slot_challenge,
            signage_point_index=0,
            time_received=float(found["time_received"]),
            reverted=bool(found["reverted"]) and not await self._sub_slot_finished_in_chain(sub_slot_challenge),
        )

    async def _sub_slot_finished_in_chain(self, sub_slot_challenge: bytes32) -> bool:
        """Whether a block of the peak's chain finished this sub-slot, searched from the peak down.

        chia's node gives up after 10 sub-slots (100 minutes on mainnet) and answers "reverted" for an end of
        sub-slot further back, although it is in the chain. A pool whose confirmation fell that far behind (a
        restart, a slow node) would wrongly refuse the partials its farmers sent on it.
        """
        peak_height = (await self.peak()).height
        known = self._searched_sub_slots.get(sub_slot_challenge)
        if known is not None and (known[1] or known[0] == peak_height):
            return known[1]
        found = await self._search_finished_sub_slot(sub_slot_challenge, peak_height)
        self._searched_sub_slots[sub_slot_challenge] = (peak_height, found)
        self._searched_sub_slots.move_to_end(sub_slot_challenge)
        while len(self._searched_sub_slots) > SEARCHED_SUB_SLOTS_KEPT:
            self._searched_sub_slots.popitem(last=False)
        return found

    async def _search_finished_sub_slot(self, sub_slot_challenge: bytes32, peak_height: int) -> bool:
        end = peak_height + 1
        lowest = max(0, end - END_OF_SUB_SLOT_SEARCH_BLOCKS)
        while end > lowest:
            start = max(lowest, end - BLOCK_RECORDS_PER_CALL)
            records = await self._call(partial(self._client.get_block_records, start, end))
            for record in records:
                finished = record.get("finished_challenge_slot_hashes") or []
                if any(bytes32.from_hexstr(slot_hash) == sub_slot_challenge for slot_hash in finished):
                    return True
            end = start
        return False

    async def coin_record(self, coin_id: bytes32) -> CoinRecord | None:
        return await self._call_or_none(partial(self._client.get_coin_record_by_name, coin_id), COIN_NOT_FOUND)

    async def coin_records_by_names(self, coin_ids: Sequence[bytes32]) -> list[CoinRecord]:
        if not coin_ids:
            return []
        return await self._call(
            partial(self._client.get_coin_records_by_names, list(coin_ids), include_spent_coins=True)
        )

    async def coin_records_by_puzzle_hashes(
        self,
        puzzle_hashes: Sequence[bytes32],
        include_spent: bool,
        start_height: int | None = None,
        end_height: int | None = None,
    ) -> list[CoinRecord]:
        return await self._call(
            partial(
                self._client.get_coin_records_by_puzzle_hashes,
                list(puzzle_hashes),
                include_spent_coins=include_spent,
                start_height=start_height,
                end_height=end_height,
            )
        )

    async def coin_records_by_parent_ids(self, parent_ids: Sequence[bytes32], include_spent: bool) -> list[CoinRecord]:
        return await self._call(
            partial(self._client.get_coin_records_by_parent_ids, list(parent_ids), include_spent_coins=include_spent)
        )

    async def coin_spend(self, coin: CoinRecord) -> CoinSpend | None:
        if not coin.spent:
            return None
        return await self._call_or_none(
            partial(self._client.get_puzzle_and_solution, coin.coin.name(), uint32(coin.spent_block_index)),
            SPEND_NOT_AT_HEIGHT,
        )

    async def push(self, spend_bundle: SpendBundle) -> PushResult:
        try:
            await self._timed(self._client.push_tx(spend_bundle))
        except _TRANSPORT_ERRORS as exc:
            raise ChainUnavailable(f"full node at {self._where}: {exc or type(exc).__name__}") from exc
        except ResponseFailureError as exc:
            if await self._already_on_chain(spend_bundle):
                return PushResult(accepted=True, error=None)
            return PushResult(accepted=False, error=_refusal_reason(exc.response))
        return PushResult(accepted=True, error=None)

    async def _already_on_chain(self, spend_bundle: SpendBundle) -> bool:
        """A spend bundle's additions exist on chain exactly when that very bundle (or one with the same
        spends) was included: then a refusal to push it again is a success."""
        additions = spend_bundle.additions()
        if not additions:
            return False
        return await self.coin_record(additions[0].name()) is not None

    async def in_mempool(self, spend_bundle_name: bytes32) -> bool:
        item = await self._call_or_none(
            partial(self._client.get_mempool_item_by_tx_id, spend_bundle_name), NOT_IN_MEMPOOL
        )
        return item is not None

    async def fee_estimate(self, cost: int, target_seconds: int) -> int:
        answer = await self._call(partial(self._client.get_fee_estimate, [target_seconds], cost))
        try:
            (estimate,) = answer["estimates"]
            return int(estimate)
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainUnavailable(f"full node at {self._where}: odd fee estimate {answer!r}") from exc


def refusal_code(response: dict[str, Any]) -> str | None:
    """The node's structured error code of a refusal ("COIN_RECORD_NOT_FOUND", "UNKNOWN", ...), if it gave one."""
    structured = response.get("structuredError")
    code = structured.get("code") if isinstance(structured, dict) else None
    return code if isinstance(code, str) else None


def _refusal_reason(response: dict[str, Any]) -> str:
    structured = response.get("structuredError") or {}
    data = structured.get("data") if isinstance(structured, dict) else None
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return str(response.get("error", "refused by the full node"))
