"""Several full nodes behind the FullNode interface, one in use at a time.

One node is a single point of failure for intake: every partial's signage point is looked up on it. When the node
in use cannot answer a call (ChainUnavailable: unreachable, silent, or refusing), the same call is asked of the next
node, in the configured order and round again, and the node that answered stays in use. The first node is the
operator's choice: after PREFER_FIRST_AFTER seconds on another one, calls start with the first again. A node's own
"not found" is an answer, not a failure: it is returned as it is. Other nodes are connected when first needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pool.chain.interface import ChainUnavailable, ChallengeInfo, FullNode, PeakInfo, PushResult
from pool.chain.node_rpc import RpcFullNode
from pool.chia_adapter import CoinRecord, CoinSpend, ConsensusConstants, SpendBundle, bytes32
from pool.config import RpcConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

PREFER_FIRST_AFTER = 60.0  # seconds


class FailoverFullNode(FullNode):
    def __init__(
        self,
        endpoints: Sequence[RpcConfig],
        connected: RpcFullNode,
        in_use: int = 0,
        prefer_first_after: float = PREFER_FIRST_AFTER,
    ) -> None:
        """``connected``: the node of ``endpoints[in_use]``, connected already."""
        self._endpoints = list(endpoints)
        self._nodes: list[RpcFullNode | None] = [None] * len(self._endpoints)
        self._nodes[in_use] = connected
        self._in_use = in_use
        self._prefer_first_after = prefer_first_after
        self._moved_at = time.monotonic()
        self._observer: Callable[[str, float, bool], None] | None = None

    @classmethod
    async def connect(cls, endpoints: Sequence[RpcConfig]) -> FailoverFullNode:
        """Connected to the first node that answers; raises ChainUnavailable naming every node's failure."""
        failures: list[str] = []
        for index, endpoint in enumerate(endpoints):
            try:
                node = await RpcFullNode.connect(endpoint)
            except ChainUnavailable as exc:
                failures.append(str(exc))
                continue
            if failures:
                log.warning("starting on full node %s: %s", where(endpoint), "; ".join(failures))
            return cls(endpoints, node, in_use=index)
        raise ChainUnavailable("; ".join(failures))

    @property
    def in_use(self) -> RpcConfig:
        return self._endpoints[self._in_use]

    @property
    def observer(self) -> Callable[[str, float, bool], None] | None:
        return self._observer

    @observer.setter
    def observer(self, observer: Callable[[str, float, bool], None] | None) -> None:
        """Told (call name, seconds, answered) after every RPC of every node (the pool's metrics)."""
        self._observer = observer
        for node in self._nodes:
            if node is not None:
                node.observer = observer

    async def close(self) -> None:
        for index, node in enumerate(self._nodes):
            if node is not None:
                self._nodes[index] = None
                await node.close()

    async def _node(self, index: int) -> RpcFullNode:
        node = self._nodes[index]
        if node is None:
            node = await RpcFullNode.connect(self._endpoints[index])
            node.observer = self._observer
            self._nodes[index] = node
        return node

    async def _ask(self, call: Callable[[RpcFullNode], Awaitable[T]]) -> T:
        if self._in_use and time.monotonic() - self._moved_at >= self._prefer_first_after:
            self._in_use, self._moved_at = 0, time.monotonic()  # the first node may be back: try it first again
        failures: list[str] = []
        # The node this call starts from, kept: calls run concurrently, and another may move the pool to another
        # node while this one waits for its answer.
        first = self._in_use
        for step in range(len(self._endpoints)):
            index = (first + step) % len(self._endpoints)
            try:
                answer = await call(await self._node(index))
            except ChainUnavailable as exc:
                failures.append(str(exc))
                continue
            if failures and self._in_use != index:
                log.warning(
                    "full node %s failed (%s): using full node %s",
                    where(self._endpoints[first]),
                    failures[0],
                    where(self._endpoints[index]),
                )
                self._in_use, self._moved_at = index, time.monotonic()
            return answer
        raise ChainUnavailable("; ".join(failures))

    async def peak(self) -> PeakInfo:
        return await self._ask(lambda node: node.peak())

    async def consensus_constants(self) -> ConsensusConstants:
        return await self._ask(lambda node: node.consensus_constants())

    async def signage_point(self, sp_hash: bytes32) -> ChallengeInfo | None:
        return await self._ask(lambda node: node.signage_point(sp_hash))

    async def end_of_sub_slot(self, challenge_hash: bytes32) -> ChallengeInfo | None:
        return await self._ask(lambda node: node.end_of_sub_slot(challenge_hash))

    async def coin_record(self, coin_id: bytes32) -> CoinRecord | None:
        return await self._ask(lambda node: node.coin_record(coin_id))

    async def coin_records_by_names(self, coin_ids: Sequence[bytes32]) -> list[CoinRecord]:
        return await self._ask(lambda node: node.coin_records_by_names(coin_ids))

    async def coin_records_by_puzzle_hashes(
        self,
        puzzle_hashes: Sequence[bytes32],
        include_spent: bool,
        start_height: int | None = None,
        end_height: int | None = None,
    ) -> list[CoinRecord]:
        return await self._ask(
            lambda node: node.coin_records_by_puzzle_hashes(puzzle_hashes, include_spent, start_height, end_height)
        )

    async def coin_records_by_parent_ids(self, parent_ids: Sequence[bytes32], include_spent: bool) -> list[CoinRecord]:
        return await self._ask(lambda node: node.coin_records_by_parent_ids(parent_ids, include_spent))

    async def coin_spend(self, coin: CoinRecord) -> CoinSpend | None:
        return await self._ask(lambda node: node.coin_spend(coin))

    async def push(self, spend_bundle: SpendBundle) -> PushResult:
        return await self._ask(lambda node: node.push(spend_bundle))

    async def in_mempool(self, spend_bundle_name: bytes32) -> bool:
        return await self._ask(lambda node: node.in_mempool(spend_bundle_name))

    async def fee_estimate(self, cost: int, target_seconds: int) -> int:
        return await self._ask(lambda node: node.fee_estimate(cost, target_seconds))


def where(endpoint: RpcConfig) -> str:
    return f"{endpoint.host}:{endpoint.port}"
