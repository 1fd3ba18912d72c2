"""Assembles and runs the pool: chain clients, store, HTTP application and background loops.

This is the composition root: every object of the process that holds state or threads (the context, the signage
point cache, the rate limits, the partial checks, the application, the loops) is built here and handed to the code
that uses it, which builds none of them itself.

Start-up order matters: the chain is contacted first (a pool that cannot see its node must say so and stop, not serve
farmers with stale data), then the store is opened, the wallet proves it owns the target address (a pool whose wallet
does not own it must not start), then the HTTP site and the loops start. A wallet that does not answer does not stop
the start: farmers are served and partials credited meanwhile, and only what needs the wallet waits for it. Shutdown
runs in reverse through aiohttp's cleanup contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import logging.handlers
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from aiohttp import web

from pool.chain.interface import ChainUnavailable, FullNode, Wallet
from pool.chia_adapter import ConsensusConstants, chia_config, consensus_constants_for
from pool.config import ConfigError, PoolConfig
from pool.context import PoolContext
from pool.payouts.books import Books
from pool.reload import Reloader
from pool.store.abstract import StoreError
from pool.store.factory import create_store

if TYPE_CHECKING:  # for the annotations only: like the rest of this module, the functions import what they build
    from pool.chain.status import ChainStatus
    from pool.loops.runner import Loop
    from pool.payouts.funding import Funding
    from pool.protocol.signage_points import SignagePointCache

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The pool cannot start; the message is one line for the operator."""


def configure_logging(config: PoolConfig, override: str | None = None) -> None:
    """The root logger's one handler: stderr, or ``logging.file`` (reopened when logrotate moves it away, so no
    ``copytruncate`` and no restart is needed), in ``logging.format``, every line with its process's pid and role
    (pool/logs.py)."""
    from pool.logs import RoleFilter, formatter

    level = override or config.logging.level
    handler: logging.Handler
    if config.logging.file is not None:
        config.logging.file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(config.logging.file)
    else:
        handler = logging.StreamHandler()
    handler.addFilter(RoleFilter())
    handler.setFormatter(formatter(config.logging.format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # chia's RPC client logs every failed connection attempt at ERROR with a traceback; our own message says it.
    logging.getLogger("chia").setLevel(logging.CRITICAL)


def network_constants(config: PoolConfig) -> ConsensusConstants:
    try:
        root_config = chia_config(config.chain.full_node.chia_root)
    except Exception as exc:  # a missing or unreadable chia root is an operator error, reported in one line
        raise StartupError(
            f"chain.chia_root: cannot read the chia config in {config.chain.full_node.chia_root} ({exc}); "
            "point it at the chia root of your full node (where `chia init` wrote config/config.yaml)"
        ) from None
    return consensus_constants_for(config.chain.network, root_config)


async def check_same_network(node: FullNode, constants: ConsensusConstants, network: str) -> None:
    """Refuse to run when the configured network is not the node's: every partial would fail or, worse, pass."""
    node_constants = await node.consensus_constants()
    if node_constants.GENESIS_CHALLENGE != constants.GENESIS_CHALLENGE:
        raise StartupError(f"chain.network: the node does not run '{network}' (its genesis challenge differs)")


async def connect_chain(config: PoolConfig, stack: AsyncExitStack) -> tuple[FullNode, Wallet]:
    """A node, one of which must answer now, and the wallet, connected now if it answers and later otherwise."""
    from pool.chain.failover import FailoverFullNode
    from pool.chain.wallet_rpc import ReconnectingWallet

    try:
        node = await FailoverFullNode.connect(config.chain.full_nodes)
    except ChainUnavailable as exc:
        raise StartupError(str(exc)) from None
    stack.push_async_callback(node.close)
    wallet = ReconnectingWallet(config.chain)
    stack.push_async_callback(wallet.close)
    try:
        await wallet.synced()
    except ChainUnavailable as exc:
        log.warning("starting without the wallet (payouts and the target address proof wait for it): %s", exc)
    return node, wallet


async def prove_target_at_start(ctx: PoolContext) -> None:
    """With the wallet answering, check (and record) that it owns the target address, or refuse to start: every
    reward would go where the pool cannot pay from. Without the wallet, the reward loop makes the proof later, and
    absorbs nothing until then."""
    from pool.chain.interface import AddressNotOwned
    from pool.loops.rewards import prove_target_ownership

    try:
        proof = await prove_target_ownership(ctx, ctx.now())
    except ChainUnavailable:
        return
    except AddressNotOwned as exc:
        raise StartupError(
            f"config key 'pool.target_address': {exc}; give an address of the wallet's key (or log the wallet in "
            "with the key that owns it: chain.wallet_fingerprint)"
        ) from None
    await ctx.store.record_target_proof(proof)
    log.info("the wallet (key %s) owns the target address %s", proof.fingerprint, proof.address)


@asynccontextmanager
async def pool_context(config: PoolConfig) -> AsyncIterator[PoolContext]:
    """Everything the pool runs on, opened in order and closed in reverse."""
    constants = network_constants(config)
    async with AsyncExitStack() as stack:
        node, wallet = await connect_chain(config, stack)
        try:
            await check_same_network(node, constants, config.chain.network)
        except ChainUnavailable as exc:
            raise StartupError(str(exc)) from None
        try:
            store = create_store(config.store)
            await store.open()
        except (ConfigError, StoreError) as exc:
            raise StartupError(f"store: {exc}") from None
        stack.push_async_callback(store.close)
        ctx = PoolContext(config=config, store=store, node=node, wallet=wallet, constants=constants)
        from pool.chain.failover import FailoverFullNode

        if isinstance(node, FailoverFullNode):  # its RPC latency and errors go to the metrics
            node.observer = ctx.stats.metrics.node_rpc
        await prove_target_at_start(ctx)
        yield ctx


async def read_books(config: PoolConfig, *, with_wallet: bool, limit: int) -> Books:
    """The books from the store, reconciled against the wallet when it can be reached (read-only)."""
    from pool.chain.wallet_rpc import WalletRpc
    from pool.payouts.books import build_books

    spendable: int | None = None
    error: str | None = "not asked (--no-wallet)"
    if with_wallet:
        try:
            wallet = await WalletRpc.connect(config.chain)
            try:
                spendable, error = await wallet.spendable_balance(), None
            finally:
                await wallet.close()
        except ChainUnavailable as exc:
            error = str(exc)
    store = create_store(config.store)
    await store.open()
    try:
        return await build_books(store, spendable, error, limit=limit)
    finally:
        await store.close()


async def fund_fees_from_wallet(config: PoolConfig, amount: int) -> Funding:
    """Give ``amount`` of the operator's coins in the pool wallet to the pool fee share (pool/payouts/funding.py);
    the wallet must answer, since only it can show the coins are there. Raises ChainUnavailable, FundingRefused."""
    from pool.chain.wallet_rpc import WalletRpc
    from pool.payouts.funding import fund_fees

    wallet = await WalletRpc.connect(config.chain)
    try:
        spendable = await wallet.spendable_balance()
    finally:
        await wallet.close()
    store = create_store(config.store)
    await store.open()
    try:
        return await fund_fees(store, spendable, amount, f"operator, wallet spendable {spendable}")
    finally:
        await store.close()


def signage_point_cache(ctx: PoolContext) -> SignagePointCache:
    """The node's signage points, looked up once and shared by POST /partial and the confirmation loop."""
    from pool.protocol.signage_points import SignagePointCache

    return SignagePointCache(
        ctx.node, wait=ctx.config.partials.signage_point_wait, on_lookup=ctx.stats.metrics.signage_point_lookup
    )


def background_loops(status: ChainStatus, signage_points: SignagePointCache) -> list[Loop]:
    """The loops of one leadership term, fresh each time (they keep what they learn only for as long as they lead)."""
    from pool.loops.difficulty_adjustment import DifficultyLoop
    from pool.loops.notifications import NotificationLoop
    from pool.loops.partial_confirmation import PartialConfirmLoop
    from pool.loops.payouts import PayoutLoop
    from pool.loops.peak import PeakLoop
    from pool.loops.retention import RetentionLoop
    from pool.loops.rewards import RewardLoop
    from pool.loops.singletons import SingletonLoop

    return [
        PeakLoop(status),
        PartialConfirmLoop(status, signage_points),
        SingletonLoop(status),
        RewardLoop(status),
        PayoutLoop(status),
        DifficultyLoop(),
        RetentionLoop(),
        NotificationLoop(),
    ]


def build_application(ctx: PoolContext, with_loops: bool = True) -> web.Application:
    """The aiohttp application with the background loops tied to its lifetime. The loops run only while this
    process is the pool's leader (pool/leader.py): of several processes sharing a store, exactly one runs them."""
    signage_points = signage_point_cache(ctx)
    app = http_application(ctx, signage_points)
    if with_loops:
        run_loops_while_leading(app, ctx, signage_points)
    return app


def http_application(ctx: PoolContext, signage_points: SignagePointCache) -> web.Application:
    """The farmers' API, the pages and the operator's endpoints, over the checks and limits they share."""
    from pool.http.admission import Admission
    from pool.http.app import create_app
    from pool.http.cooldown import Cooldowns
    from pool.protocol.farmers import FarmerChecks
    from pool.protocol.partials import PartialChecker
    from pool.protocol.rate_limits import RateLimits
    from pool.protocol.signage_points import PeakCache
    from pool.protocol.signatures import SignatureChecks
    from pool.protocol.v2 import V2Checks
    from pool.protocol.verification import SignatureVerifier

    limits = RateLimits(ctx.config.limits, registry=ctx.stats.metrics.registry)
    # One set of verifying threads for every signature of every request (partials, GET/POST/PUT /farmer, /login).
    verifier = SignatureVerifier(ctx.config.partials.verify_threads)
    signatures = SignatureChecks(verifier, limits)
    farmers = FarmerChecks(ctx, signatures, limits)
    v2 = V2Checks(ctx, farmers, limits)  # Pool Protocol v2's tokens, beside v1 on the same checks and limits
    admission = Admission(ctx.config.partials.max_in_flight, ctx.config.partials.max_in_flight_per_address)
    app = create_app(
        ctx,
        partials=PartialChecker(ctx, signage_points, PeakCache(ctx.node), signatures, limits, v2),
        farmers=farmers,
        v2=v2,
        signage_points=signage_points,
        admission=admission,
        limits=limits,
        cooldowns=Cooldowns(ctx.config.limits.cooldown, ctx.config.limits.tracked_keys, limits, admission.is_proven),
    )

    async def close_verifier(_: web.Application) -> None:
        verifier.close()

    app.on_cleanup.append(close_verifier)
    return app


def run_loops_while_leading(app: web.Application, ctx: PoolContext, signage_points: SignagePointCache) -> None:
    """Ties the background loops to the application's lifetime: they run in the terms this process leads."""
    from pool.chain.status import ChainStatus
    from pool.http.keys import CHAIN_STATUS
    from pool.leader import create_leadership, lead
    from pool.logs import set_leading
    from pool.loops.runner import LoopRunner

    # What the loops know of the chain, for GET /status (it stays empty in a process that does not lead).
    status = ChainStatus()
    app[CHAIN_STATUS] = status
    ctx.stats.metrics.loops_known(loop.name for loop in background_loops(status, signage_points))

    async def loops_context(_: web.Application) -> AsyncIterator[None]:
        runners: list[LoopRunner] = []
        lost = asyncio.Event()  # set by a loop whose money write the store refused: another process leads

        async def begin() -> None:
            # The lock is held: say so in the log lines before the new epoch is committed, since /readyz (another
            # connection) can see that commit before this coroutine resumes.
            set_leading(True)
            try:
                epoch = await ctx.store.take_leadership(f"pid {os.getpid()} on {socket.gethostname()}")
            except BaseException:
                set_leading(False)
                raise
            ctx.stats.metrics.leading(True)
            log.info("leader epoch %d", epoch)
            runner = LoopRunner(background_loops(status, signage_points), on_not_leader=lost.set)
            runner.start(ctx)
            runners.append(runner)

        async def end() -> None:
            while runners:
                await runners.pop().stop()
            set_leading(False)
            ctx.stats.metrics.leading(False)

        leadership = create_leadership(ctx.config.store)
        leading = asyncio.create_task(
            lead(leadership, begin, end, lost=lost, beat=lambda: ctx.store.leader_alive(int(ctx.now()))),
            name="pool-leader",
        )
        yield
        leading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leading

    app.cleanup_ctx.append(loops_context)


def tls_context(config: PoolConfig) -> ssl.SSLContext | None:
    if config.server.tls_cert is None or config.server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.server.tls_cert, config.server.tls_key)
    return context


def certificate_reloader(context: ssl.SSLContext) -> Callable[[PoolConfig], None]:
    """What loads the certificate again on a reload, into the listener's own context: new handshakes present it,
    connections already open go on with theirs. It is loaded into a scratch context first, so that a certificate
    that cannot be loaded (a half-written renewal, a key of another certificate) refuses the reload and leaves the
    listener's certificate as it was."""

    def reload(config: PoolConfig) -> None:
        cert, key = config.server.tls_cert, config.server.tls_key
        if cert is None or key is None:
            return
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("server.tls_cert", f"cannot load {cert} with {key}: {exc}") from None
        context.load_cert_chain(cert, key)
        log.info("TLS certificate loaded from %s", cert)

    return reload


def register_reload(reloader: Reloader, app: web.Application, ctx: PoolContext, context: ssl.SSLContext | None) -> None:
    """What a reload (SIGHUP, pool/reload.py) applies in a serving process: the certificate first (it may refuse the
    reload), then the rate limits and the configuration the requests read (the operator token)."""
    from pool.http.keys import RATE_LIMITS

    if context is not None:
        reloader.on_reload(certificate_reloader(context))
    limits = app[RATE_LIMITS]
    reloader.on_reload(lambda config: limits.reconfigure(config.limits))

    def swap(config: PoolConfig) -> None:
        ctx.config = config

    reloader.on_reload(swap)


async def serve(
    ctx: PoolContext,
    stop: asyncio.Event,
    *,
    reuse_port: bool = False,
    with_loops: bool = True,
    reloader: Reloader | None = None,
) -> None:
    """Serve until ``stop``. ``reuse_port``: share the port with the pool's other worker processes; ``with_loops``
    False serves the HTTP API alone (tests on a shared chain); ``reloader``: what SIGHUP reloads gets this process's
    certificate, rate limits and configuration."""
    from pool.http.access_log import access_log_options
    from pool.http.connections import runner_options

    if reloader is not None:  # what a SIGHUP received while the pool was starting changed
        ctx.config = reloader.config
    app = build_application(ctx, with_loops=with_loops)
    limits, server = ctx.config.limits, ctx.config.server
    runner = web.AppRunner(app, **access_log_options(ctx.config.logging.access_log), **runner_options(limits))
    await runner.setup()
    ssl_context = tls_context(ctx.config)
    if reloader is not None:
        register_reload(reloader, app, ctx, ssl_context)
    try:
        async with AsyncExitStack() as listeners:
            await listen_or_refuse(
                listeners, runner, "server.port", server.host, server.port, ctx, ssl_context, reuse_port
            )
            if server.operator_listen is not None:
                await operator_listener(listeners, app, ctx, reuse_port)
            if server.join_url() is None:
                log.warning("server.public_url is not set: the pool page shows farmers no URL to join with")
            log.info("pool '%s' listening on %s:%d", ctx.config.pool.name, server.host, server.port)
            await stop.wait()
    finally:
        await runner.cleanup()


async def listen_or_refuse(
    listeners: AsyncExitStack,
    runner: web.AppRunner,
    key: str,
    host: str,
    port: int,
    ctx: PoolContext,
    ssl_context: ssl.SSLContext | None,
    reuse_port: bool,
) -> None:
    """Listen for ``runner``'s application until ``listeners`` closes (no new connections then; the runner's clean-up
    ends the open ones), or refuse to start naming ``key``."""
    from pool.http.connections import listen

    try:
        listening = await listen(runner, host, port, ctx.config.limits, ssl_context=ssl_context, reuse_port=reuse_port)
    except OSError as exc:
        raise StartupError(f"{key}: cannot listen on {host}:{port}: {exc.strerror}") from None
    listeners.callback(listening.close)


async def operator_listener(
    listeners: AsyncExitStack, app: web.Application, ctx: PoolContext, reuse_port: bool
) -> None:
    """server.operator_listen: the operator's endpoints, without a token, on a loopback address (plain HTTP: the
    traffic does not leave the machine)."""
    from pool.http.keys import CHAIN_STATUS
    from pool.http.operator_endpoints import operator_application

    assert ctx.config.server.operator_listen is not None
    host, port = ctx.config.server.operator_listen
    runner = web.AppRunner(operator_application(ctx, app.get(CHAIN_STATUS)), access_log=None)
    await runner.setup()
    listeners.push_async_callback(runner.cleanup)
    await listen_or_refuse(listeners, runner, "server.operator_listen", host, port, ctx, None, reuse_port)
    log.info("operator endpoints on http://%s:%d (no token)", host, port)


async def run_server(config: PoolConfig, log_level: str | None = None, *, worker: int | None = None) -> None:
    """Run the pool. With ``server.workers`` > 1 this process only supervises that many worker processes (each
    ``python -m pool --config ... --worker N``), which share the port; ``worker``: this process is the N-th of them.
    SIGHUP reloads the configuration file (pool/reload.py), in every worker."""
    from pool.logs import set_role

    supervising = config.server.workers > 1 and worker is None
    set_role("supervisor" if supervising else "worker" if worker is None else f"worker {worker}")
    configure_logging(config, log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloader = Reloader(config)
    if log_level is None:  # --log-level on the command line wins over the file's, reloaded or not
        reloader.on_reload(lambda reloaded: logging.getLogger().setLevel(reloaded.logging.level))
    if supervising:
        from pool.metrics import multiprocess_directory

        with multiprocess_directory() as metrics_dir:
            await supervise_workers(config, log_level, stop, metrics_dir, reloader)
        return
    loop.add_signal_handler(signal.SIGHUP, reloader.reload)
    if worker is None:
        from pool.metrics import forget_earlier_run

        forget_earlier_run()
    async with pool_context(config) as ctx:
        _freeze_startup_objects()
        freezing = asyncio.create_task(_freeze_after_first_passes(ctx), name="pool-freeze-after-first-passes")
        try:
            await serve(ctx, stop, reuse_port=worker is not None, reloader=reloader)
        finally:
            freezing.cancel()
    log.info("pool stopped")


def _freeze_startup_objects() -> None:
    """What the imports and the start-up made (most of it chia's modules) lives as long as the process: frozen, it is
    no longer walked by Python's full garbage collections, each of which stalled every request in flight and showed in
    the p99 latency (docs/performance.md, the second round)."""
    gc.collect()
    gc.freeze()


# A worker that does not lead runs no loop: what it keeps (its caches of farmers, the shared figures) is built by then.
FREEZE_WITHOUT_LOOPS_AFTER = 600.0


async def _freeze_after_first_passes(ctx: PoolContext) -> None:
    """What the loops' first passes build lives as long as the process too: at ten thousand farmers each farmer's
    checked singleton tip and the figures kept between makings. Python's full collections, which the passes' lists
    of every farmer set off every minute or so once they outlive a younger collection, walked all of it: 25-60 ms at
    ten thousand farmers, every partial in flight stalled meanwhile (docs/performance.md). Frozen like the start-up's
    objects, it is no longer walked. No collection first (it would be one such stall): the few cycles of garbage
    frozen with it stay, once."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctx.stats.first_passes.wait(), FREEZE_WITHOUT_LOOPS_AFTER)
    gc.freeze()
    log.debug("froze %d objects after the loops' first passes", gc.get_freeze_count())


WORKER_STARTUP_FAILED = (2, 3)
"""Exit codes of ``python -m pool`` for a configuration or start-up error: restarting such a worker cannot help."""

WORKER_RESTART_DELAY = 1.0


def _ignore_sighup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


async def supervise_workers(
    config: PoolConfig,
    log_level: str | None,
    stop: asyncio.Event,
    metrics_dir: str,
    reloader: Reloader | None = None,
) -> None:
    """Keep ``server.workers`` worker processes running until ``stop``: a worker that dies (even by SIGKILL) is
    started again; its leadership, if it led, passes to another worker meanwhile. A worker that fails to start
    (config, chain, port) stops them all with its error. The workers write their metrics to ``metrics_dir``
    (pool/metrics.py), so that any of them answers a scrape for all. SIGHUP reloads ``reloader`` here and is passed
    on to every worker, which reloads its own part."""
    from pool.metrics import MULTIPROCESS_DIR, SUPERVISOR_PID, mark_process_dead

    if config.source is None:
        raise StartupError("server.workers: several workers need the pool to be started from a config file")
    command = [sys.executable, "-m", "pool", "--config", str(config.source.resolve())]
    if log_level is not None:
        command += ["--log-level", log_level]
    failures: list[str] = []
    env = {**os.environ, MULTIPROCESS_DIR: metrics_dir, SUPERVISOR_PID: str(os.getpid())}
    running: dict[int, asyncio.subprocess.Process] = {}

    def forward_reload() -> None:
        if reloader is not None:
            reloader.reload()
        for process in running.values():
            if process.returncode is None:
                process.send_signal(signal.SIGHUP)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, forward_reload)

    async def keep_running(index: int) -> None:
        while not stop.is_set():
            # Started with SIGHUP ignored (kept across exec) until the worker sets its reload handler: a reload
            # while it imports does not kill it.
            process = await asyncio.create_subprocess_exec(
                *command, "--worker", str(index), env=env, preexec_fn=_ignore_sighup
            )
            running[index] = process
            log.info("worker %d started (pid %d)", index, process.pid)
            exited = asyncio.create_task(process.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if exited.done():  # its counters stay (they are counts so far); its live gauges go
                mark_process_dead(process.pid, metrics_dir)
            if stop.is_set():  # shutting down (a terminal's Ctrl-C reaches the workers too)
                if not exited.done():
                    process.terminate()
                    await exited
                return
            code = exited.result()
            if code in WORKER_STARTUP_FAILED:
                failures.append(f"worker {index} could not start (exit code {code}); see its message above")
                stop.set()
                return
            log.warning("worker %d (pid %d) exited with %s: starting it again", index, process.pid, code)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WORKER_RESTART_DELAY)

    log.info(
        "pool '%s': %d workers on %s:%d",
        config.pool.name,
        config.server.workers,
        config.server.host,
        config.server.port,
    )
    await asyncio.gather(*(keep_running(index) for index in range(1, config.server.workers + 1)))
    if failures:
        raise StartupError(failures[0])
    log.info("pool stopped")
