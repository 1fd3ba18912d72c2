"""The benchmark's full node, in a process of its own so that its CPU is measured apart from the pool and the sender.

``python -m pool.bench.node CORPUS WORK_DIR`` starts chia's simulator full node (and the pool wallet the pool needs at
start-up) on the corpus's recorded chain, prints one line ``@bench ready {json}`` with the RPC endpoints, then reads
commands on stdin, one a line, and answers each on stdout with a line starting ``@bench``:

- ``event N``: announce corpus event N (a signage point, or a block with its ends of sub-slot), as a timelord would;
  the node records the time it first saw it. Answer ``@bench ok N CPU``, CPU the process's CPU seconds spent on it.
- ``quit``: stop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from chia_rs import FullBlock

from pool.bench.corpus import Corpus, CorpusEvent
from pool.devnet.world import World

PREFIX = "@bench"


class BenchWorld(World):
    """A devnet World whose chain is a recorded one (replay), and whose pool plots live in a folder of their own."""

    pool_plot_folder = "bench"
    pool_plot_dirs_kept = 10_000  # every PlotNFT of the corpus keeps its plots

    def __init__(self, *, work_dir: Path, discriminant_bits: int, chain: tuple[FullBlock, ...] = ()) -> None:
        super().__init__(work_dir=work_dir, discriminant_bits=discriminant_bits)
        self._recorded_chain = chain

    async def _first_blocks(self) -> None:
        if not self._recorded_chain:
            await super()._first_blocks()
            return
        for block in self._recorded_chain:
            await self.simulator.full_node.add_block(block)
        if self.peak_height != self._recorded_chain[-1].height:
            raise RuntimeError("the node did not take the corpus's recorded chain")

    async def announce(self, event: CorpusEvent) -> None:
        if event.block is not None:
            await self.replay_block(event.block)
        if event.signage_point is not None:
            await self.replay_signage_point(event.signage_point)


def _answer(text: str) -> None:
    sys.stdout.write(f"{PREFIX} {text}\n")
    sys.stdout.flush()


async def serve(corpus_path: Path, work_dir: Path) -> None:
    corpus = Corpus.load(corpus_path)
    world = BenchWorld(work_dir=work_dir, discriminant_bits=corpus.discriminant_bits, chain=corpus.chain)
    async with world:
        if world.pool_target_puzzle_hash != corpus.target_puzzle_hash:
            raise RuntimeError("the pool wallet's address is not the corpus's pool target")
        endpoints = {
            "node": [world.full_node_rpc.host, world.full_node_rpc.port, str(world.full_node_rpc.root_path)],
            "wallet": [world.pool_wallet_rpc.host, world.pool_wallet_rpc.port, str(world.pool_wallet_rpc.root_path)],
            "wallet_fingerprint": world.pool_wallet_fingerprint,
            "network": world.network,
        }
        _answer("ready " + json.dumps(endpoints))
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "quit":
                break
            number = int(line[1])
            # The node's own work for the event (verifying the signage point, validating the block), so that the
            # report can tell it from the work of serving the pool.
            cpu_before = time.process_time()
            await world.announce(corpus.events[number])
            _answer(f"ok {number} {time.process_time() - cpu_before:.6f}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(Path(sys.argv[1]), Path(sys.argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
