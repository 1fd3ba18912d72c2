"""Plots: k20 plots tied to a PlotNFT's pool contract, cached between runs, and the proofs they hold.

Plots are made with chia's plotter (the farmer key + a local key derived from the contract, so the same PlotNFT gets
the same plots back), and looked up for a signage point the way a harvester does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from chia_rs import AugSchemeMPL, G1Element, G2Element, PrivateKey, ProofOfSpace
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint32
from filelock import FileLock

from pool.chia_adapter.simulation import (
    Params,
    PlotKeys,
    ProverProtocol,
    V1Prover,
    calculate_pos_challenge,
    calculate_prefix_bits,
    create_plots,
    encode_puzzle_hash,
    generate_plot_public_key,
    generate_taproot_sk,
    get_prover_from_file,
    make_pos,
    master_sk_to_local_sk,
    passes_plot_filter,
    std_hash,
)
from pool.devnet.base import WorldBase
from pool.devnet.chain import SignagePointInfo

POOL_PLOT_SIZE = 20
# Pool plot folders kept in the cache (one per p2_singleton puzzle hash, ~50 MB for 3 plots; each fresh PlotNFT
# adds one). A whole test run reuses 7 (the benchmark smoke test's, test_world's, the end-to-end devnets' one, and
# the HTTP tests' four): fewer kept, and each run's new folders evict the ones it needs next (least recently used
# first), so that every run plotted all 14 plots again. 12 leaves room for a module run on its own, whose PlotNFTs
# differ from the whole run's.
_POOL_PLOT_DIRS_KEPT = 12
# A folder used this recently is never pruned, however many newer ones there are: a test session (or another one
# beside it) may still be using its plots. A run whose modules fell differently onto the workers makes many new
# PlotNFTs, and pruning to 12 removed the plots of one made early in the same run, still in use.
_POOL_PLOT_DIR_IN_USE_SECONDS = 3600


@dataclass(frozen=True)
class PoolPlot:
    """A k20 plot tied to a pool contract (p2_singleton) puzzle hash, with the keys that sign for it.

    The plot key is local_pk + farmer_pk + taproot_pk: the harvester signs with the local key, the farmer with the
    farmer key and the taproot key (chia's farmer_api does the same for partials).
    """

    path: Path
    plot_id: bytes32
    p2_singleton_puzzle_hash: bytes32
    local_secret_key: PrivateKey
    farmer_secret_key: PrivateKey
    plot_public_key: G1Element

    def harvester_signature(self, message: bytes) -> G2Element:
        return AugSchemeMPL.sign(self.local_secret_key, message, self.plot_public_key)

    def farmer_signature(self, message: bytes) -> G2Element:
        taproot_sk = generate_taproot_sk(self.local_secret_key.get_g1(), self.farmer_secret_key.get_g1())
        return AugSchemeMPL.aggregate(
            [
                AugSchemeMPL.sign(self.farmer_secret_key, message, self.plot_public_key),
                AugSchemeMPL.sign(taproot_sk, message, self.plot_public_key),
            ]
        )

    def sign(self, message: bytes) -> G2Element:
        """The full plot key signature of ``message``, as harvester and farmer build it together."""
        return AugSchemeMPL.aggregate([self.harvester_signature(message), self.farmer_signature(message)])


@dataclass(frozen=True)
class FoundProof:
    proof_of_space: ProofOfSpace
    plot: PoolPlot
    quality_string: bytes32


class PlotsMixin(WorldBase):
    """Pool plots of a World and the proofs of space they hold."""

    # Subfolder of the plot cache holding pool plots, and how many PlotNFTs' plot folders it keeps (the benchmark's
    # corpus keeps its many PlotNFTs' plots in a folder of its own).
    pool_plot_folder: str = "pool"
    pool_plot_dirs_kept: int = _POOL_PLOT_DIRS_KEPT

    async def create_pool_plots(self, p2_singleton_puzzle_hash: bytes32, count: int) -> list[PoolPlot]:
        """``count`` k20 plots tied to the pool contract ``p2_singleton_puzzle_hash``, signed by the farmer key.

        Cached in chia's test plot folder per puzzle hash: the same PlotNFT gets the same plots back without plotting.
        """
        plot_root = self.block_tools.plot_dir / self.pool_plot_folder
        plot_dir = plot_root / p2_singleton_puzzle_hash.hex()
        await asyncio.to_thread(plot_root.mkdir, parents=True, exist_ok=True)
        # Test processes running side by side (pytest -n) make the same first PlotNFT of a fresh chain: one plots,
        # the other waits and finds the plots made (as chia's BlockTools locks its own plot folder).
        lock = FileLock(plot_root / ".lock")
        await asyncio.to_thread(lock.acquire)
        try:
            plots = [await self._pool_plot(plot_dir, p2_singleton_puzzle_hash, index) for index in range(count)]
            # Used now, so among the last to be pruned: the cache keeps the folders used last (a PlotNFT every run
            # makes again, as the end-to-end tests' and the benchmark's do), not just those plotted last.
            os.utime(plot_dir)
            _prune_plot_dirs(plot_root, keep=plot_dir, kept=self.pool_plot_dirs_kept)
        finally:
            lock.release()
        return plots

    async def _pool_plot(self, plot_dir: Path, p2_singleton_puzzle_hash: bytes32, index: int) -> PoolPlot:
        farmer_sk = self.farmer_secret_key
        # The plot's local key decides its plot id: derive it from the contract and index so plots are reproducible.
        local_master_sk = AugSchemeMPL.key_gen(
            std_hash(b"pool devnet plot" + p2_singleton_puzzle_hash + bytes([index]))
        )
        params = Params(
            size=POOL_PLOT_SIZE,
            num=1,
            buffer=100,
            num_threads=0,
            buckets=0,
            tmp_dir=plot_dir / "tmp",
            tmp2_dir=plot_dir / "tmp",
            final_dir=plot_dir,
            plotid=None,
            memo=None,
            nobitfield=False,
            stripe_size=2000,
        )
        keys = PlotKeys(farmer_sk.get_g1(), None, encode_puzzle_hash(p2_singleton_puzzle_hash, "xch"))
        await asyncio.to_thread(plot_dir.mkdir, parents=True, exist_ok=True)
        created, existed = await create_plots(params, keys, use_datetime=False, test_private_keys=[local_master_sk])
        ((plot_id, path),) = (created or existed).items()
        local_sk = master_sk_to_local_sk(local_master_sk)
        plot_pk = generate_plot_public_key(local_sk.get_g1(), farmer_sk.get_g1(), include_taproot=True)
        return PoolPlot(path, plot_id, p2_singleton_puzzle_hash, local_sk, farmer_sk, plot_pk)

    def proofs_for_signage_point(self, plots: list[PoolPlot], sp: SignagePointInfo) -> list[FoundProof]:
        """Every proof of space the plots hold for the signage point, as a harvester would look them up.

        Applies the plot filter of the devnet constants; no difficulty check (that is the pool's job).
        """
        found: list[FoundProof] = []
        for plot in plots:
            prover = self._prover(plot.path)
            prefix_bits = calculate_prefix_bits(self.constants, uint32(sp.peak_height), prover.get_param())
            if not passes_plot_filter(prefix_bits, plot.plot_id, sp.challenge_hash, sp.sp_hash):
                continue
            pos_challenge = calculate_pos_challenge(plot.plot_id, sp.challenge_hash, sp.sp_hash)
            for index, quality in enumerate(prover.get_qualities_for_challenge(pos_challenge)):
                assert isinstance(prover, V1Prover)
                proof = prover.get_full_proof(pos_challenge, index)
                pos = make_pos(
                    pos_challenge,
                    None,
                    plot.p2_singleton_puzzle_hash,
                    plot.plot_public_key,
                    prover.get_param(),
                    proof,
                )
                found.append(FoundProof(pos, plot, quality.get_string()))
        return found

    def _prover(self, path: Path) -> ProverProtocol:
        if path not in self._provers:
            self._provers[path] = get_prover_from_file(str(path))
        return self._provers[path]


def _prune_plot_dirs(plot_root: Path, *, keep: Path, kept: int) -> None:
    """Keep the plot cache bounded: each fresh PlotNFT adds a folder of plots that no later run will reuse."""
    folders = sorted((p for p in plot_root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    in_use_since = time.time() - _POOL_PLOT_DIR_IN_USE_SECONDS
    for folder in folders[kept:]:
        if folder != keep and folder.stat().st_mtime < in_use_since:
            shutil.rmtree(folder, ignore_errors=True)
