"""The cryptography floor: what one partial costs at the least, measured on this machine in this run.

Per partial, on one thread: ``AugSchemeMPL.aggregate_verify`` of its two keys (plot key and authentication key over
the payload hash) plus the proof-of-space check (``verify_and_get_quality_string`` with the network's constants). The
machine's limit is then cores x 1000 / floor_ms partials a second.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from itertools import islice

from pool.bench.corpus import Corpus
from pool.bench.signing import Signer
from pool.chia_adapter import AugSchemeMPL, ConsensusConstants, uint32, verify_and_get_quality_string

ROUNDS = 3


@dataclass(frozen=True)
class Floor:
    ms: float  # per partial
    samples: int
    cores: int

    @property
    def machine_limit(self) -> float:
        """Partials a second the machine could verify with every core doing nothing else."""
        return self.cores * 1000 / self.ms


def measure_floor(corpus: Corpus, constants: ConsensusConstants, token: int, samples: int = 300) -> Floor:
    signer = Signer(corpus)
    cases = []
    for partial in islice(corpus.partials(), samples):
        signed = signer.partial(partial, token)
        cases.append((signed, partial.proof.proof_of_space, corpus.events[partial.event]))
    if not cases:
        raise ValueError("the corpus holds no partials")
    round_means: list[float] = []
    for _ in range(ROUNDS):
        spent = 0.0
        for signed, proof, event in cases:
            started = time.perf_counter()
            verified = AugSchemeMPL.aggregate_verify(
                [signed.plot_public_key, signed.authentication_public_key],
                [signed.message, signed.message],
                signed.signature,
            )
            quality = verify_and_get_quality_string(
                proof,
                constants,
                event.challenge_hash,
                event.sp_hash,
                height=uint32(event.peak_height),
                prev_transaction_block_height=uint32(event.peak_height),
                signage_point_index=event.signage_point_index,
            )
            spent += time.perf_counter() - started
            if not verified or quality is None:
                raise RuntimeError("a corpus partial does not verify: the corpus does not match this chain")
        round_means.append(spent * 1000 / len(cases))
    # The least of the rounds: a floor, and on a shared machine the round least disturbed by others.
    return Floor(ms=min(round_means), samples=len(cases), cores=os.cpu_count() or 1)
