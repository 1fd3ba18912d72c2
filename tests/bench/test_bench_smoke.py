"""The benchmark's machinery on a tiny corpus: built on the session's shared chain, saved and loaded back, replayed
against a real pool process (``python -m pool``) and a node process started from the recorded chain.

Checks structure and correctness, never timings: every partial is answered, every accepted partial ends confirmed, and
every figure of the report is present and positive. The attack phase runs too, each attack for about a second at a
tenth of its rate (500 sockets), and is checked functionally: every honest partial accepted under each attack, no
forged request accepted, and the node calls the attacks make bounded. Slow: it starts a node and a pool process of its
own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pool.bench.attacks import attacks
from pool.bench.corpus import Corpus, CorpusSize, build_corpus
from pool.bench.report import render_table, report_json
from pool.bench.run import BenchOptions, run_bench
from pool.bench.signing import Signer
from pool.devnet.world import World

pytestmark = pytest.mark.slow

ATTACK_PARTIALS = 3  # honest partials under each attack (and in the row without one)
LAUNCHER_LOOKUPS = 20  # the pool's default limits.launcher_lookups burst, per address
# Node calls a row may make beyond the row without attack: the pool's own loops (peak, confirmation, singletons) tick
# at their own times, and a row under attack lasts longer (the attacker starts and stops).
LOOP_SLACK = 15
WALK_CALLS = ("get_puzzle_and_solution", "get_coin_records_by_parent_ids", "get_coin_record_by_name")


async def test_bench_replays_a_tiny_corpus_and_reports_every_figure(world: World, tmp_path: Path) -> None:
    # No fresh launcher: on a chain in the same state (this module runs first on a fresh session chain, or alone) the
    # PlotNFT is the same as last time, and its plots come back from the cache instead of being plotted.
    attack_partials = ATTACK_PARTIALS * (1 + len(attacks(1.0)))
    corpus = await build_corpus(
        world, CorpusSize(1, 2, 18 + attack_partials, bystanders=2), fresh_launchers=False, progress=lambda _: None
    )
    path = tmp_path / "corpus.json"
    corpus.save(path)
    loaded = Corpus.load(path)
    assert loaded.partial_count == corpus.partial_count >= 18 + attack_partials
    assert [bytes(block) for block in loaded.chain] == [bytes(block) for block in corpus.chain]
    assert len(loaded.events) == len(corpus.events)
    assert loaded.bystanders == corpus.bystanders and len(loaded.bystanders) == 2

    # The sender writes the request out directly: the same bytes, and the same payload hash, as chia's classes give.
    signer = Signer(loaded)
    for partial in loaded.partials():
        signed = signer.partial(partial, 1234)
        request = signer.request(partial, 1234, signed.signature)
        assert signed.body == json.dumps(request.to_json_dict()).encode()
        assert signed.message == request.payload.get_hash()

    options = BenchOptions(
        run_dir=tmp_path / "run",
        rates=("10",),
        connections=2,
        closed_partials=8,
        duration=1.0,
        attack_honest_rate=ATTACK_PARTIALS,
        attack_seconds=1.0,
        attack_scale=0.1,
    )
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
    assert document["accepted"] == document["confirmed"] == 18 + attack_partials
    assert document["every_accepted_partial_confirmed"] and document["rejected_after_acceptance"] == 0
    assert document["floor_ms"] > 0 and document["machine_limit_per_s"] > 0
    assert document["pool_peak_rss_mb"] and all(mb > 0 for mb in document["pool_peak_rss_mb"].values())
    assert document["node_peak_rss_mb"] > 0
    names = {target["target"] for target in document["targets"]}
    assert len(names) == 8
    table = render_table(document)
    print(table)
    assert all(target["target"] in table for target in document["targets"])
    check_attack_phase(document["attacks"])


def check_attack_phase(rows: list[dict[str, Any]]) -> None:
    """Every honest partial accepted under each attack; no forged request accepted; node calls bounded."""
    assert [row["attack"] for row in rows] == ["none", "post_farmer", "get_farmer", "partials", "idle_sockets"]
    by_key = {row["attack"]: row for row in rows}
    for row in rows:
        assert row["honest_accepted"] == row["honest_sent"] == ATTACK_PARTIALS, (row["name"], row["honest_refused"])
    baseline = by_key["none"]["node_calls"]
    for key in ("post_farmer", "get_farmer", "partials"):
        attacker = by_key[key]["attacker"]
        assert attacker["sent"] > 0
        # Every forged request refused by the protocol (HTTP 200 with an error), none accepted, none failing; or,
        # once the attacking address is cooled down, refused at the connection (429, or closed unread).
        refused = ("INVALID_SIGNATURE", "REQUEST_FAILED", "HTTP 429", "transport error (ServerDisconnectedError)")
        assert all(answer.startswith(refused) for answer in attacker["answers"]), (key, attacker["answers"])
        assert sum(attacker["answers"].values()) == attacker["sent"]
    # Anonymous POST /farmer with rotating launcher ids: no walk (the launchers were read at registration), and
    # the PlotNFT look-ups of unproven requests within the attacking address's budget.
    post_farmer = by_key["post_farmer"]["node_calls"]
    for call in WALK_CALLS:
        assert post_farmer.get(call, 0) <= baseline.get(call, 0) + LOOP_SLACK // 3, (call, post_farmer, baseline)
    lookups = "get_coin_records_by_puzzle_hashes"
    assert post_farmer.get(lookups, 0) <= baseline.get(lookups, 0) + LAUNCHER_LOOKUPS + LOOP_SLACK // 3
    # Forged GET /farmer and forged partials fail their signature before any chain read; idle sockets read nothing.
    for key in ("get_farmer", "partials", "idle_sockets"):
        assert by_key[key]["node_calls_total"] <= by_key["none"]["node_calls_total"] + LOOP_SLACK, by_key[key]
    sockets = by_key["idle_sockets"]["attacker"]
    assert sockets["opened"] >= by_key["idle_sockets"]["attack_sockets"] and sockets["connect_errors"] == 0
