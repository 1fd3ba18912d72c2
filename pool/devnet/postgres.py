"""A throwaway PostgreSQL server in a temporary directory, for the tests (and benchmarks) of the PostgreSQL store.

It uses the machine's own PostgreSQL installation (Debian: ``apt-get install postgresql-15``) and installs nothing.
PostgreSQL refuses to run as root, so as root every server command runs as the ``postgres`` user through
``runuser -u postgres --`` and the directory is handed to that user. The server listens on 127.0.0.1 and a socket in
its own directory only, trusts every local connection (user ``pool``), and by default trades durability for speed
(``fsync=off``): it exists for the length of one test session.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

USER = "pool"
INSTALL_HINT = (
    "PostgreSQL 15 is needed for the PostgreSQL store and its tests; install it with "
    "`apt-get install postgresql-15` (Debian/Ubuntu), or put the directory of its initdb and pg_ctl on PATH "
    "(`pg_config --bindir` names it)"
)


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL installation (or it failed to start); the message says what to do."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl: ``pg_config --bindir``, then Debian's /usr/lib/postgresql/N/bin
    (newest first), then PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(found.stdout.strip()))
        except (OSError, subprocess.CalledProcessError):
            pass
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name))
    candidates.extend(reversed(debian))
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresUnavailable(f"no PostgreSQL server found (no initdb/pg_ctl). {INSTALL_HINT}")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """Start with ``PostgresServer.start()``; ``dsn(database)`` to connect; ``stop()`` removes everything."""

    def __init__(self, directory: Path, bindir: Path, port: int, run_as: Sequence[str]) -> None:
        self.directory = directory
        self.bindir = bindir
        self.port = port
        self._run_as = list(run_as)
        self._options = ""  # the server's command line options, to start it again after halt()

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        bindir = find_bindir()
        run_as: list[str] = []
        directory = Path(tempfile.mkdtemp(prefix="pool-postgres-"))
        if os.geteuid() == 0:
            try:
                postgres = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(directory, ignore_errors=True)
                raise PostgresUnavailable(
                    f"running as root, but there is no 'postgres' user to run the server as. {INSTALL_HINT}"
                ) from None
            runuser = shutil.which("runuser")
            if runuser is None:
                shutil.rmtree(directory, ignore_errors=True)
                raise PostgresUnavailable("running as root, but runuser (util-linux) is missing")
            os.chown(directory, postgres.pw_uid, postgres.pw_gid)
            run_as = [runuser, "-u", "postgres", "--"]
        server = cls(directory, bindir, _free_port(), run_as)
        try:
            server._run("initdb", "-D", str(server.data), "-A", "trust", "-U", USER, "-E", "UTF8", "--no-sync")
            options = [f"-p {server.port}", f"-k {directory}", "-c listen_addresses=127.0.0.1"]
            if not durable:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            server._options = " ".join(options)
            server._pg_ctl_start()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its DSN."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        self._run("dropdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "--force", "--if-exists", name)

    def dump(self, database: str, path: Path) -> None:
        """Write ``database`` to ``path`` (pg_dump's custom format), to be restored into another server later."""
        # Written inside the server's directory first: the server's user (as root, postgres) may not reach ``path``.
        staged = self.directory / "dump.tmp"
        self._run("pg_dump", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-Fc", "-f", str(staged), database)
        shutil.move(staged, path)

    def restore(self, path: Path, database: str) -> None:
        """Load a dump written by ``dump`` into the existing, empty ``database``."""
        staged = self.directory / "restore.tmp"
        shutil.copyfile(path, staged)
        staged.chmod(0o644)
        try:
            self._run("pg_restore", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database, str(staged))
        finally:
            staged.unlink(missing_ok=True)

    def halt(self) -> None:
        """Stop the server as a crash would (immediate: no shutdown checkpoint), keeping its data for resume()."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start the halted server again, on the same port with the same data."""
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except PostgresUnavailable:
                pass
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [*self._run_as, str(self.bindir / program), *args]
        try:
            subprocess.run(command, capture_output=True, text=True, check=True, cwd=self.directory)
        except (OSError, subprocess.CalledProcessError) as exc:
            output = getattr(exc, "stderr", "") or getattr(exc, "stdout", "") or str(exc)
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(
                f"PostgreSQL command failed: {' '.join(command)}\n{output.strip()}\n{log}".rstrip()
            ) from None
