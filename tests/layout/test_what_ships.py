"""What ships: the wheel and the Docker image hold the pool, not the repository's tools (pool/devnet, the demo's
simulated chain, and pool/bench, the benchmark), which run from a checkout (make demo, make bench).

Docker is not on the test machines, so the image is checked through what its build context holds: the files of pool/
that deploy/Dockerfile.dockerignore lets BuildKit send (the Dockerfile copies pool/ whole).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("pool/devnet/", "pool/bench/")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (a build writes build/ and *.egg-info next to setup.py; the checkout
    stays as it is)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.py", "pyproject.toml", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "pool", source / "pool", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]  # the venv's setuptools; nothing downloaded
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, "-q", "--wheel-dir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_the_pool(wheel_names: list[str]) -> None:
    for name in ("pool/__main__.py", "pool/server.py", "pool/http/templates/farmer.html", "pool/store/sql.py"):
        assert name in wheel_names


def test_the_wheel_holds_neither_the_devnet_nor_the_benchmark(wheel_names: list[str]) -> None:
    assert [name for name in wheel_names if name.startswith(TOOLS)] == []


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression over paths relative to the context (Go's filepath.Match,
    plus ``**`` for any number of directories)."""
    regex = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex, index = regex + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif pattern[index] == "*":
            regex, index = regex + "[^/]*", index + 1
        elif pattern[index] == "?":
            regex, index = regex + "[^/]", index + 1
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return re.compile(regex)


def sent_to_docker(path: str, patterns: list[str]) -> bool:
    """Whether BuildKit sends ``path``: the last pattern matching it or one of its parent directories decides, and a
    pattern written ``!pattern`` lets it in again."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:length]) for length in range(1, len(parts) + 1)]
    sent = True
    for pattern in patterns:
        lets_in = pattern.startswith("!")
        regex = glob_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            sent = lets_in
    return sent


def test_the_image_holds_neither_the_devnet_nor_the_benchmark() -> None:
    lines = (REPO / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    files = [path.relative_to(REPO).as_posix() for path in (REPO / "pool").rglob("*") if path.is_file()]
    sent = [path for path in files if sent_to_docker(path, patterns)]
    assert "pool/server.py" in sent and "pool/http/templates/farmer.html" in sent
    assert not any("__pycache__" in path for path in sent)
    assert [path for path in sent if path.startswith(TOOLS)] == []


def readme_install_commands() -> list[str]:
    """The commands of the README's operator install, without their comments."""
    section = (REPO / "README.md").read_text().split("### Install (Debian 12, Ubuntu 24.04)", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [command for line in block.splitlines() if (command := line.split("#", 1)[0].strip())]


def test_the_readme_installs_into_a_venv_of_its_own() -> None:
    """Debian 12's and Ubuntu 24.04's system Python refuse pip installs (PEP 668): everything goes through the venv,
    which Debian's python3 can make only with python3-venv; the systemd unit runs the venv's script."""
    commands = readme_install_commands()
    (make_venv,) = [command for command in commands if " -m venv " in command]
    venv = make_venv.split()[-1]
    assert make_venv == f"python3 -m venv {venv}"
    assert "apt-get install -y python3-venv" in commands
    assert [command for command in commands if "pip" in command] == [f"{venv}/bin/pip install ."]  # not editable
    runs = [command for command in commands if "chia-pool --config" in command]
    assert runs and all(command.startswith(f"{venv}/bin/chia-pool --config /etc/chia-pool/") for command in runs)
    unit = (REPO / "deploy" / "systemd" / "chia-pool.service").read_text()
    assert f"ExecStart={venv}/bin/chia-pool --config /etc/chia-pool/config.yaml" in unit


def test_the_venv_install_gives_the_chia_pool_script(wheel: Path, tmp_path: Path) -> None:
    """The README's install, offline: a new venv, the pool's wheel installed by pip into it, and its ``chia-pool``
    script runs the pool's command line from the venv. (Its dependencies come from this interpreter's
    site-packages: nothing is downloaded.)"""
    venv = tmp_path / "chia-pool"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    offline = ["--no-deps", "--no-index", "--no-compile", "-q"]
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", *offline, str(wheel)]
    subprocess.run(install, check=True, timeout=300)
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    dependencies = next(path for path in sys.path if path.endswith("site-packages"))
    (site_packages / "dependencies.pth").write_text(dependencies + "\n")
    script = venv / "bin" / "chia-pool"
    assert script.read_text().splitlines()[0] == f"#!{venv / 'bin' / 'python'}"

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        clean = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}  # only the venv's pool
        return subprocess.run(
            command, capture_output=True, text=True, cwd=tmp_path, env=clean, timeout=120, check=False
        )

    result = run(str(script), "--config", str(REPO / "config.yaml"), "--check-config")
    # The example's addresses belong to nobody: the pool's own refusal, from the pool installed in the venv.
    assert result.returncode == 2 and "is config.yaml's example address" in result.stderr, result.stderr
    where = run(str(venv / "bin" / "python"), "-c", "import pool; print(pool.__file__)")
    assert where.stdout.strip().startswith(str(site_packages)), where
