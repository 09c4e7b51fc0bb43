"""A throwaway local PostgreSQL cluster from the machine's server binaries (initdb, pg_ctl).

Used when ``[store] url`` is not set (``segsync demo --engine postgres``, trying segsync out) and
by the tests, which start and stop their own. It listens on 127.0.0.1 only, on a free port,
with trust authentication for its one user (nothing else can reach it). PostgreSQL refuses to
run as root, so under root the cluster's files belong to, and its processes run as, the
``postgres`` system user (or ``nobody``), as the packaged server does.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

from segsync.engines import EngineUnavailable

USER = "segsync"
DATABASE = "segsync"
BIN_ENV = "SEGSYNC_PG_BIN"  # the folder of initdb and pg_ctl, when not found by itself


def server_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: ``$SEGSYNC_PG_BIN``, ``pg_config
    --bindir``, or the newest ``/usr/lib/postgresql/*/bin`` (Debian's layout)."""
    candidates = []
    if os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                           key=lambda p: int(Path(p).parent.name), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise EngineUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) for a local cluster: install the server "
        "(Debian: apt-get install postgresql-15), set SEGSYNC_PG_BIN to their folder, or set "
        "[store] url to an existing server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as (None: this process's own user)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise EngineUnavailable("running as root and no unprivileged user (postgres, nobody) to run "
                            "a local PostgreSQL cluster as: PostgreSQL refuses to run as root")


def _traversable(directory: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` can reach ``directory`` (every existing ancestor searchable by it)."""
    for folder in [directory, *directory.parents]:
        if not folder.exists():
            continue
        st = folder.stat()
        if st.st_uid == user.pw_uid:
            mode_bit = 0o100
        elif st.st_gid == user.pw_gid:
            mode_bit = 0o010
        else:
            mode_bit = 0o001
        if not st.st_mode & mode_bit:
            return False
    return True


class LocalCluster:
    """A cluster in ``directory`` (kept, and reused by the next start) or in a temporary folder
    (removed by :meth:`stop`).

    Under root, a ``directory`` the server's user cannot reach (a project in root's home) is
    replaced by one in the system's temporary folder named after it (:attr:`directory` says
    where): still one per project, kept between commands.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._temporary = directory is None
        self.port: int | None = None
        self._bin = server_binaries()
        self._user = _run_as()
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="segsync-pg-"))
        elif self._user is not None and not _traversable(directory.resolve(), self._user):
            digest = hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:12]
            directory = Path(tempfile.gettempdir()) / f"segsync-postgres-{digest}"
        self.directory = directory

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        assert self.port is not None, "start() the cluster first"
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        kwargs = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        try:
            done = subprocess.run(list(args), capture_output=True, text=True, check=False,
                                  cwd=self.directory, timeout=120, **kwargs)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineUnavailable(f"local PostgreSQL: {Path(args[0]).name} failed: {exc}") from None
        if done.returncode != 0:
            raise EngineUnavailable(
                f"local PostgreSQL: {Path(args[0]).name} exited with {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-800:]}")
        return done

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def start(self) -> str:
        """Create the cluster if needed, start it on a free port; return its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._own(self.directory)
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self._bin / "initdb"), "-D", str(self.data), "-U", USER,
                      "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
        self.port = _free_port()
        sockets = self.directory / "sockets"
        sockets.mkdir(exist_ok=True)
        self._own(sockets)
        # Listen on 127.0.0.1 only; fsync off: a throwaway cluster trades durability for speed.
        options = f"-h 127.0.0.1 -p {self.port} -k {sockets} -F -c max_connections=30"
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.directory / "server.log"), "-w", "-t", "60", "start")
        admin = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as con:  # the database segsync uses, once
            if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchall():
                con.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(DATABASE)))
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown); a temporary cluster's files are removed."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.port = None
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
