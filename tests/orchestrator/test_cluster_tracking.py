"""The cluster head's tracking store, `cluster/start-tracking.sh`, run here for real: PostgreSQL from
the OS package and the MLflow server on it, on free ports of 127.0.0.1."""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from mlflow.tracking import MlflowClient

from helpers import free_port
from tracking_servers import postgres_bin

SCRIPT = Path(__file__).resolve().parents[2] / "cluster" / "start-tracking.sh"


def _start(env: dict) -> str:
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_heads_script_runs_mlflow_on_postgresql_and_can_be_rerun(tmp_path):
    bin_dir = postgres_bin()
    # A short folder every user can pass through (PostgreSQL may run as `postgres`; its socket is here).
    folder = Path(tempfile.mkdtemp(prefix="shrink-head-", dir="/tmp"))
    folder.chmod(0o711)
    state, artifacts, port, pg_port = folder / "state", tmp_path / "artifacts", free_port(), free_port()
    env = {**os.environ, "SHRINK_PG_DATA": str(state / "postgres"), "SHRINK_PG_PORT": str(pg_port),
           "SHRINK_MLFLOW_HOST": "127.0.0.1", "SHRINK_MLFLOW_PORT": str(port),
           "SHRINK_MLFLOW_ARTIFACTS": str(artifacts), "PYTHON": sys.executable,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    try:
        first = _start(env)
        assert f"starting PostgreSQL on 127.0.0.1:{pg_port}" in first
        assert f"MLflow answers at http://127.0.0.1:{port}/health" in first
        password = (state / "pgpass").read_text().split(":")[-1].strip()
        assert len(password) == 48 and oct((state / "pgpass").stat().st_mode)[-3:] == "600"

        client = MlflowClient(f"http://127.0.0.1:{port}")
        run = client.create_run(client.create_experiment("head")).info.run_id
        client.log_metric(run, "val_top1", 0.5, step=1)
        client.log_text(run, "x", "config.json")
        with psycopg.connect(f"host=127.0.0.1 port={pg_port} dbname=mlflow user=mlflow password={password}") as db:
            assert db.execute("SELECT key, value, step FROM metrics WHERE run_uuid = %s", (run,)).fetchall() == [
                ("val_top1", 0.5, 1)]
        assert (artifacts / "1" / run / "artifacts" / "config.json").read_text() == "x"  # served to /shared

        second = _start(env)  # everything exists: only MLflow restarts, on the same data
        assert "creating" not in second and "starting PostgreSQL" not in second
        assert "stopping the previous MLflow server" in second
        assert MlflowClient(f"http://127.0.0.1:{port}").get_metric_history(run, "val_top1")[0].value == 0.5
    finally:
        pid = state / "mlflow.pid"
        if pid.exists():
            try:
                os.killpg(int(pid.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
        stop = [str(bin_dir / "pg_ctl"), "-D", str(state / "postgres"), "-m", "immediate", "stop"]
        subprocess.run(["runuser", "-u", "postgres", "--", *stop] if os.geteuid() == 0 else stop,
                       capture_output=True, timeout=60)
        subprocess.run(["rm", "-rf", str(folder)])
