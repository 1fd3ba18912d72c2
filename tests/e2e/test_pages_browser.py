"""The pool page and a farmer's page in a real browser: Debian's headless Chromium driven by Playwright, against a
pool on chia's simulator with chia's real farmer (its partials, a won block, a payout), every visible number checked
against the store. Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright
from prometheus_client.parser import text_string_to_metric_families

from pool.chia_adapter import encode_puzzle_hash
from pool.devnet.pool_config import OPERATOR_HEADERS
from pool.devnet.session import Devnet
from pool.estimates import block_points, estimated_space, format_space
from pool.http.page_data import percent
from pool.http.pages import SESSION_COOKIE
from pool.payouts.books import xch
from pool.store.models import BatchStatus, ClaimStatus, FarmerRecord, PartialStatus
from tests.e2e.driving import drive_until, wait_until
from tests.http.api_checks import checked

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEADLINE = 180.0
HUGE_DIFFICULTY = 10**12  # far above what a k20 proof meets with the simulator's constants


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    async with Devnet(tmp_path_factory.mktemp("devnet"), farmers_count=1, plots_per_farmer=3) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium is not None, "Debian's chromium is not installed: run `make browser` (apt-get install chromium)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


async def farmer_record(devnet: Devnet) -> FarmerRecord:
    record = await devnet.ctx.store.get_farmer(devnet.farmers[0].plotnft.launcher_id)
    assert record is not None
    return record


async def text(page: Page, selector: str) -> str:
    return (await page.locator(selector).inner_text()).strip()


async def test_a_real_farmer_earns_is_refused_once_and_gets_paid(devnet: Devnet) -> None:
    """The state the pages show: accepted partials, refusals with a reason, a won block absorbed and paid."""
    farmer = devnet.farmers[0]
    launcher_id = farmer.plotnft.launcher_id
    store = devnet.ctx.store

    async def credited() -> bool:
        record = await store.get_farmer(launcher_id)
        return record is not None and record.points > 0

    await drive_until(devnet, credited, "farmer registered and points credited", deadline=DEADLINE)

    # The real farmer still sends at the difficulty it knows; the pool refuses those proofs: PROOF_NOT_GOOD_ENOUGH.
    difficulty = (await farmer_record(devnet)).difficulty
    await store.set_difficulty(launcher_id, HUGE_DIFFICULTY, int(time.time()))

    async def refused() -> bool:
        counts = await store.partial_counts(0, launcher_id)
        return any(c.outcome == "PROOF_NOT_GOOD_ENOUGH" for c in counts)

    await drive_until(devnet, refused, "a partial refused as not good enough", deadline=DEADLINE)
    await store.set_difficulty(launcher_id, difficulty, int(time.time()))
    restored_at = int(time.time())
    state = devnet.farmer.pool_state(farmer.plotnft.p2_singleton_puzzle_hash)
    assert state is not None
    state["next_farmer_update"] = 0  # due now: the farmer reads its difficulty again (GET /farmer) ...
    await devnet.farmer.farmer_service._node.update_pool_state()  # ... at once, not at its next 60 s poll

    await devnet.win_block(farmer)

    async def paid() -> bool:
        return (await devnet.confirmed_payouts())[1] > 0

    await drive_until(devnet, paid, "payout confirmed", farm_every=2, deadline=DEADLINE)

    async def earning_again() -> bool:
        # partial_counts groups by hour: the partials themselves say whether any was accepted since the restore.
        partials = await store.recent_partials(launcher_id, since=restored_at)
        return any(p.status is not PartialStatus.REJECTED for p in partials)

    await drive_until(devnet, earning_again, "partials accepted again at the normal difficulty", deadline=DEADLINE)

    # The chain stops here; once every pending partial is settled, the figures hold still for the pages.
    async def settled() -> bool:
        return not await store.pending_partials(received_before=devnet.ctx.now() + 1)

    await wait_until(settled, "pending partials settled", deadline=DEADLINE)


async def test_pool_page_shows_the_store(devnet: Devnet, browser: Browser, shots: Path) -> None:
    store = devnet.ctx.store
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    response = await page.goto(f"{devnet.pool_url}/")
    assert response is not None and response.status == 200
    assert await text(page, "#pool-name") == devnet.config.pool.name
    assert await text(page, "#fee") == devnet.config.pool.fee_display
    assert await text(page, "#farmers") == str(len(await store.list_farmers(members_only=True)))
    claims = await store.reward_claims()
    won = {c.coin_id for c in claims if c.status is not ClaimStatus.FAILED}
    assert await text(page, "#blocks-won") == str(len(won))
    confirmed = sum(c.amount for c in claims if c.status is ClaimStatus.CONFIRMED)
    assert confirmed > 0
    assert await text(page, "#rewards-claimed") == xch(confirmed)
    assert await text(page, "#paid") == xch((await devnet.confirmed_payouts())[1])
    assert await text(page, "#pool-url") == devnet.pool_url
    assert devnet.pool_url in await text(page, "#join")
    # Every recent round with its transactions, and no farmer's launcher id anywhere on the public page.
    tx_ids = []
    for payout_round in await store.rounds(limit=10):
        assert payout_round.id is not None
        tx_ids += [b.tx_id.hex() for b in await store.batches(payout_round.id) if b.tx_id is not None]
    shown = [t.strip() for t in await page.locator("#rounds code.tx-id").all_inner_texts()]
    assert sorted(shown) == sorted(tx_ids) and tx_ids
    # The payout policy, from the configuration; no farmer's launcher id anywhere on the public page.
    assert await text(page, "#policy-fee") == f"{devnet.config.pool.fee_display} of every block reward"
    assert (await text(page, "#policy-scheme")).startswith(devnet.config.payouts.scheme)
    assert devnet.farmers[0].plotnft.launcher_id.hex() not in await page.content()
    await page.screenshot(path=shots / "pool-page.png", full_page=True)
    await page.close()


async def test_nothing_about_a_farmer_without_signature_or_session(devnet: Devnet, browser: Browser) -> None:
    launcher = devnet.farmers[0].plotnft.launcher_id.hex()
    context = await browser.new_context()
    page = await context.new_page()
    response = await page.goto(f"{devnet.pool_url}/login")
    assert response is not None and response.status == 401
    assert launcher not in await page.content()
    # A link with the launcher id but no valid signature is refused (the protocol's error reply).
    response = await page.goto(f"{devnet.pool_url}/login?launcher_id={launcher}&authentication_token=1&signature=00")
    assert response is not None
    assert "error_code" in await page.content()
    assert await context.cookies() == []
    # A made-up session cookie opens nothing either.
    await context.add_cookies([{"name": SESSION_COOKIE, "value": "forged", "url": devnet.pool_url}])
    response = await page.goto(f"{devnet.pool_url}/login")
    assert response is not None and response.status == 401
    assert launcher not in await page.content()
    await context.close()


async def test_farmer_page_from_the_real_farmers_login_link(devnet: Devnet, browser: Browser, shots: Path) -> None:
    farmer = devnet.farmers[0]
    store = devnet.ctx.store
    link = await devnet.login_link(farmer)
    assert link is not None and link.startswith(f"{devnet.pool_url}/login?launcher_id=")
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    response = await page.goto(link)
    assert response is not None and response.status == 200
    assert page.url == f"{devnet.pool_url}/login"  # the signature is not left in the address bar or history

    (cookie,) = await context.cookies()
    assert cookie["name"] == SESSION_COOKIE
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    lifetime = devnet.config.server.session_lifetime
    assert time.time() < cookie["expires"] <= time.time() + lifetime + 5

    record = await farmer_record(devnet)
    assert await text(page, "#launcher-id") == record.launcher_id.hex()
    assert await text(page, "#payout-address") == encode_puzzle_hash(record.payout_puzzle_hash, "txch")
    assert await text(page, "#member") == "yes"
    assert await text(page, "#plotnft-state") == "FARMING_TO_POOL"
    assert await text(page, "#points") == str(record.points)
    assert await text(page, "#difficulty") == str(record.difficulty_at(devnet.ctx.now()))
    assert await text(page, "#owed-mojos") == str(record.owed)
    members = await store.list_farmers()
    assert await text(page, "#pool-points") == str(sum(f.points for f in members))

    counts = await store.partial_counts(devnet.ctx.now() - 24 * 3600, record.launcher_id)
    accepted = sum(c.count for c in counts if c.outcome in ("pending", "confirmed"))
    refused = {c.outcome: c.count for c in counts if c.outcome not in ("pending", "confirmed")}
    assert accepted > 0 and refused.get("PROOF_NOT_GOOD_ENOUGH", 0) > 0
    assert await text(page, "#partials-accepted") == str(accepted)
    assert await text(page, "#partials-refused") == str(sum(refused.values()))
    for reason, count in refused.items():
        assert await text(page, f'#refusals td[data-reason="{reason}"]') == str(count)
    points_24h = sum(c.points for c in counts if c.outcome in ("pending", "confirmed"))
    assert await text(page, "#points-24h") == str(points_24h)
    height = (await devnet.ctx.node.peak()).height
    space = estimated_space(points_24h, 24 * 3600, devnet.ctx.constants, height)
    assert await text(page, "#space") == format_space(space)
    assert await page.locator("#partials svg rect").count() > 0  # the chart has bars

    payments = await store.payments(launcher_id=record.launcher_id)
    assert payments
    expected = []
    for payment in payments:
        assert payment.round_id is not None
        (batch,) = [b for b in await store.batches(payment.round_id) if b.index == payment.batch_index]
        assert batch.status is BatchStatus.CONFIRMED and batch.tx_id is not None
        expected.append((str(payment.amount), batch.tx_id.hex()))
    rows = page.locator("#payouts tr:has(td)")
    shown = [
        (
            await rows.nth(i).locator("td[data-mojos]").get_attribute("data-mojos"),
            await text(page, f"#payouts tr:nth-child({i + 2}) code.tx-id"),
        )
        for i in range(await rows.count())
    ]
    assert sorted(shown) == sorted(expected)
    await page.screenshot(path=shots / "farmer-page.png", full_page=True)

    # A reload needs no new signature: the session cookie carries it.
    response = await page.reload()
    assert response is not None and response.status == 200
    assert await text(page, "#launcher-id") == record.launcher_id.hex()
    await context.close()


async def test_blocks_page_shows_the_effort_of_the_real_block(devnet: Devnet, browser: Browser, shots: Path) -> None:
    """The block the real farmer won: its claim, recorded by the rewards loop, kept the simulator's network figures,
    and the page's effort is the round's points over the points such a block takes (docs/api.md)."""
    ctx = devnet.ctx
    claims = list(reversed(await ctx.store.won_blocks(100)))  # oldest first
    assert claims
    constants, begin = ctx.constants, 0
    expected_cells = []
    partials = await ctx.store.recent_partials(devnet.farmers[0].plotnft.launcher_id, since=0)
    for claim in claims:
        # The node's blockchain state and the reward coin's block, as the rewards loop saw them.
        assert claim.network_difficulty and claim.network_sub_slot_iters and claim.coin_timestamp
        end = max(begin, claim.coin_timestamp)
        points = sum(
            p.difficulty for p in partials if p.status is not PartialStatus.REJECTED and begin <= p.received_at < end
        )
        expected = block_points(claim.network_difficulty, claim.network_sub_slot_iters, constants)
        expected_cells.append(percent(points / expected))
        begin = end
    page = await browser.new_page(viewport={"width": 1100, "height": 700})
    response = await page.goto(f"{devnet.pool_url}/blocks")
    assert response is not None and response.status == 200
    shown = [cell.strip() for cell in await page.locator("#blocks td.effort").all_inner_texts()]
    assert shown == list(reversed(expected_cells))
    assert (await text(page, "#effort-so-far")).endswith("%")  # the node's figures now
    await page.screenshot(path=shots / "blocks-page.png", full_page=True)
    await page.close()


async def test_public_farmer_page_shows_harvesters_and_no_address(
    devnet: Devnet, browser: Browser, shots: Path
) -> None:
    """Anyone's view of the real farmer: the same figures as its own page, its harvester, never its address."""
    record = await farmer_record(devnet)
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    response = await page.goto(f"{devnet.pool_url}/farmers/{record.launcher_id.hex()}")
    assert response is not None and response.status == 200
    assert await text(page, "#launcher-id") == record.launcher_id.hex()
    assert await text(page, "#points") == str(record.points)
    assert await text(page, "#difficulty") == str(record.difficulty_at(devnet.ctx.now()))
    figures = await devnet.ctx.store.harvester_figures(record.launcher_id, devnet.ctx.now() - 24 * 3600, 50)
    assert figures  # the real harvester's id, sent with each partial
    ids = [cell.strip() for cell in await page.locator("#harvester-table code.harvester-id").all_inner_texts()]
    assert ids == [f.harvester_id.hex() for f in figures]
    accepted = [cell.strip() for cell in await page.locator("#harvester-table td.accepted").all_inner_texts()]
    assert accepted == [str(f.accepted) for f in figures]
    assert await page.locator("#payouts tr:has(td)").count() == len(
        await devnet.ctx.store.payments(launcher_id=record.launcher_id)
    )
    content = await page.content()
    for private in (record.payout_puzzle_hash.hex(), encode_puzzle_hash(record.payout_puzzle_hash, "txch")):
        assert private not in content
    assert await page.locator('#private-link a[href="/login"]').count() == 1
    await page.screenshot(path=shots / "farmer-public-page.png", full_page=True)
    await page.close()


async def test_status_and_metrics_of_the_running_pool(devnet: Devnet) -> None:
    """The operator's view of the same pool, its loops running: GET /status and GET /metrics against the store."""
    store = devnet.ctx.store
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{devnet.pool_url}/status", headers=OPERATOR_HEADERS) as response:
            assert response.status == 200
            status = await response.json()
        async with session.get(f"{devnet.pool_url}/metrics", headers=OPERATOR_HEADERS) as response:
            assert response.status == 200
            exposition = await response.text()

    loops = status["loops"]
    assert {"peak", "confirm-partials", "singletons", "rewards", "payouts", "difficulty"} <= set(loops)
    for name, health in loops.items():
        assert health["runs"] >= 1 and health["last_success"] is not None, (name, health)
    assert status["chain"]["node_synced"] and status["chain"]["wallet_synced"]
    assert status["chain"]["peak_height"] == (await devnet.ctx.node.peak()).height
    assert status["partials"]["pending"] == len(await store.pending_partials(received_before=devnet.ctx.now() + 1))
    assert status["ledger"]["balanced"] is True
    assert status["ledger"]["owed"] == (await store.ledger()).owed

    samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert samples[("pool_partials_total", (("result", "accepted"),))] >= 1
    assert samples[("pool_partials_total", (("result", "PROOF_NOT_GOOD_ENOUGH"),))] >= 1
    confirmed_claims = await store.reward_claims(ClaimStatus.CONFIRMED)
    assert samples[("pool_reward_claims", (("status", "confirmed"),))] == len(confirmed_claims)
    rounds = await store.rounds()
    assert samples[("pool_payout_rounds", (("status", "done"),))] == sum(1 for r in rounds if r.status.value == "done")
    open_round = await store.open_round()
    open_batches = [] if open_round is None or open_round.id is None else await store.batches(open_round.id)
    for batch_status in BatchStatus:
        expected = sum(1 for b in open_batches if b.status is batch_status)
        assert samples[("pool_payment_batches_open_round", (("status", batch_status.value),))] == expected
    assert samples[("pool_paid_to_farmers_mojos", ())] == (await devnet.confirmed_payouts())[1]
    assert samples[("pool_loop_last_success_timestamp_seconds", (("loop", "peak"),))] > 0
    rpc_calls = sum(v for (name, _), v in samples.items() if name == "pool_node_rpc_duration_seconds_count")
    assert rpc_calls > 0
    assert samples[("pool_wallet_up", ())] == 1
    assert samples[("pool_ledger_balanced", ())] == 1


async def test_the_public_api_of_the_running_pool_against_its_openapi_document(devnet: Devnet) -> None:
    """The public JSON API of the same pool (the real farmer's partials, its refusal, the block it won and its
    payout), every answer checked against the OpenAPI document the pool serves."""
    record = await farmer_record(devnet)
    launcher_id = record.launcher_id.hex()
    farmer_path = "/api/v1/farmers/{launcher_id}"
    bodies: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{devnet.pool_url}/api/v1/openapi.json") as response:
            document = await response.json()
        for path in ("/api/v1/pool", "/api/v1/blocks", "/api/v1/rounds", farmer_path):
            url = devnet.pool_url + path.replace("{launcher_id}", launcher_id)
            async with session.get(url, headers={"Origin": "https://example.org"}) as response:
                bodies[path] = await checked(response, document, path)
                text = await response.text()
            for hidden in (record.payout_instructions, record.payout_puzzle_hash.hex()):
                assert hidden not in text
    store = devnet.ctx.store
    won = [c for c in await store.reward_claims() if c.status is not ClaimStatus.FAILED]
    assert bodies["/api/v1/pool"]["blocks_won"] == len(won)
    assert launcher_id in {b["finder_launcher_id"] for b in bodies["/api/v1/blocks"]["blocks"]}
    farmer = bodies[farmer_path]
    assert farmer["points"] == (await farmer_record(devnet)).points
    assert farmer["partials_24h"]["accepted"] >= 1 and farmer["partials_24h"]["refused"]["PROOF_NOT_GOOD_ENOUGH"] >= 1
    assert any(p["status"] == "confirmed" for p in farmer["payouts"])
    assert bodies["/api/v1/rounds"]["rounds"]


async def test_farmer_settings_form_with_its_csrf_token_applied_by_the_loops(devnet: Devnet, browser: Browser) -> None:
    """The settings form on the farmer's page: refused without the session's CSRF token, values outside the pool's
    bounds shown and not saved, saved ones recorded with their time and listed; the difficulty loop then holds the
    farmer at its preset, and the farmer's webhook receives its notifications."""
    from pool.http.settings import xch_text
    from pool.store.models import NotificationKind
    from tests.loops.webhook_receiver import WebhookReceiver

    launcher_id = devnet.farmers[0].plotnft.launcher_id
    store, config = devnet.ctx.store, devnet.config
    link = await devnet.login_link(devnet.farmers[0])
    assert link is not None
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(link)

    async def submit() -> int:
        async with page.expect_response(lambda answer: answer.url.endswith("/login/settings")) as posted:
            await page.click("#settings-save")
        return (await posted.value).status

    # As another site's page would send it: the session's cookie, but no token, or a made-up one.
    for forge in ("e => e.remove()", "e => { e.value = 'forged' }"):
        await page.goto(f"{devnet.pool_url}/login")
        await page.fill("#min_payout", "5")
        await page.eval_on_selector("input[name=csrf_token]", forge)
        assert await submit() == 403
    assert await store.setting_changes(launcher_id) == []

    # Out of the pool's bounds: the page again, with what is wrong; nothing saved.
    await page.goto(f"{devnet.pool_url}/login")
    await page.fill("#min_payout", xch_text(config.payouts.min_payment - 1))
    await page.fill("#difficulty_preset", str(config.difficulty.maximum + 1))
    await page.fill("#webhook_url", "ftp://127.0.0.1/hook")
    assert await submit() == 400
    assert await page.locator("#settings-errors li").count() == 3
    assert await store.setting_changes(launcher_id) == []

    async with WebhookReceiver() as receiver:
        before = (await farmer_record(devnet)).difficulty
        preset = 7 if before != 7 else 8
        minimum = config.payouts.min_payment + 10**12
        await page.goto(f"{devnet.pool_url}/login")
        await page.fill("#min_payout", xch_text(minimum))
        await page.fill("#difficulty_preset", str(preset))
        await page.fill("#webhook_url", receiver.url("farmer"))
        assert await submit() == 303
        assert await text(page, "#settings-saved") == "Saved."
        assert await page.locator("#settings-history tr:has(td)").count() == 3
        saved = await store.farmer_settings(launcher_id)
        assert (saved.min_payout, saved.difficulty_preset, saved.webhook_url) == (
            minimum,
            preset,
            receiver.url("farmer"),
        )
        assert await page.input_value("#min_payout") == xch_text(minimum)

        async def at_preset() -> bool:
            return (await farmer_record(devnet)).difficulty_at(devnet.ctx.now()) == preset

        await wait_until(at_preset, "the difficulty loop applied the preset", deadline=30)
        await store.add_notification(
            NotificationKind.FARMER_SILENT, "settings test", {"hours": 1}, devnet.ctx.now(), launcher_id=launcher_id
        )

        async def received() -> bool:
            return receiver.keys("farmer") == ["settings test"]

        await wait_until(received, "the farmer's webhook got its notification", deadline=30)
    await context.close()
