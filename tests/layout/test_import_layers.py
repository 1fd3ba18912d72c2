"""The pool's import graph points one way: down the layers below (docs/architecture.md).

Each package under pool/ (and each top-level module) is a room; a room may import its own modules and the rooms of
lower layers, never a room of its own layer or a higher one. So the shared parts (context.py) know nothing of what
is built on them, the protocol's checks nothing of the HTTP layer or the loops, and the loops nothing of each other.
Imports inside functions and under TYPE_CHECKING count too: they are arrows all the same.

pool/devnet and pool/bench are the repository's tools (the demo, the end-to-end tests, the benchmark): they may
import anything, and nothing of the pool may import them, since the wheel and the image do not hold them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

POOL = Path(__file__).resolve().parents[2] / "pool"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("pool", "pool.chia_adapter", "pool.kill_points", "pool.logs"),  # the version, chia-blockchain behind one door,
    # crash hooks, the log lines' form (pid, role, text or JSON)
    ("pool.config",),
    ("pool.chain", "pool.store", "pool.estimates", "pool.preflight", "pool.reload"),  # the node and wallet, the
    # durable state, plot space arithmetic, what the configuration's files must hold, the reload on SIGHUP
    ("pool.payouts", "pool.metrics", "pool.leader", "pool.webhooks"),  # built on the store (and the chain's records);
    # the webhooks' URLs and messages
    ("pool.stats",),  # the process's counters, over its metrics
    ("pool.context",),  # PoolContext: the shared parts everything above is handed
    ("pool.protocol",),  # the checks of farmers' requests, and the caches and limits they use
    ("pool.loops", "pool.http"),  # what runs: the background loops and the aiohttp application
    ("pool.server",),  # the composition root: builds the process's objects and runs them
    ("pool.doctor", "pool.admin"),  # every check of a configuration against what it names, as start-up makes
    # them; the operator's commands over the store
    ("pool.__main__",),  # the command line
)
REPOSITORY_TOOLS = ("pool.devnet", "pool.bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(POOL.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str:
    """``pool.chain.node_rpc`` -> ``pool.chain``; ``pool.config`` -> ``pool.config``; ``pool`` -> ``pool``."""
    return ".".join(module.split(".")[:2])


def imported_modules(path: Path, module: str) -> Iterator[str]:
    """Every module of the pool that ``path`` imports, wherever in the file the import is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base]
        else:
            continue
        yield from (name for name in names if name == "pool" or name.startswith("pool."))


def pool_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(POOL.rglob("*.py"))}


def layer_of(room: str) -> int | None:
    for index, rooms in enumerate(LAYERS):
        if room in rooms:
            return index
    return None


def is_tool(module: str) -> bool:
    return any(module == tool or module.startswith(tool + ".") for tool in REPOSITORY_TOOLS)


def arrows() -> Iterator[tuple[str, str]]:
    """(importer, imported) for every import between two different rooms of the pool."""
    for module, path in pool_modules().items():
        for imported in imported_modules(path, module):
            if room_of(imported) != room_of(module):
                yield module, imported


def test_every_room_has_a_layer() -> None:
    unplaced = {room_of(module) for module in pool_modules() if not is_tool(module)}
    unplaced = {room for room in unplaced if layer_of(room) is None}
    assert not unplaced, f"rooms without a layer in LAYERS (add them, and to docs/architecture.md): {unplaced}"


def test_no_arrow_points_up_or_sideways() -> None:
    wrong = set()
    for importer, imported in arrows():
        if is_tool(importer):
            continue
        source, target = layer_of(room_of(importer)), layer_of(room_of(imported))
        if source is not None and target is not None and target >= source:
            wrong.add(f"{importer} (layer {source}) imports {imported} (layer {target})")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_nothing_of_the_pool_imports_the_repository_tools() -> None:
    wrong = [
        f"{importer} imports {imported}"
        for importer, imported in arrows()
        if is_tool(imported) and not is_tool(importer)
    ]
    assert not wrong, "the wheel and the image would miss what these import:\n" + "\n".join(wrong)


def test_the_loops_do_not_import_each_other() -> None:
    """Each loop reads what it shares with the others from the rooms below (ChainStatus in pool/chain/status.py);
    the composition root picks the loops and hands them to the runner."""
    loops = [module for module in pool_modules() if room_of(module) == "pool.loops" and module != "pool.loops"]
    wrong = [
        f"{module} imports {imported}"
        for module in loops
        for imported in imported_modules(pool_modules()[module], module)
        if room_of(imported) == "pool.loops" and imported != module
    ]
    assert not wrong, "\n".join(wrong)
