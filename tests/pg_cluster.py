"""A throwaway PostgreSQL server for the tests and benchmarks: ``initdb`` in a temporary directory,
listening only on a Unix socket there, stopped and removed afterwards.

The server binaries are found without naming a version (``pg_ctl`` on ``PATH``, ``pg_config
--bindir``, or the newest ``/usr/lib/postgresql/*/bin``, Debian's layout); ``bash
scripts/system-deps.sh`` installs Debian's ``postgresql`` where they are missing. ``initdb``
refuses to run as root, so as root the server runs as an unprivileged user (Debian's ``postgres``,
else ``nobody``) that owns the temporary directory.

Authentication: ``trust`` for every local user but :data:`PASSWORD_USER`, who must give
:data:`PASSWORD` (SCRAM), so the tests can check that a password never leaks.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

#: A role that logs in with a password only (scram-sha-256), and its password.
PASSWORD_USER = "gpubench_pw"
PASSWORD = "Pw-d0nt-l3ak-9f2c"
SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None where PostgreSQL's server is not installed."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(path).parent.name)) or (0,)

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


class Cluster:
    """One throwaway server; :meth:`start` it, :meth:`new_database` per test, :meth:`stop` at the end."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.root: Path | None = None
        self._names = itertools.count(1)
        self._as: dict = {}
        self._shared_db = False

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True,
                              timeout=timeout, cwd=self.root, **self._as)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def start(self) -> Cluster:
        """initdb a fresh cluster in a temporary directory and start it on a Unix socket there."""
        self.root = Path(tempfile.mkdtemp(prefix="gpubench-pg-"))
        if os.geteuid() == 0:
            user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
            if user is None:
                raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run initdb as")
            pw = pwd.getpwnam(user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.root.chmod(0o700)
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale",
                  "--no-sync")
        hba = data / "pg_hba.conf"
        hba_text = f"local all {PASSWORD_USER} scram-sha-256\nlocal all all trust\n"
        if self._as:
            subprocess.run(["tee", str(hba)], input=hba_text, text=True, capture_output=True, check=True, **self._as)
        else:
            hba.write_text(hba_text)
        options = (f"-k {self.root} -c listen_addresses='' -p 5432 -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "-o", options,
                  "start")
        self.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
        return self

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None,
            schema: str | None = None) -> str:
        """A libpq URL of a database on this server (the socket directory as the host), optionally
        with its tables in ``schema`` (``search_path``)."""
        auth = quote(user) + (f":{quote(password)}" if password else "")
        query = f"?options={quote(f'-csearch_path={schema}', safe='')}" if schema else ""
        return f"postgresql://{auth}@{quote(str(self.socket_dir), safe='')}/{database}{query}"

    def execute(self, statement: str, database: str = "postgres") -> None:
        """Run one statement as the superuser."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)

    def new_database(self, owner: str = SUPERUSER) -> str:
        """A fresh, empty database; returns its name."""
        name = f"gpubench_test_{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name} OWNER {owner}")
        return name

    def new_store_url(self, user: str = SUPERUSER, password: str | None = None) -> str:
        """The URL of a fresh, empty store: a schema of its own in the database ``gpubench`` (cheaper than
        a database per test), owned by ``user``."""
        if not self._shared_db:
            self.execute("CREATE DATABASE gpubench")
            self.execute(f"GRANT CONNECT ON DATABASE gpubench TO {PASSWORD_USER}")
            self._shared_db = True
        schema = f"t{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {user}", "gpubench")
        return self.url("gpubench", user, password, schema)

    def stop(self) -> None:
        """Stop the server at once and remove its directory."""
        if self.root is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
