"""deploy/docker-compose.yml cannot rot silently: Docker is not on the test machines, so the compose file is read as
YAML and its pool hosts' configuration goes through the pool's own parser, laid out as the containers see it; the
wiring between the services (store host, chia RPC hosts, chia root, the load balancer's upstreams, the pinned chia
version) is checked against the services that provide it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from pool.chia_adapter import chia_config, consensus_constants_for
from pool.config import PoolConfig, load_config_file

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
POOL_DOCKERFILE = "deploy/Dockerfile"


def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def pool_hosts(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from the pool's Dockerfile."""
    return {
        name: service
        for name, service in document["services"].items()
        if service.get("build", {}).get("dockerfile") == POOL_DOCKERFILE
    }


def config_argument(service: dict[str, Any]) -> PurePosixPath:
    command = service["command"]
    return PurePosixPath(command[command.index("--config") + 1])


def mounted_file(document: dict[str, Any], service: dict[str, Any], kind: str, target: PurePosixPath) -> Path:
    """The file of the compose project that ``kind`` (configs or secrets) mounts at ``target`` in the service."""
    (source,) = [entry["source"] for entry in service.get(kind, []) if PurePosixPath(entry["target"]) == target]
    return DEPLOY / str(document[kind][source]["file"])


def laid_out_as_in_container(document: dict[str, Any], service: dict[str, Any], root: Path) -> Path:
    """The service's config file and secrets under ``root`` at their container paths; returns the config's path."""
    config_path = config_argument(service)
    config_file = root / config_path.relative_to("/")
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(mounted_file(document, service, "configs", config_path).read_text())
    for secret in service.get("secrets", []):
        secret_file = root / PurePosixPath(secret["target"]).relative_to("/")
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text("a password the operator puts in deploy/secrets/\n")  # the real one is never here
    return config_file


def volume_mount(service: dict[str, Any], volume: str) -> PurePosixPath:
    (target,) = [entry.split(":")[1] for entry in service["volumes"] if entry.split(":")[0] == volume]
    return PurePosixPath(target)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return compose()


def first_pool_host(document: dict[str, Any]) -> dict[str, Any]:
    return next(iter(pool_hosts(document).values()))


@pytest.fixture
def config(document: dict[str, Any], tmp_path: Path) -> PoolConfig:
    """The config as the first pool host's container sees it, its container's files laid out under tmp_path."""
    return load_config_file(laid_out_as_in_container(document, first_pool_host(document), tmp_path))


def test_every_pool_host_gets_the_same_config_and_the_parser_accepts_it(
    document: dict[str, Any], tmp_path: Path
) -> None:
    hosts = pool_hosts(document)
    assert len(hosts) >= 2
    sources = {mounted_file(document, host, "configs", config_argument(host)) for host in hosts.values()}
    assert sources == {DEPLOY / "pool.yaml"}
    for name, host in hosts.items():
        config = load_config_file(laid_out_as_in_container(document, host, tmp_path / name))
        assert config.store.backend == "postgresql"
        assert config.store.password() is not None  # the mounted secret, read as the pool reads it
        assert config.server.workers >= 1
        # The container's health check asks the port the pool listens on whether the process answers.
        assert f"http://127.0.0.1:{config.server.port}/healthz" in " ".join(host["healthcheck"]["test"])


def test_the_store_is_the_compose_postgres_with_its_password_secret(
    document: dict[str, Any], config: PoolConfig, tmp_path: Path
) -> None:
    assert config.store.dsn is not None
    dsn = urlsplit(config.store.dsn)
    postgres = document["services"][dsn.hostname]
    environment = postgres["environment"]
    assert (dsn.username, dsn.path.lstrip("/")) == (environment["POSTGRES_USER"], environment["POSTGRES_DB"])
    assert dsn.port == 5432
    # The file store.password_file names in the container is the secret PostgreSQL takes its password from.
    assert config.store.password_file is not None
    in_container = "/" + config.store.password_file.relative_to(tmp_path).as_posix()
    (secret,) = [s["source"] for s in first_pool_host(document)["secrets"] if s["target"] == in_container]
    assert environment["POSTGRES_PASSWORD_FILE"] == f"/run/secrets/{secret}"


def test_the_chain_is_the_compose_chia_service_on_the_pinned_version(
    document: dict[str, Any], config: PoolConfig
) -> None:
    pinned = re.search(r'"chia-blockchain==([0-9.]+)"', (REPO / "setup.py").read_text())
    assert pinned is not None
    for rpc in (config.chain.full_node, config.chain.wallet):
        chia = document["services"][rpc.host]
        assert chia["image"] == f"ghcr.io/chia-network/chia:{pinned.group(1)}"
        assert set(chia["environment"]["service"].split()) >= {"node", "wallet"}
    assert (config.chain.full_node.port, config.chain.wallet.port) == (8555, 9256)
    # The pool reads the chia service's root (CHIA_ROOT /root/.chia/mainnet in chia's image) from the same volume.
    chia = document["services"][config.chain.full_node.host]
    pool_mount = volume_mount(first_pool_host(document), "chia-root")
    for rpc in (config.chain.full_node, config.chain.wallet):
        pool_side = PurePosixPath(rpc.chia_root.as_posix()).relative_to(pool_mount)
        assert volume_mount(chia, "chia-root") / pool_side == PurePosixPath("/root/.chia/mainnet")


def test_the_load_balancer_spreads_over_every_pool_host_on_its_port(
    document: dict[str, Any], config: PoolConfig
) -> None:
    caddy = document["services"]["caddy"]
    (caddyfile,) = {DEPLOY / document["configs"][entry["source"]]["file"] for entry in caddy["configs"]}
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddyfile.read_text())
    assert upstreams is not None
    assert set(upstreams.group(1).split()) == {f"{name}:{config.server.port}" for name in pool_hosts(document)}
    assert {"443:443", "80:80"} <= set(caddy["ports"])
    # The hosts trust X-Forwarded-For from Caddy alone (else every farmer would share Caddy's rate limit), and
    # Caddy's address is fixed inside the compose network.
    caddy_address = ipaddress.ip_address(caddy["networks"]["default"]["ipv4_address"])
    (subnet,) = (ipaddress.ip_network(c["subnet"]) for c in document["networks"]["default"]["ipam"]["config"])
    assert caddy_address in subnet
    assert [str(proxy) for proxy in config.limits.trusted_proxies] in ([str(caddy_address)], [f"{caddy_address}/32"])
    assert config.server.public_url is not None and config.server.public_url.startswith("https://")


class WritesUnder:
    """Records every file opened for writing (or created) under a directory, through Python's audit hooks (which
    see builtins.open and os.open alike). A hook cannot be removed: it is installed once and watches only while a
    ``with`` block is open."""

    WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    _active: WritesUnder | None = None
    _installed = False

    def __init__(self, directory: Path) -> None:
        self.directory = str(directory)
        self.paths: list[str] = []

    def __enter__(self) -> WritesUnder:
        if not WritesUnder._installed:
            sys.addaudithook(WritesUnder._hook)
            WritesUnder._installed = True
        WritesUnder._active = self
        return self

    def __exit__(self, *exc: object) -> None:
        WritesUnder._active = None

    @staticmethod
    def _hook(event: str, args: tuple[Any, ...]) -> None:
        watching = WritesUnder._active
        if watching is None or event != "open":
            return
        path, _mode, flags = args
        if isinstance(flags, int) and flags & WritesUnder.WRITING and str(path).startswith(watching.directory):
            watching.paths.append(str(path))


def test_a_pool_host_reads_the_chia_root_without_writing_to_it(tmp_path: Path) -> None:
    """The pool hosts mount the chia service's root read-only: reading its config must not write there. chia's own
    config loader creates ``config/config.yaml.lock`` (a read-only volume refuses it, and the pool cannot start)."""
    root = tmp_path / "mainnet"
    (root / "config").mkdir(parents=True)
    overrides = {
        "network_overrides": {"constants": {"mainnet": {"MIN_PLOT_SIZE_V1": 32}}},
        "selected_network": "mainnet",
    }
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(overrides))
    with WritesUnder(root) as writes:
        config = chia_config(root)
    assert writes.paths == []
    assert config == overrides
    assert consensus_constants_for("mainnet", config).MIN_PLOT_SIZE_V1 == 32
