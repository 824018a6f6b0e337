"""Real tracking servers for tests, started on 127.0.0.1 and ended by PID: PostgreSQL (Debian's
``postgresql`` package) and ``mlflow server``.

PostgreSQL refuses to run as root, so as root the server runs as the system's ``postgres`` user
(or a ``shrink-pg`` user made with ``useradd``), in a fresh data folder under /tmp (short: its Unix
socket lives there too). Missing binaries skip the test, except in CI (``$CI`` set), where they
fail it: ``.ci/run`` installs them (and sets ``CI``).

    with postgres_server() as pg, mlflow_server(pg.uri, artifacts) as server:
        ...  # server.url is the tracking URI
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # newest version first
SERVICE_USER = "shrink-pg"  # made with useradd when the machine has no `postgres` user
DATABASE = "mlflow"  # database and user names, as cluster.yaml's head uses them


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server binaries; skips the test without them (fails it in CI)."""
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    message = "PostgreSQL server binaries not found under /usr/lib/postgresql (Debian package `postgresql`)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{message}; .ci/run installs it", pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL with database and superuser ``mlflow`` (trust auth, 127.0.0.1 only)."""

    folder: Path  # data folder, socket and log
    port: int
    log: Path

    @property
    def uri(self) -> str:
        """The SQLAlchemy URI MLflow takes (psycopg 3 driver)."""
        return f"postgresql+psycopg://{DATABASE}@127.0.0.1:{self.port}/{DATABASE}"


def _service_user() -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SERVICE_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                   check=True, capture_output=True)
    return pwd.getpwnam(SERVICE_USER)


def _as(user: pwd.struct_passwd | None, command: list, cwd: Path) -> subprocess.CompletedProcess:
    as_user = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": "/tmp"}
    return subprocess.run([str(c) for c in command], env=env, check=True, capture_output=True, text=True,
                          timeout=120, cwd=cwd, **as_user)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL in a fresh folder on a free port of 127.0.0.1; stop it and remove the folder
    on exit. Durability is off (``fsync=off``): the data lives as long as the test."""
    bin_dir, user = postgres_bin(), _service_user()
    folder = Path(tempfile.mkdtemp(prefix="shrink-pg-", dir="/tmp"))
    data, log, port = folder / "data", folder / "server.log", free_port()
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    try:
        _as(user, [bin_dir / "initdb", "-D", data, "-U", DATABASE, "--auth=trust", "-E", "UTF8", "--no-sync"], folder)
        _as(user, [bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start", "-o",
                   f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"], folder)
        try:
            _as(user, [bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", DATABASE, DATABASE], folder)
            yield PostgresServer(folder, port, log)
        finally:
            _as(user, [bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], folder)
    except subprocess.CalledProcessError as error:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"{error.cmd[0]} failed: {error.stderr.strip()}\n{tail}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restart_postgres(server: PostgresServer) -> None:
    """Restart a running :func:`postgres_server` in place (fast shutdown: open connections are cut)."""
    bin_dir, user = postgres_bin(), _service_user()
    _as(user, [bin_dir / "pg_ctl", "-D", server.folder / "data", "-l", server.log, "-m", "fast", "-w", "-t", "60",
               "restart"], server.folder)  # -l: the new server must not hold our output pipe open


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``; ``url`` is the tracking URI of its clients."""

    url: str
    process: subprocess.Popen
    log: Path


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, *, port: int | None = None,
                  timeout_s: float = 180) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` (one worker, no job runner: two light processes) on ``backend_uri``,
    serving artifacts from ``artifacts``, on ``port`` of 127.0.0.1 (default: a free one); wait until
    /health answers; end its process group on exit."""
    port = port or free_port()
    artifacts.mkdir(parents=True, exist_ok=True)
    log = artifacts.parent / f"mlflow-server-{port}.log"
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process, log, timeout_s)
        yield MlflowServer(url, process, log)
    finally:
        _end_group(process)


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server at {url} not healthy after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def kill_mlflow_server(server: MlflowServer) -> None:
    """SIGKILL the server's whole process group at once, as a crash would (requests in flight are lost)."""
    _end_group(server.process, signals=(signal.SIGKILL,))


def _end_group(process: subprocess.Popen, grace_s: float = 10,
               signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGKILL)) -> None:
    """SIGTERM the server's process group (it started its own session), SIGKILL after ``grace_s``."""
    for sig in signals:  # SIGKILL also ends workers that outlive the leader
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
