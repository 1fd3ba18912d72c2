from setuptools import find_packages, setup

setup(
    name="chia-pool-server",
    version="0.1.0",
    description="A Chia Pool Protocol 1.0 pool server: farmer-facing HTTP API, partial validation, rewards and payouts",
    license="Apache-2.0",
    python_requires=">=3.10, <3.13",
    # The pool alone: pool/devnet (the demo's simulated chain) and pool/bench (the benchmark) run from a checkout of
    # the repository (make demo, make bench) and would only weigh on a pool host.
    packages=find_packages(
        include=["pool", "pool.*"], exclude=["pool.devnet", "pool.devnet.*", "pool.bench", "pool.bench.*"]
    ),
    include_package_data=True,
    package_data={"pool.http": ["templates/*.html"]},
    install_requires=[
        # chia renames modules between minor versions: pinned exactly, imported only in pool/chia_adapter/.
        "chia-blockchain==2.7.5",
        "aiohttp>=3.9",
        "aiosqlite>=0.19",
        # The PostgreSQL store (store.backend: postgresql), for pools that run several processes.
        "asyncpg>=0.29",
        "pyyaml>=6.0",
        # the command line (python -m pool, chia-pool); chia-blockchain needs it too
        "click>=8.1",
        # `python -m pool` runs on libuv's event loop: a third less CPU per partial than asyncio's own loop.
        "uvloop>=0.19",
        # the farmer and pool pages (server-rendered) and the operator's metrics
        "jinja2>=3.1",
        "aiohttp-jinja2>=1.6",
        "prometheus-client>=0.20",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-asyncio>=0.23",
            # make test runs the suite in two processes (one module at a time each): about half the time on 2 cores
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            "ruff==0.17.5",
            "mypy==2.4.1",
            "types-PyYAML",
            "asyncpg-stubs>=0.29",
            # the public API's answers are checked against its OpenAPI 3.1 document (JSON Schema 2020-12)
            "jsonschema>=4.18",
            "types-jsonschema",
            # browser tests of the pages drive Debian's chromium (make browser installs it)
            "playwright>=1.40",
        ],
    },
    # The same click group as `python -m pool` (main returns its exit status).
    entry_points={"console_scripts": ["chia-pool=pool.__main__:main"]},
)
