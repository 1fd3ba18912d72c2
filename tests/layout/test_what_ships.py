"""What ships: the wheel and the Docker image hold the pool, not the repository's tools (pool/devnet, the demo's
simulated chain, and pool/bench, the benchmark), which run from a checkout (make demo, make bench).

Docker is not on the test machines, so the image is checked through what its build context holds: the files of pool/
that deploy/Dockerfile.dockerignore lets BuildKit send (the Dockerfile copies pool/ whole).
"""

from __future__ import annotations

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
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The file names in a wheel built from a copy of the checkout (a build writes build/ and *.egg-info next to
    setup.py; the checkout stays as it is)."""
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
    (wheel,) = dist.glob("*.whl")
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
