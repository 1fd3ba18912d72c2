"""``python -m pool ledger fund-fees`` as an operator runs it, against the shared chain's real pool wallet: the
operator's own coins join the pool fee share, never more than the wallet holds beyond the ledger's money; bad input
is one line and changes nothing."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml

from pool.devnet.pool_config import world_pool_document
from pool.devnet.session import free_port
from pool.devnet.world import World
from pool.store.models import LedgerKind
from pool.store.sqlite import SqlitePoolStore

REPO = Path(__file__).resolve().parents[2]


async def run_pool(*args: str) -> tuple[int, str, str]:
    """The command in its own process, awaited, so that the chain in this process goes on answering it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pool",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_fund_fees_gives_the_operators_coins_to_the_fee_share(world: World, tmp_path: Path) -> None:
    store_path = tmp_path / "pool.sqlite"
    config = tmp_path / "pool.yaml"
    config.write_text(yaml.safe_dump(world_pool_document(world, store_path=store_path, server_port=free_port())))
    store = SqlitePoolStore(store_path)
    await store.open()
    try:
        await world.farm_blocks(1, world.pool_target_puzzle_hash)  # coins of the operator's own in the pool wallet
        await world.farm_blocks(1)

        code, out, err = await run_pool("ledger", "fund-fees", "0.000000002xch", "--config", str(config))
        assert code == 0, err
        assert "funded 0.000000002000 XCH (2000 mojos) to the pool fee share" in out
        ledger = await store.ledger()
        assert (ledger.operator_funding, ledger.pool_fee_share) == (2000, 2000) and ledger.balanced
        (entry,) = await store.ledger_entries()
        assert entry.kind is LedgerKind.FEE_FUNDING and entry.reference.startswith("operator, wallet spendable ")

        # More than the wallet holds, a malformed amount, and a mojo fraction: refused in one line, nothing written.
        for amount, words, expected_code in (
            ("1000000xch", "only", 1),
            ("lots", "give mojos", 2),
            ("1.5", "mojos are whole", 2),
            ("0", "more than zero", 2),
        ):
            code, out, err = await run_pool("ledger", "fund-fees", amount, "--config", str(config))
            assert code == expected_code and words in err, (amount, code, err)
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert (await store.ledger()).operator_funding == 2000

        code, out, err = await run_pool("ledger", "--config", str(config))
        assert code == 0 and "operator's fee funding" in out, err
    finally:
        await store.close()
