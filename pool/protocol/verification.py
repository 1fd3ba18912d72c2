"""BLS signature checks off the event loop.

``chia_rs.AugSchemeMPL.aggregate_verify`` releases the GIL, so a small thread pool lets one pool process check
partials on every core while the event loop goes on parsing and answering other requests. The proof-of-space check
(chiapos) holds the GIL and is short (~0.1 ms): it stays on the event loop, where a thread hand-off would cost more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pool.chia_adapter import AugSchemeMPL, G1Element, G2Element


class SignatureVerifier:
    """``threads`` verifying threads; 0 verifies on the calling (event loop) thread."""

    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="verify") if threads > 0 else None

    async def aggregate_verify(
        self, public_keys: Sequence[G1Element], messages: Sequence[bytes], signature: G2Element
    ) -> bool:
        keys, payloads = list(public_keys), list(messages)
        if self._executor is None:
            return bool(AugSchemeMPL.aggregate_verify(keys, payloads, signature))
        loop = asyncio.get_running_loop()
        verified = await loop.run_in_executor(self._executor, AugSchemeMPL.aggregate_verify, keys, payloads, signature)
        return bool(verified)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
