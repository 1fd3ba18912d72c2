"""A throwaway PostgreSQL server in a temporary directory, for the tests (and benchmarks) of the PostgreSQL store.

It uses the machine's own PostgreSQL installation (Debian: ``apt-get install postgresql-15``) and installs nothing.
PostgreSQL refuses to run as root, so as root every server command runs as the ``postgres`` user through
``runuser -u postgres --`` and the directory is handed to that user. The server listens on 127.0.0.1 and a socket in
its own directory only, trusts every local connection (user ``pool``), and by default trades durability for speed
(``fsync=off``, and its files in memory, in /dev/shm, where the machine has room there): it exists for the length of
one test session. Copying a database on disk took 0.3-0.5 s on a machine with other writers (the copy's writes wait
for theirs), against 0.02 s in memory.

Databases are created and dropped by SQL on one connection the server object keeps (``createdb`` and ``dropdb``
start a process and a connection each: about 0.1 s against a few ms), made in a thread of its own so that sync code
and async tests alike can call it. ``create_database(name, template=...)`` copies a database (a test session's
migrated schema, say) instead of starting from an empty one.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

USER = "pool"
INSTALL_HINT = (
    "PostgreSQL 15 is needed for the PostgreSQL store and its tests; install it with "
    "`apt-get install postgresql-15` (Debian/Ubuntu), or put the directory of its initdb and pg_ctl on PATH "
    "(`pg_config --bindir` names it)"
)


T = TypeVar("T")


# A server that need not be durable keeps its files in memory when /dev/shm has this much room (a container's default
# /dev/shm is 64 MB: too small for a server's files and WAL).
MEMORY_DIR = Path("/dev/shm")
MEMORY_NEEDED = 2 * 1024**3


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL installation (or it failed to start); the message says what to do."""


class _Admin:
    """One connection to the server's ``postgres`` database, on an event loop running in a thread of its own: its
    callers block until their statement is done, whether or not they run in an event loop themselves."""

    def __init__(self, dsn: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="postgres admin", daemon=True)
        self._thread.start()
        try:
            self._connection: asyncpg.Connection[asyncpg.Record] = self._call(asyncpg.connect(dsn))
        except BaseException:
            self._stop_loop()
            raise

    def execute(self, statement: str) -> None:
        self._call(self._connection.execute(statement))

    def close(self) -> None:
        """Ends the connection without waiting for the server, which may be gone (halt)."""
        self._loop.call_soon_threadsafe(self._connection.terminate)
        self._stop_loop()

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


def memory_directory() -> Path | None:
    """/dev/shm when it is there, writable, with MEMORY_NEEDED free; else None (the usual temporary directory)."""
    try:
        if shutil.disk_usage(MEMORY_DIR).free >= MEMORY_NEEDED and os.access(MEMORY_DIR, os.W_OK):
            return MEMORY_DIR
    except OSError:
        pass
    return None


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
        self._admin: _Admin | None = None  # made on first use, ended by halt() and stop()

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        bindir = find_bindir()
        run_as: list[str] = []
        directory = Path(tempfile.mkdtemp(prefix="pool-postgres-", dir=None if durable else memory_directory()))
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

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (no one may be connected to that one); returns its DSN."""
        # FILE_COPY copies the template's files (with fsync off, without waiting for them): faster here than
        # PostgreSQL 15's default, WAL_LOG, which writes every page of the copy to the WAL.
        copy = "" if template is None else f" TEMPLATE {_identifier(template)} STRATEGY FILE_COPY"
        self._execute(f"CREATE DATABASE {_identifier(name)}{copy}")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        self._execute(f"DROP DATABASE IF EXISTS {_identifier(name)} WITH (FORCE)")

    def _execute(self, statement: str) -> None:
        try:
            if self._admin is None:
                self._admin = _Admin(self.dsn())
            self._admin.execute(statement)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise PostgresUnavailable(f"PostgreSQL statement failed: {statement}\n{exc}") from None

    def _end_admin(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            admin.close()

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
        self._end_admin()
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start the halted server again, on the same port with the same data."""
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._end_admin()
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
