"""Requests signed as chia's farmer signs them: POST /farmer with the owner key, partials with the plot key (harvester
and farmer halves) aggregated with the farmer's authentication key, over the payload's hash.

The plot key signature is made with one signature instead of three: under the augmented scheme, signatures of the same
message with the same prepended public key add up like their secret keys, so signing once with local + farmer +
taproot secret keys gives exactly the bytes chia's harvester and farmer produce together, at a third of the cost (the
sender shares the machine with the pool it measures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pool.bench.corpus import Corpus, CorpusPartial
from pool.chia_adapter import (
    AugSchemeMPL,
    G1Element,
    G2Element,
    PostFarmerPayload,
    PostFarmerRequest,
    PostPartialPayload,
    PostPartialRequest,
    PrivateKey,
    bytes32,
    std_hash,
    uint64,
)
from pool.chia_adapter.simulation import generate_taproot_sk

HARVESTER_ID = bytes32(std_hash(b"pool bench harvester"))
# The order of the BLS12-381 group: secret keys are integers modulo it.
_GROUP_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


def _sum_of_keys(keys: list[PrivateKey]) -> PrivateKey:
    total = sum(int.from_bytes(bytes(key), "big") for key in keys) % _GROUP_ORDER
    return PrivateKey.from_bytes(total.to_bytes(32, "big"))


@dataclass(frozen=True)
class _PlotSigner:
    public_key: G1Element
    secret_key: PrivateKey  # local + farmer + taproot


@dataclass(frozen=True)
class _EncodedProof:
    serialized: bytes
    json: str


@dataclass(frozen=True)
class SignedPartial:
    body: bytes
    message: bytes32
    signature: G2Element
    plot_public_key: G1Element
    authentication_public_key: G1Element


class Signer:
    def __init__(self, corpus: Corpus) -> None:
        self._corpus = corpus
        self._plots: list[_PlotSigner] = []
        for plot in corpus.plots:
            farmer = corpus.farmers[plot.farmer]
            pool_plot = plot.pool_plot(farmer.p2_singleton_puzzle_hash)
            taproot = generate_taproot_sk(plot.local_secret_key.get_g1(), plot.farmer_secret_key.get_g1())
            combined = _sum_of_keys([plot.local_secret_key, plot.farmer_secret_key, taproot])
            self._plots.append(_PlotSigner(pool_plot.plot_public_key, combined))
        # The farmer's software keeps its public keys too: deriving one costs a tenth of a signature.
        self._authentication_keys = [farmer.authentication_secret_key.get_g1() for farmer in corpus.farmers]
        # Each proof's bytes (for the payload's hash) and JSON (for the body), encoded once: only the token and the
        # signature change at send time, and the sender shares the machine with the pool it measures.
        # Keyed by identity: the corpus (held here) keeps each CorpusProof, and hashing a proof would cost more.
        self._proofs = {
            id(partial.proof): _EncodedProof(
                bytes(partial.proof.proof_of_space), json.dumps(partial.proof.proof_of_space.to_json_dict())
            )
            for partial in corpus.partials()
        }

    def partial(self, partial: CorpusPartial, token: int) -> SignedPartial:
        """The request chia's farmer sends for this proof: ``PostPartialRequest(payload, signature, str(token))``
        as JSON, its payload hashed from the Streamable serialization of its fields (written out here: see
        ``request``, which builds the same through chia's classes)."""
        plot = self._plots[partial.proof.plot]
        farmer_index = self._corpus.plots[partial.proof.plot].farmer
        farmer, authentication_key = self._corpus.farmers[farmer_index], self._authentication_keys[farmer_index]
        message = self._message(partial, token)
        signature = AugSchemeMPL.aggregate(
            [
                AugSchemeMPL.sign(plot.secret_key, message, plot.public_key),
                AugSchemeMPL.sign(farmer.authentication_secret_key, message, authentication_key),
            ]
        )
        body = self._body(partial, token, signature)
        return SignedPartial(body, message, signature, plot.public_key, authentication_key)

    def forged_partial(self, partial: CorpusPartial, token: int, signature: G2Element) -> bytes:
        """The partial's request as its farmer would send it, but with ``signature`` (someone else's)."""
        return self._body(partial, token, signature)

    def _message(self, partial: CorpusPartial, token: int) -> bytes32:
        event = self._corpus.events[partial.event]
        farmer = self._corpus.farmers[self._corpus.plots[partial.proof.plot].farmer]
        proof = self._proofs[id(partial.proof)]
        return bytes32(
            std_hash(
                farmer.launcher_id
                + token.to_bytes(8, "big")
                + proof.serialized
                + event.sp_hash
                + (b"\x01" if event.end_of_sub_slot else b"\x00")
                + HARVESTER_ID
            )
        )

    def _body(self, partial: CorpusPartial, token: int, signature: G2Element) -> bytes:
        event = self._corpus.events[partial.event]
        farmer = self._corpus.farmers[self._corpus.plots[partial.proof.plot].farmer]
        proof = self._proofs[id(partial.proof)]
        return (
            f'{{"payload": {{"launcher_id": "0x{farmer.launcher_id.hex()}", "authentication_token": {token}, '
            f'"proof_of_space": {proof.json}, "sp_hash": "0x{event.sp_hash.hex()}", '
            f'"end_of_sub_slot": {"true" if event.end_of_sub_slot else "false"}, '
            f'"harvester_id": "0x{HARVESTER_ID.hex()}"}}, "aggregate_signature": "0x{bytes(signature).hex()}", '
            f'"authentication_token_v2": "{token}"}}'
        ).encode()

    def request(self, partial: CorpusPartial, token: int, signature: G2Element) -> PostPartialRequest:
        """The request as chia's classes build it (what ``partial`` writes out directly)."""
        event = self._corpus.events[partial.event]
        farmer = self._corpus.farmers[self._corpus.plots[partial.proof.plot].farmer]
        payload = PostPartialPayload(
            farmer.launcher_id,
            uint64(token),
            partial.proof.proof_of_space,
            event.sp_hash,
            event.end_of_sub_slot,
            HARVESTER_ID,
        )
        return PostPartialRequest(payload, signature, authentication_token_v2=str(token))

    def post_farmer(self, farmer_index: int, token: int) -> bytes:
        farmer = self._corpus.farmers[farmer_index]
        payout = std_hash(b"pool bench payout" + farmer.launcher_id).hex()
        payload = PostFarmerPayload(
            farmer.launcher_id, uint64(token), farmer.authentication_secret_key.get_g1(), payout, None
        )
        signature = AugSchemeMPL.sign(farmer.owner_secret_key, payload.get_hash())
        return json.dumps(PostFarmerRequest(payload, signature).to_json_dict()).encode()
