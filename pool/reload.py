"""SIGHUP: the configuration file read again, and what can change at run time applied without a restart.

A restart drops the partials in flight, so what an operator changes routinely is reloaded in place: the log level
(``logging.level``), the rate limits (``limits.<limit>.rate`` and ``.burst``), the operator token
(``server.operator_token``) and the TLS certificate (``server.tls_cert`` and ``server.tls_key``, read again even
when their paths did not change: a renewed certificate is written over the old one). Nothing is restarted: the
listening sockets, the open connections and the requests in flight go on.

The file is validated as at start-up. An invalid file is refused whole, with an ERROR line naming the key, and the
pool runs on as it was. A key that cannot change at run time (the fee, the target address, the store, the listen
address, the workers, the chain, ...) is named in a WARNING line and keeps its running value until a restart; the
keys that can change are applied all the same (so a certificate renewal is never held back by an edit that waits
for the next restart). The certificate is loaded first: if it cannot be loaded, nothing is applied.

The composition root (pool/server.py) registers what applies each part (``Reloader.on_reload``) and calls
``Reloader.reload`` on SIGHUP; with several workers the supervisor forwards the signal to each of them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from pool.config import RATE_LIMITS, ConfigError, PoolConfig, load_config_file

log = logging.getLogger(__name__)

# The config keys (dotted, as the file writes them) a reload applies.
RELOADABLE = frozenset(
    {"logging.level", "server.operator_token", "server.tls_cert", "server.tls_key"}
    | {f"limits.{name}.{part}" for name in RATE_LIMITS for part in ("rate", "burst")}
)

# Fields of the typed configuration whose key in the file has another name, or that the file does not hold
# (None: derived from another key, which is reported instead).
_FILE_KEYS: dict[str, str | None] = {
    "pool.fee_display": None,  # pool.fee
    "pool.fee_puzzle_hash": "pool.fee_address",
    "pool.target_puzzle_hash": "pool.target_address",
    "pool.address_prefix": None,  # chain.network
    "chain.full_node.port": "chain.full_node.rpc_port",
    "chain.wallet.port": "chain.wallet.rpc_port",
    "chain.more_full_nodes": "chain.full_nodes",
}


def changed_keys(running: Any, loaded: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configurations (or two of their sections)."""
    changed: list[str] = []
    for field in dataclasses.fields(running):
        if not field.compare:
            continue
        key = f"{prefix}{field.name}"
        old, new = getattr(running, field.name), getattr(loaded, field.name)
        if dataclasses.is_dataclass(old) and type(old) is type(new):
            changed += changed_keys(old, new, key + ".")
        elif old != new:
            named = _FILE_KEYS.get(key, key)
            if named is not None:
                changed.append(named)
    return changed


def reloaded_config(running: PoolConfig, loaded: PoolConfig) -> PoolConfig:
    """The running configuration with the reloadable keys of ``loaded``: the rest keeps its running value."""
    tls_switched = (running.server.tls_cert is None) != (loaded.server.tls_cert is None)
    server = dataclasses.replace(running.server, operator_token=loaded.server.operator_token)
    if not tls_switched:
        server = dataclasses.replace(server, tls_cert=loaded.server.tls_cert, tls_key=loaded.server.tls_key)
    return dataclasses.replace(
        running,
        logging=dataclasses.replace(running.logging, level=loaded.logging.level),
        limits=dataclasses.replace(running.limits, **{name: getattr(loaded.limits, name) for name in RATE_LIMITS}),
        server=server,
    )


def waiting_for_restart(running: PoolConfig, loaded: PoolConfig) -> list[str]:
    """The keys changed in the file that a reload does not apply."""
    applied = reloaded_config(running, loaded)
    return changed_keys(applied, loaded)


Apply = Callable[[PoolConfig], None]


class Reloader:
    """The running configuration, and what applies a reloaded one (in the order registered)."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self._appliers: list[Apply] = []

    def on_reload(self, apply: Apply) -> None:
        """``apply`` gets the new running configuration; it raises ConfigError (naming the key) to refuse it, which
        only an applier registered before any that changes something may do."""
        self._appliers.append(apply)

    def reload(self) -> bool:
        """Read the file again and apply what may change; False when it was refused (the pool runs on unchanged)."""
        source = self.config.source
        if source is None:
            log.error("reload refused: the pool was not started from a config file")
            return False
        try:
            loaded = load_config_file(source)
        except ConfigError as exc:
            log.error("reload of %s refused, the pool runs on unchanged: %s", source, exc)
            return False
        for key in waiting_for_restart(self.config, loaded):
            log.warning(
                "reload of %s: config key '%s' changed but cannot change at run time: it keeps its running value "
                "until the pool is restarted",
                source,
                key,
            )
        config = reloaded_config(self.config, loaded)
        applied = changed_keys(self.config, config)
        try:
            for apply in self._appliers:
                apply(config)
        except ConfigError as exc:
            log.error("reload of %s refused, the pool runs on unchanged: %s", source, exc)
            return False
        self.config = config
        log.info("reloaded %s: %s", source, ", ".join(applied) if applied else "no change to apply")
        return True
