"""What must hold before the pool starts, read from the configuration and the files it names, without contacting
anything: what ``--check-config`` reports, what start-up refuses, and the first checks of ``python -m pool doctor``.

Each problem names the config key to change. They are the mistakes that lose money or stop the pool only much later:
rewards absorbed into config.yaml's example addresses (which belong to nobody) are gone for good; a fee address that is
the target address mixes the pool fee back into the rewards; a chia root without its RPC certificates fails at the
first call to the node or the wallet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pool.chia_adapter import chia_config, decode_puzzle_hash, rpc_certificate_files
from pool.config import MAINNET, PoolConfig

# The addresses config.yaml ships with, which say they belong to nobody.
EXAMPLE_ADDRESSES = (
    "xch1jrc4mg4qv30spf4e7elzr3efagauted06xqhegrddnzqwjtpe54q8m6dxu",
    "xch1qxmzhts9j6d5p5ynz29zp7tqcv4yaaq6gdsrx3urfl750dyja82s9wrggy",
)
_EXAMPLE_PUZZLE_HASHES = frozenset(decode_puzzle_hash(address) for address in EXAMPLE_ADDRESSES)


@dataclass(frozen=True)
class Problem:
    key: str  # the dotted config key to change
    message: str

    def __str__(self) -> str:
        return f"config key '{self.key}': {self.message}"


def problems(config: PoolConfig) -> list[Problem]:
    """Every problem of ``config`` found without contacting anything (empty: it may start)."""
    return address_problems(config) + url_problems(config) + chia_root_problems(config)


def url_problems(config: PoolConfig) -> list[Problem]:
    """On mainnet the pool page's join link must be the URL farmers reach the pool at, over https (chia's farmer
    refuses http there). The pool never takes it from a request's Host header, and the address it listens on (behind
    a proxy, a loopback one) is not it: server.public_url is required."""
    if config.chain.network != MAINNET:
        return []
    url = config.server.public_url
    if url is None:
        return [
            Problem(
                "server.public_url",
                "is required on mainnet: the https:// URL farmers join the pool with (the reverse proxy's, or this "
                "server's with server.tls_cert); the pool page shows it as the join link",
            )
        ]
    if not url.startswith("https://"):
        return [
            Problem("server.public_url", f"must be an https:// URL on mainnet (chia's farmer refuses http), got {url}")
        ]
    return []


def address_problems(config: PoolConfig) -> list[Problem]:
    found: list[Problem] = []
    pool = config.pool
    if config.chain.network == MAINNET:
        for key, puzzle_hash in (
            ("pool.target_address", pool.target_puzzle_hash),
            ("pool.fee_address", pool.fee_puzzle_hash),
        ):
            if puzzle_hash in _EXAMPLE_PUZZLE_HASHES:
                found.append(
                    Problem(
                        key,
                        "is config.yaml's example address, which belongs to nobody: what is paid "
                        "there is lost for good; use an address of your own wallet",
                    )
                )
    if pool.fee_puzzle_hash == pool.target_puzzle_hash:
        found.append(
            Problem(
                "pool.fee_address",
                "is pool.target_address: the pool fee would be paid back among the rewards it was taken from; use an "
                "address of another wallet",
            )
        )
    return found


def chia_root_problems(config: PoolConfig) -> list[Problem]:
    """The chia roots of the node and the wallet: readable, with the certificates chia's RPC clients load. A problem
    names ``chain.full_node.chia_root`` or ``chain.wallet.chia_root``, which default to ``chain.chia_root``."""
    found: list[Problem] = []
    checked: set[Path] = set()
    roots = [
        ("chain.full_node.chia_root", config.chain.full_node.chia_root),
        ("chain.wallet.chia_root", config.chain.wallet.chia_root),
    ]
    roots += [(f"chain.full_nodes[{i}].chia_root", rpc.chia_root) for i, rpc in enumerate(config.chain.more_full_nodes)]
    for key, root in roots:
        if root in checked:
            continue
        checked.add(root)
        problem = _root_problem(root)
        if problem is not None:
            found.append(Problem(key, problem))
    return found


def _root_problem(root: Path) -> str | None:
    try:
        root_config = chia_config(root)
    except ValueError as exc:
        return f"{exc}; point it at the chia root of your node and wallet (where `chia init` wrote config/config.yaml)"
    try:
        files = rpc_certificate_files(root, root_config)
    except (KeyError, TypeError) as exc:
        return f"{root}/config/config.yaml names no RPC certificates ({exc})"
    for path in files:
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            return (
                f"cannot read {path} ({exc.strerror or exc}): the RPC certificates of {root} are missing or unreadable"
            )
    return None
