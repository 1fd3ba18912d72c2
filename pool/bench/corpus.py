"""The benchmark's corpus: a recorded chain, PlotNFTs with k20 plots, and the proofs found per signage point.

A partial must reach the pool within seconds of when the pool's node first saw its signage point, so signed requests
cannot be cached. What is durable is cached instead: the chain up to the corpus (its full blocks), the keys, the plots
(in chia's test plot cache, never in the repository), and, in order, every signage point and block the corpus was
recorded with, each with the proofs of space the plots hold for it. At replay a node built from the same chain is told
each event right before its partials are sent, and each partial is signed then with the current authentication token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chia_rs import FullBlock, PrivateKey, ProofOfSpace
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint32, uint64

from pool.chia_adapter import calculate_iterations_quality
from pool.chia_adapter.simulation import RespondSignagePoint, calculate_sp_interval_iters, generate_plot_public_key
from pool.devnet.world import FoundProof, PoolPlot, SignagePointInfo, World

# 2: the consensus constants' hash is recorded (a corpus's blocks are valid only under the constants it was made with).
# 3: bystanders, PlotNFTs farming to the pool that never join it (the attack phase names them).
FORMAT_VERSION = 3
# Blocks deep the PlotNFT launchers are buried before the corpus starts: above any confirmation threshold the bench's
# pool uses, so that POST /farmer finds every singleton.
BURY_BLOCKS = 4
RELATIVE_LOCK_HEIGHT = 5
BENCH_POOL_URL = "http://127.0.0.1:8444"
# The difficulty the bench's farmers get; the corpus keeps only proofs good enough for it.
DIFFICULTY = 1

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CorpusFarmer:
    launcher_id: bytes32
    p2_singleton_puzzle_hash: bytes32
    owner_secret_key: PrivateKey
    authentication_secret_key: PrivateKey


@dataclass(frozen=True)
class CorpusPlot:
    farmer: int  # index into Corpus.farmers
    path: str
    plot_id: bytes32
    local_secret_key: PrivateKey
    farmer_secret_key: PrivateKey

    def pool_plot(self, p2_singleton_puzzle_hash: bytes32) -> PoolPlot:
        plot_pk = generate_plot_public_key(
            self.local_secret_key.get_g1(), self.farmer_secret_key.get_g1(), include_taproot=True
        )
        return PoolPlot(
            Path(self.path),
            self.plot_id,
            p2_singleton_puzzle_hash,
            self.local_secret_key,
            self.farmer_secret_key,
            plot_pk,
        )


@dataclass(frozen=True)
class CorpusProof:
    plot: int  # index into Corpus.plots
    proof_of_space: ProofOfSpace


@dataclass(frozen=True)
class CorpusEvent:
    """A signage point, or a block (announced with its ends of sub-slot), and the proofs the plots hold for it.

    For a block, the proofs are those of its last end of sub-slot (end_of_sub_slot partials, sp_hash = challenge).
    """

    signage_point: RespondSignagePoint | None
    block: FullBlock | None
    challenge_hash: bytes32
    sp_hash: bytes32
    signage_point_index: int
    peak_height: int
    proofs: tuple[CorpusProof, ...]

    @property
    def end_of_sub_slot(self) -> bool:
        return self.block is not None


@dataclass(frozen=True)
class CorpusPartial:
    """One partial to send: the event that must be announced first, and the proof."""

    event: int
    proof: CorpusProof


@dataclass(frozen=True)
class Corpus:
    discriminant_bits: int
    constants_hash: bytes32  # of the devnet's consensus constants the chain was made under
    target_puzzle_hash: bytes32
    chain: tuple[FullBlock, ...]  # every block up to the first event, from genesis
    farmers: tuple[CorpusFarmer, ...]
    plots: tuple[CorpusPlot, ...]
    events: tuple[CorpusEvent, ...]
    # Launcher ids of real PlotNFTs farming to the pool that the bench never registers: what an attacker finds on
    # chain and names in anonymous POST /farmer requests (the pool answers a member's at once: already known).
    bystanders: tuple[bytes32, ...] = ()

    def partials(self) -> Iterator[CorpusPartial]:
        for number, event in enumerate(self.events):
            for proof in event.proofs:
                yield CorpusPartial(number, proof)

    @property
    def partial_count(self) -> int:
        return sum(len(event.proofs) for event in self.events)

    # ---------------------------------------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._to_json()))
        temporary.replace(path)  # a corpus interrupted while written is never read back

    @classmethod
    def load(cls, path: Path) -> Corpus:
        document = json.loads(path.read_text())
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: corpus format {document.get('version')}, expected {FORMAT_VERSION}")
        return cls._from_json(document)

    def _to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "discriminant_bits": self.discriminant_bits,
            "constants_hash": self.constants_hash.hex(),
            "target_puzzle_hash": self.target_puzzle_hash.hex(),
            "chain": [bytes(block).hex() for block in self.chain],
            "farmers": [
                [
                    f.launcher_id.hex(),
                    f.p2_singleton_puzzle_hash.hex(),
                    _key_hex(f.owner_secret_key),
                    _key_hex(f.authentication_secret_key),
                ]
                for f in self.farmers
            ],
            "plots": [
                [p.farmer, p.path, p.plot_id.hex(), _key_hex(p.local_secret_key), _key_hex(p.farmer_secret_key)]
                for p in self.plots
            ],
            "events": [_event_to_json(event) for event in self.events],
            "bystanders": [launcher_id.hex() for launcher_id in self.bystanders],
        }

    @classmethod
    def _from_json(cls, document: dict[str, Any]) -> Corpus:
        return cls(
            discriminant_bits=int(document["discriminant_bits"]),
            constants_hash=bytes32.fromhex(document["constants_hash"]),
            target_puzzle_hash=bytes32.fromhex(document["target_puzzle_hash"]),
            chain=tuple(FullBlock.from_bytes(bytes.fromhex(text)) for text in document["chain"]),
            farmers=tuple(
                CorpusFarmer(bytes32.fromhex(a), bytes32.fromhex(b), _key(c), _key(d))
                for a, b, c, d in document["farmers"]
            ),
            plots=tuple(
                CorpusPlot(int(farmer), path, bytes32.fromhex(plot_id), _key(local), _key(farmer_key))
                for farmer, path, plot_id, local, farmer_key in document["plots"]
            ),
            events=tuple(_event_from_json(item) for item in document["events"]),
            bystanders=tuple(bytes32.fromhex(text) for text in document.get("bystanders", [])),
        )


def _key_hex(key: PrivateKey) -> str:
    return bytes(key).hex()


def _key(text: str) -> PrivateKey:
    return PrivateKey.from_bytes(bytes.fromhex(text))


def _event_to_json(event: CorpusEvent) -> dict[str, Any]:
    return {
        "signage_point": None if event.signage_point is None else bytes(event.signage_point).hex(),
        "block": None if event.block is None else bytes(event.block).hex(),
        "challenge_hash": event.challenge_hash.hex(),
        "sp_hash": event.sp_hash.hex(),
        "index": event.signage_point_index,
        "peak_height": event.peak_height,
        "proofs": [[proof.plot, bytes(proof.proof_of_space).hex()] for proof in event.proofs],
    }


def _event_from_json(item: dict[str, Any]) -> CorpusEvent:
    signage_point = item["signage_point"]
    block = item["block"]
    return CorpusEvent(
        signage_point=None if signage_point is None else RespondSignagePoint.from_bytes(bytes.fromhex(signage_point)),
        block=None if block is None else FullBlock.from_bytes(bytes.fromhex(block)),
        challenge_hash=bytes32.fromhex(item["challenge_hash"]),
        sp_hash=bytes32.fromhex(item["sp_hash"]),
        signage_point_index=int(item["index"]),
        peak_height=int(item["peak_height"]),
        proofs=tuple(
            CorpusProof(int(plot), ProofOfSpace.from_bytes(bytes.fromhex(text))) for plot, text in item["proofs"]
        ),
    )


# -------------------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class CorpusSize:
    farmers: int
    plots_per_farmer: int
    partials: int
    bystanders: int = 0  # PlotNFTs farming to the pool, never registered, without plots


async def build_corpus(world: World, size: CorpusSize, *, fresh_launchers: bool, progress: Progress) -> Corpus:
    """Create the PlotNFTs and their plots on ``world``, bury them, then record signage points and blocks until the
    plots have found ``size.partials`` proofs good enough for the bench's difficulty."""
    farmers: list[CorpusFarmer] = []
    plots: list[PoolPlot] = []
    plot_farmers: list[int] = []
    for number in range(size.farmers):
        progress(f"corpus: PlotNFT {number + 1}/{size.farmers} and its {size.plots_per_farmer} k20 plot(s)")
        plotnft = await world.create_plotnft(
            pool_url=BENCH_POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT, fresh_launcher=fresh_launchers
        )
        farmers.append(
            CorpusFarmer(
                plotnft.launcher_id,
                plotnft.p2_singleton_puzzle_hash,
                plotnft.owner_secret_key,
                plotnft.authentication_secret_key,
            )
        )
        made = await world.create_pool_plots(plotnft.p2_singleton_puzzle_hash, size.plots_per_farmer)
        plots.extend(made)
        plot_farmers.extend([number] * len(made))
    bystanders: list[bytes32] = []
    for number in range(size.bystanders):
        progress(f"corpus: bystander PlotNFT {number + 1}/{size.bystanders} (never registered)")
        plotnft = await world.create_plotnft(
            pool_url=BENCH_POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT, fresh_launcher=fresh_launchers
        )
        bystanders.append(plotnft.launcher_id)
    await world.farm_blocks(BURY_BLOCKS)
    chain = tuple(await world.simulator.get_all_full_blocks())  # genesis first
    events = await _record_events(world, plots, size.partials, progress)
    corpus_plots = tuple(
        CorpusPlot(farmer, str(plot.path), plot.plot_id, plot.local_secret_key, plot.farmer_secret_key)
        for farmer, plot in zip(plot_farmers, plots, strict=True)
    )
    return Corpus(
        discriminant_bits=int(world.constants.DISCRIMINANT_SIZE_BITS),
        constants_hash=world.constants.get_hash(),
        target_puzzle_hash=world.pool_target_puzzle_hash,
        chain=chain,
        farmers=tuple(farmers),
        plots=corpus_plots,
        events=tuple(events),
        bystanders=tuple(bystanders),
    )


async def _record_events(world: World, plots: list[PoolPlot], wanted: int, progress: Progress) -> list[CorpusEvent]:
    plot_index = {plot.plot_id: number for number, plot in enumerate(plots)}
    events: list[CorpusEvent] = []
    found = 0
    recorded_height = world.peak_height
    while found < wanted:
        sp = await world.new_signage_point()
        if world.peak_height != recorded_height:
            # new_signage_point farmed a block in a new sub-slot first: record it (with its end of sub-slot's proofs).
            for block in await _blocks_above(world, recorded_height):
                events.append(_block_event(world, block, plots, plot_index))
            recorded_height = world.peak_height
        proofs = _good_proofs(world, world.proofs_for_signage_point(plots, sp), sp, plot_index)
        events.append(
            CorpusEvent(
                world.recorded_signage_point(sp.sp_hash),
                None,
                sp.challenge_hash,
                sp.sp_hash,
                sp.index,
                sp.peak_height,
                proofs,
            )
        )
        before = found
        found = sum(len(event.proofs) for event in events)
        if found // 500 != before // 500:
            progress(f"corpus: {min(found, wanted)}/{wanted} proofs over {len(events)} signage points and blocks")
    return events


async def _blocks_above(world: World, height: int) -> list[FullBlock]:
    blocks = await world.simulator.get_all_full_blocks()
    return sorted((block for block in blocks if block.height > height), key=lambda block: block.height)


def _block_event(world: World, block: FullBlock, plots: list[PoolPlot], plot_index: dict[bytes32, int]) -> CorpusEvent:
    if not block.finished_sub_slots:
        return CorpusEvent(None, block, block.header_hash, block.header_hash, 0, int(block.height), ())
    end_of_sub_slot = block.finished_sub_slots[-1]
    challenge = end_of_sub_slot.challenge_chain.get_hash()
    sp = SignagePointInfo(challenge, challenge, 0, True, end_of_sub_slot.reward_chain.get_hash(), int(block.height))
    proofs = _good_proofs(world, world.proofs_for_signage_point(plots, sp), sp, plot_index)
    return CorpusEvent(None, block, challenge, challenge, 0, int(block.height), proofs)


def _good_proofs(
    world: World, found: list[FoundProof], sp: SignagePointInfo, plot_index: dict[bytes32, int]
) -> tuple[CorpusProof, ...]:
    """The proofs good enough at the bench's difficulty (with chia's test constants, a k20 proof nearly always is)."""
    constants = world.constants
    threshold = calculate_sp_interval_iters(constants, constants.POOL_SUB_SLOT_ITERS)
    good: list[CorpusProof] = []
    for proof in found:
        required = calculate_iterations_quality(
            constants,
            proof.quality_string,
            proof.proof_of_space.param(),
            uint64(DIFFICULTY),
            sp.sp_hash,
            height=uint32(sp.peak_height),
        )
        if required < threshold:
            good.append(CorpusProof(plot_index[proof.plot.plot_id], proof.proof_of_space))
    return tuple(good)
