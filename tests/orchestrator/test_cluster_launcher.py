"""`shrink sweep --cluster` through Ray's cluster launcher: `ray up` with the on-prem (`local`) provider
over SSH to this machine, the sweep as a Ray Job, then `ray down`.

`ray up` and `ray down` run `ray stop` on the head, which ends every Ray process it can see. So the
whole scenario (sshd, the head, the job, `ray down`) runs in `onprem_cluster.py` inside PID, mount and
network namespaces that this test creates with `unshare`: it sees and ends only its own processes, and
the fixed ports it uses (sshd's 22, Ray's 6379 and 8265) are those of a private loopback. Needs root,
`unshare`, `ip`, Debian's `openssh-server` and `rsync`; without them it is skipped, except in CI
(`$CI` set), where it fails. Alone: `pytest tests/orchestrator/test_cluster_launcher.py`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import digits_sweep
from sweep_testing import shrink_checkout, sweep_runs, trial_runs

SCENARIO = Path(__file__).with_name("onprem_cluster.py")
NAMESPACES = ["unshare", "--pid", "--fork", "--mount-proc", "--net"]


def _missing() -> str | None:
    """Why the scenario cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (namespaces, sshd)"
    tools = {"unshare": "util-linux", "ip": "iproute2", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
             "rsync": "rsync"}
    absent = [f"{tool} ({package})" for tool, package in tools.items() if shutil.which(tool) is None]
    if not Path("/usr/sbin/sshd").exists():
        absent.append("/usr/sbin/sshd (openssh-server)")
    if absent:
        return "missing " + ", ".join(absent)
    probe = subprocess.run([*NAMESPACES, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create namespaces: {probe.stderr.strip()}"
    return None


@pytest.fixture
def workdir():
    """A short, world-readable folder (the head runs as another user; Ray's socket paths must stay short)."""
    folder = Path(tempfile.mkdtemp(prefix="shrink-onprem-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_cluster_option_brings_an_on_prem_head_up_over_ssh_runs_the_sweep_and_ray_down_ends_it(workdir):
    if reason := _missing():
        if os.environ.get("CI"):
            pytest.fail(f"the on-prem cluster test must run in CI: {reason}")
        pytest.skip(reason)
    project = shrink_checkout(workdir / "project")
    digits_sweep(project, name="launcher", strategies="[global-magnitude]", seeds="[0]")

    scenario = subprocess.run([*NAMESPACES, sys.executable, str(SCENARIO), str(workdir), "launcher.yaml"],
                              capture_output=True, text=True, timeout=900)

    assert scenario.returncode == 0, scenario.stdout[-5000:] + scenario.stderr[-3000:]
    result = json.loads((workdir / "result.json").read_text())
    sweep, down = result["sweep"], result["down"]
    assert sweep["status"] == 0, sweep["output"][-5000:]
    assert "cluster: no head answers; bringing it up with `ray up -y onprem.yaml`" in sweep["output"]
    assert "to http://127.0.0.1:8265: python -m shrink sweep launcher.yaml --address auto" in sweep["output"]
    assert "2/2 done: 2 finished, 0 failed | 0 running | 0 pending" in sweep["output"]  # streamed from the job
    assert sweep["output"].splitlines()[-1].endswith("succeeded")
    # The head that `ray up` started (as the SSH user) was still up after the sweep, and `ray down` ended it.
    started = {command.split()[0].rsplit("/", 1)[-1] for command in sweep["ray_processes"]}
    assert {"gcs_server", "raylet"} <= started
    assert down["status"] == 0, down["output"][-3000:]
    assert down["ray_processes"] == []

    uri = f"sqlite:///{project / 'mlflow.db'}"
    [parent] = sweep_runs(uri)
    runs = trial_runs(uri, parent.info.run_id)
    assert sorted(r.data.params["compression"] for r in runs) == ["2.0", "4.0"]
    assert {r.data.tags["shrink.status"] for r in runs} == {"finished"}
    print(f"shrink sweep --cluster (ray up, job): {sweep['seconds']} s; ray down: {down['seconds']} s")
