"""`shrink sweep --resume` after the driver is killed: every trial finishes once, none twice."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import digits_sweep
from helpers import end_processes_with_env
from sweep_testing import identity, sweep_runs, trial_runs

ROOT = Path(__file__).resolve().parents[2]


def _finished_trials(uri: str) -> list:
    return [r for p in sweep_runs(uri) for r in trial_runs(uri, p.info.run_id)
            if r.data.tags.get("shrink.status") == "finished"]


def test_killed_driver_resumes_without_training_any_trial_twice(ray_tmpdir, tmp_path):
    path = digits_sweep(tmp_path, name="phoenix")
    path.write_text(path.read_text().replace("finetune: {epochs: 2}", "finetune: {epochs: 12, patience: 12}"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = [sys.executable, "-m", "shrink", "sweep", str(path)]

    log = tmp_path / "first.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(sweep, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 150
        # Query MLflow only once the driver has created its store (a second creator would race it).
        while "mlflow: " not in log.read_text() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        while len(_finished_trials(uri)) < 2 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert driver.poll() is None, "the sweep ended before it could be interrupted"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    done_before = len(_finished_trials(uri))
    assert 2 <= done_before < 8
    end_processes_with_env("RAY_TMPDIR", ray_tmpdir)  # what the killed driver's Ray left behind

    resumed = subprocess.run([*sweep, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=240)

    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "8/8 done: 8 finished, 0 failed | 0 running | 0 pending" in resumed.stdout
    [parent] = sweep_runs(uri)
    assert parent.info.status == "FINISHED"
    runs = trial_runs(uri, parent.info.run_id)
    identities = {identity(run) for run in runs}
    # Each trial trained to completion exactly once: one finished run per trial, and the runs the
    # killed driver's trials left behind either continued to the end or were superseded and deleted.
    assert len(runs) == len(identities) == 8
    assert {r.data.tags["shrink.status"] for r in runs} == {"finished"}
