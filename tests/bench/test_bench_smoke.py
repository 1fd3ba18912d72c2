"""The benchmark's machinery on a tiny corpus: built on the session's shared chain, saved and loaded back, replayed
against a real pool process (``python -m pool``) and a node process started from the recorded chain.

Checks structure and correctness, never timings: every partial is answered, every accepted partial ends confirmed,
and every figure of the report is present and positive. Slow: it starts a node and a pool process of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pool.bench.corpus import Corpus, CorpusSize, build_corpus
from pool.bench.report import render_table, report_json
from pool.bench.run import BenchOptions, run_bench
from pool.bench.signing import Signer
from pool.devnet.world import World

pytestmark = pytest.mark.slow


async def test_bench_replays_a_tiny_corpus_and_reports_every_figure(world: World, tmp_path: Path) -> None:
    # No fresh launcher: on a chain in the same state (this module runs first on a fresh session chain, or alone) the
    # PlotNFT is the same as last time, and its plots come back from the cache instead of being plotted.
    corpus = await build_corpus(world, CorpusSize(1, 2, 18), fresh_launchers=False, progress=lambda _: None)
    path = tmp_path / "corpus.json"
    corpus.save(path)
    loaded = Corpus.load(path)
    assert loaded.partial_count == corpus.partial_count >= 18
    assert [bytes(block) for block in loaded.chain] == [bytes(block) for block in corpus.chain]
    assert len(loaded.events) == len(corpus.events)

    # The sender writes the request out directly: the same bytes, and the same payload hash, as chia's classes give.
    signer = Signer(loaded)
    for partial in loaded.partials():
        signed = signer.partial(partial, 1234)
        request = signer.request(partial, 1234, signed.signature)
        assert signed.body == json.dumps(request.to_json_dict()).encode()
        assert signed.message == request.payload.get_hash()

    options = BenchOptions(run_dir=tmp_path / "run", rates=("10",), connections=2, closed_partials=8, duration=1.0)
    result = await run_bench(loaded, path, options, progress=lambda _: None)
    document = report_json(result)

    closed, open_loop = document["phases"]
    assert (closed["mode"], open_loop["mode"]) == ("closed", "open")
    assert closed["sent"] == 8 and open_loop["sent"] == 10
    for phase in document["phases"]:
        # Every corpus proof is good enough at the bench's difficulty and sent once, in time: all are accepted.
        assert phase["accepted"] == phase["sent"], phase["refused"]
        assert phase["accepted_per_s"] > 0 and phase["share_of_machine_limit"] > 0
        assert all(value is not None and value > 0 for value in phase["latency_ms"].values())
        assert phase["pool_cpu_seconds_total"] >= phase["pool_cpu_seconds_intake"] > 0
        assert phase["pool_cpu_x_floor_per_accepted_total"] > 0
        assert phase["node_cpu_seconds_total"] > 0
        assert phase["confirmation_catch_up_seconds"] is not None
    assert document["accepted"] == document["confirmed"] == 18
    assert document["every_accepted_partial_confirmed"] and document["rejected_after_acceptance"] == 0
    assert document["floor_ms"] > 0 and document["machine_limit_per_s"] > 0
    assert document["pool_peak_rss_mb"] and all(mb > 0 for mb in document["pool_peak_rss_mb"].values())
    assert document["node_peak_rss_mb"] > 0
    names = {target["target"] for target in document["targets"]}
    assert len(names) == 7
    table = render_table(document)
    assert all(target["target"] in table for target in document["targets"])
