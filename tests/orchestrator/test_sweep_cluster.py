"""`shrink sweep --cluster`: the cluster file, and the sweep submitted as a Ray Job to a real head.

The job-submission path (plug-ins under `pip:` included) is exercised against a head started here
with `ray start --head` on 127.0.0.1; `ray up` itself, over SSH, is in test_cluster_launcher.py.
"""

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from click.testing import CliRunner

from shrink.cli import main
from shrink.orchestrator.cluster import (
    DASHBOARD_PORT,
    ClusterError,
    answers,
    dashboard_port,
    read_cluster_file,
    submit_sweep,
)
from helpers import digits_sweep, free_port
from sweep_testing import shrink_checkout, sweep_runs, trial_runs

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FILE = ROOT / "cluster.yaml"


def test_cluster_file_is_valid_for_rays_launcher_on_aws_and_on_prem():
    from ray.autoscaler._private.util import prepare_config, validate_config

    aws = yaml.safe_load(CLUSTER_FILE.read_text())
    validate_config(prepare_config(aws))
    workers = aws["available_node_types"]["gpu_worker"]
    assert (workers["min_workers"], workers["max_workers"]) == (1, 4)
    assert aws["available_node_types"]["head"]["resources"] == {"CPU": 0, "GPU": 0}
    assert aws["head_start_ray_commands"][-1] == "bash ~/shrink/cluster/start-tracking.sh"  # PostgreSQL + MLflow
    assert any("pip install" in command and "$HOME/shrink[cluster]" in command for command in aws["setup_commands"])
    # The workers start CUDA's MPS daemon before Ray (its trials inherit it); where there is none, a no-op.
    start = aws["worker_start_ray_commands"]
    mps = [i for i, command in enumerate(start) if "nvidia-cuda-mps-control -d" in command]
    assert len(mps) == 1 and start[mps[0] + 1].endswith("ray start --address=$RAY_HEAD_IP:6379")
    assert subprocess.run(["bash", "-c", start[mps[0]]], capture_output=True, timeout=10).returncode == 0

    # The on-prem recipe in the file's header: a local provider, no node types.
    on_prem = {**aws, "provider": {"type": "local", "head_ip": "10.0.0.10", "worker_ips": ["10.0.0.11", "10.0.0.12"]},
               "auth": {"ssh_user": "you", "ssh_private_key": "~/.ssh/id_ed25519"}}
    del on_prem["available_node_types"], on_prem["head_node_type"]
    prepared = prepare_config(on_prem)
    validate_config(prepared)
    assert prepared["max_workers"] == 2


def test_dashboard_port_comes_from_the_head_start_command(tmp_path):
    assert dashboard_port(read_cluster_file(CLUSTER_FILE)) == DASHBOARD_PORT == 8265
    custom = {"cluster_name": "c", "provider": {"type": "local"},
              "head_start_ray_commands": ["ray start --head --dashboard-port=8300"]}
    assert dashboard_port(custom) == 8300
    not_a_cluster = tmp_path / "sweep.yaml"
    not_a_cluster.write_text("dataset: digits\n")
    with pytest.raises(ClusterError, match=r"sweep.yaml is not a Ray cluster-launcher file \(needs cluster_name and provider\)$"):
        read_cluster_file(not_a_cluster)


def thin_venv(folder: Path) -> Path:
    """A virtual environment holding nothing but a path to this one's packages; its ``bin`` folder.

    Ray builds a ``pip`` runtime environment by copying the virtual environment Ray runs from (with
    torch, gigabytes) or, outside one, as a virtualenv over the system Python. A head started from
    this one copies a few files instead: what a cluster node's Ray would do, at a test's cost."""
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # An `import` line of a .pth file runs at start-up: this environment's packages, their .pth files included.
    lines = [f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages()]
    Path(purelib, "_shrink_test_base.pth").write_text("".join(lines))
    return python.parent


@pytest.fixture(scope="module")
def ray_head(ray_tmpdir):
    """A Ray head on 127.0.0.1 with its job server (its port is returned), for this module; the
    ray_tmpdir fixture ends its processes by PID afterwards. Jobs run ``python`` from the head's PATH:
    a thin virtual environment over this one (see :func:`thin_venv`)."""
    dashboard = free_port()
    venv = thin_venv(Path(ray_tmpdir) / "venv")
    env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}"}
    # Every port Ray would otherwise take at a fixed default is chosen free: other Ray heads on this
    # machine must not collide with this one (a job agent that cannot bind leaves jobs unaccepted).
    subprocess.run(
        [str(venv / "python"), "-m", "ray.scripts.scripts", "start", "--head", "--node-ip-address=127.0.0.1",
         f"--port={free_port()}", f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1",
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
         "--num-cpus=2", f"--temp-dir={ray_tmpdir}", "--disable-usage-stats"],
        env=env, check=True, capture_output=True, timeout=120,
    )
    return dashboard


def test_cluster_option_submits_the_sweep_as_a_ray_job_and_streams_it(ray_head, tmp_path, monkeypatch):
    assert answers("127.0.0.1", ray_head)
    assert not answers("127.0.0.1", free_port())
    project = shrink_checkout(tmp_path / "project")
    digits_sweep(project, name="remote")
    # An on-prem cluster file whose head (started above) already answers: no `ray up` needed.
    (project / "cluster.yaml").write_text(yaml.safe_dump({
        "cluster_name": "local", "provider": {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []},
        "auth": {"ssh_user": "nobody"}, "metadata": {"shrink": {"allowed_network": "127.0.0.0/8"}},
        "head_start_ray_commands": [f"ray start --head --dashboard-port={ray_head}"],
    }))
    monkeypatch.chdir(project)
    # Handed on to the job (whose trials then get it from the job, not a second time from the driver's ray.init).
    monkeypatch.setenv("SHRINK_COMPILE", os.environ.get("SHRINK_COMPILE") or "0")

    result = CliRunner().invoke(main, ["sweep", "remote.yaml", "--cluster", "cluster.yaml"])

    assert result.exit_code == 0, result.output[-3000:]
    assert f"to http://127.0.0.1:{ray_head}: python -m shrink sweep remote.yaml --address auto" in result.output
    assert "8/8 done: 8 finished, 0 failed | 0 running | 0 pending" in result.output  # streamed from the job
    assert result.output.splitlines()[-1].endswith("succeeded")
    uri = f"sqlite:///{project / 'mlflow.db'}"
    [parent] = sweep_runs(uri)
    runs = trial_runs(uri, parent.info.run_id)
    assert len(runs) == 8 and {r.data.tags["shrink.status"] for r in runs} == {"finished"}


def test_a_failing_job_returns_its_exit_status(ray_head, tmp_path, capsys):
    project = shrink_checkout(tmp_path / "project")
    (project / "bad.yaml").write_text("dataset: digits\nmodels: [nope]\nstrategies: [random]\n"
                                      "compressions: [2]\nseeds: [0]\n")
    status = submit_sweep(f"http://127.0.0.1:{ray_head}", ["bad.yaml"], working_dir=project)
    assert status == 2
    assert "Error: bad.yaml: models: unknown model 'nope'" in capsys.readouterr().out
    # The tracking store is probed on the head, in the job, before the job's driver joins Ray or makes a base.
    digits_sweep(project, name="remote")
    refused = f"http://127.0.0.1:{free_port()}"
    status = submit_sweep(f"http://127.0.0.1:{ray_head}", ["remote.yaml", "--tracking-uri", refused],
                          working_dir=project)
    output = capsys.readouterr().out
    assert status == 2
    assert (f"Error: tracking store {refused}: no MLflow server answers (Connection refused); start it, or give the "
            "address of one\n") in output
    assert "ray: started" not in output and "bases:" not in output


PLUGIN_STRATEGY = "plugin-magnitude"


@pytest.fixture(scope="module")
def plugin_wheel(tmp_path_factory) -> Path:
    """A researcher's package registering strategy ``plugin-magnitude`` by entry point, built as a wheel."""
    source = tmp_path_factory.mktemp("plugin") / "shrink-plugin-test"
    source.mkdir()
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "shrink-plugin-test"\nversion = "0.1"\n\n'
        f'[project.entry-points."shrink.strategies"]\n{PLUGIN_STRATEGY} = "shrink_plugin_test"\n\n'
        '[tool.setuptools]\npy-modules = ["shrink_plugin_test"]\n'
    )
    (source / "shrink_plugin_test.py").write_text(
        "from shrink.pruning import register_strategy\n\n\n"
        f"@register_strategy({PLUGIN_STRATEGY!r}, description='|w|, from a plug-in')\n"
        "def score(ctx):\n"
        "    return {name: weight.detach().abs() for name, weight in ctx.weights.items()}\n"
    )
    dist = source.parent / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = dist.glob("*.whl")
    return wheel


def test_a_plugin_listed_under_pip_reaches_the_clusters_driver_and_workers(ray_head, plugin_wheel, tmp_path):
    project = shrink_checkout(tmp_path / "project")
    digits_sweep(project, name="plugin", strategies=f"[{PLUGIN_STRATEGY}]", seeds="[0]", pip=f"[{plugin_wheel}]")
    (project / "cluster.yaml").write_text(yaml.safe_dump({
        "cluster_name": "local", "provider": {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []},
        "auth": {"ssh_user": "nobody"}, "metadata": {"shrink": {"allowed_network": "127.0.0.0/8"}},
        "head_start_ray_commands": [f"ray start --head --dashboard-port={ray_head}"],
    }))
    # Here the plug-in is installed too (the sweep file is validated here before it is submitted).
    here = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(here), str(plugin_wheel)],
                   check=True, capture_output=True, timeout=120)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(here)])}

    result = subprocess.run([sys.executable, "-m", "shrink", "sweep", "plugin.yaml", "--cluster", "cluster.yaml"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=900)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"cluster: each node installs {plugin_wheel} (pip) before the sweep starts there" in result.stdout
    assert "2/2 done: 2 finished, 0 failed | 0 running | 0 pending" in result.stdout
    uri = f"sqlite:///{project / 'mlflow.db'}"
    [parent] = sweep_runs(uri)
    runs = trial_runs(uri, parent.info.run_id)
    assert sorted((r.data.params["strategy"], r.data.params["compression"]) for r in runs) == [
        (PLUGIN_STRATEGY, "2.0"), (PLUGIN_STRATEGY, "4.0")]
    assert {r.data.tags["shrink.status"] for r in runs} == {"finished"}


def test_a_plugin_missing_on_the_cluster_fails_before_the_grid_saying_to_list_it_under_pip(ray_head, tmp_path, capsys):
    project = shrink_checkout(tmp_path / "project")
    digits_sweep(project, name="plugin", strategies=f"[{PLUGIN_STRATEGY}]", seeds="[0]")

    status = submit_sweep(f"http://127.0.0.1:{ray_head}", ["plugin.yaml"], working_dir=project)

    assert status == 2
    [error] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: plugin.yaml: strategies: unknown strategy {PLUGIN_STRATEGY!r}; known: ")
    assert error.endswith(f"this sweep runs as a Ray Job on the cluster, where {PLUGIN_STRATEGY!r} is not "
                          "registered: list the package that registers it under `pip:` in the sweep file")
    assert not (project / "mlflow.db").exists()  # nothing started


def test_a_pip_package_that_does_not_install_fails_the_job_with_pips_reason(ray_head, tmp_path, capsys):
    project = shrink_checkout(tmp_path / "project")
    digits_sweep(project, name="plugin", seeds="[0]")
    missing = tmp_path / "wheels" / "shrink_nope-0.1-py3-none-any.whl"

    status = submit_sweep(f"http://127.0.0.1:{ray_head}", ["plugin.yaml"], working_dir=project,
                          pip={"packages": [str(missing)]})

    assert status == 1
    lines = capsys.readouterr().out.splitlines()
    [at] = [n for n, line in enumerate(lines) if line.startswith("cluster: job ")]
    assert lines[at].endswith(" failed: runtime_env setup failed: Failed to set up runtime environment.")
    assert lines[at + 1:] == [
        f"ERROR: Could not install packages due to an OSError: [Errno 2] No such file or directory: '{missing}'"]
    assert not (project / "mlflow.db").exists()
