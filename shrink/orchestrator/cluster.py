"""``shrink sweep --cluster FILE``: run a sweep as a Ray Job on a cluster made by Ray's cluster launcher.

The cluster file is an ordinary ``ray up`` file (see ``cluster.yaml`` at the repository root). When
its head does not answer, the cluster is brought up with ``ray up -y FILE``; then ``shrink sweep ...
--address auto`` is submitted to the head's job server with the working directory as the job's
``runtime_env`` (with the sweep file's ``pip`` packages, which Ray installs on each node before the
job's driver and trials start), its logs are streamed here, and its exit status becomes ours.
Results stay where the cluster puts them: the MLflow server on the head and the shared storage path.
"""

import asyncio
import ipaddress
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from shrink.orchestrator.spec import CLUSTER_JOB_ENV, SpecError

DASHBOARD_PORT = 8265
# The one setting of a cluster file that says who may reach the head's MLflow server and Ray dashboard.
ALLOWED_NETWORK = "metadata.shrink.allowed_network"
# Documentation ranges (RFC 5737, RFC 3849): what an example file holds until its user sets theirs.
PLACEHOLDER_NETWORKS = tuple(ipaddress.ip_network(n) for n in
                             ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))
_CIDR = re.compile(r"(?<![\w.:/])(\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})/\d{1,3}\b")
# Never uploaded with the working directory: environments, results, caches.
EXCLUDES = [".git", ".venv", "venv", "shrink-out", "mlruns", "mlflow.db", "__pycache__", "*.egg-info",
            ".pytest_cache", ".hypothesis"]


class ClusterError(RuntimeError):
    """The cluster could not be brought up or reached; the message says what to check."""


def run_on_cluster(cluster_file: Path, args: list[str], *, working_dir: Path, pip: dict | None = None,
                   command: str = "sweep") -> int:
    """Bring the cluster up if needed, run ``shrink COMMAND ARGS`` on it as a Ray Job (``sweep``, or
    ``doctor``); exit status.

    ``pip``: the ``pip`` field of the job's Ray runtime environment (``Pip.runtime_env()``), or None."""
    config = check_cluster_file(cluster_file)
    port = dashboard_port(config)
    head = _head_ip(cluster_file, config)
    if head is None or not answers(head, port):
        print(f"cluster: no head answers; bringing it up with `ray up -y {cluster_file}`", flush=True)
        up = subprocess.run([_ray_cli(), "up", "-y", str(cluster_file)])
        if up.returncode != 0:
            raise ClusterError(f"`ray up -y {cluster_file}` failed with exit status {up.returncode}")
        head = _head_ip(cluster_file, config)
        if head is None or not wait_until_answers(head, port, timeout_s=300):
            raise ClusterError(
                f"the cluster's head {head} does not answer on dashboard port {port}: check "
                f"`ray monitor {cluster_file}` and that port {port} is open to this machine"
            )
    return submit_sweep(f"http://{head}:{port}", args, working_dir=working_dir, pip=pip, command=command)


def submit_sweep(address: str, args: list[str], *, working_dir: Path, pip: dict | None = None,
                 command: str = "sweep") -> int:
    """Submit ``python -m shrink COMMAND ARGS --address auto`` to the job server at ``address``
    (``http://host:port``), uploading ``working_dir`` and installing ``pip`` (a runtime environment's
    ``pip`` field) for it, with this process's ``$SHRINK_COMPILE`` when set; stream its logs and return its
    exit status."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    from shrink.experiment.runtime import compile_env

    client = JobSubmissionClient(address)
    entrypoint = shlex.join(["python", "-m", "shrink", command, *args, "--address", "auto"])
    runtime_env = {"working_dir": str(working_dir), "excludes": EXCLUDES,
                   "env_vars": {CLUSTER_JOB_ENV: "1", **compile_env()}}
    if pip:
        runtime_env["pip"] = pip
    job_id = _submit(client, address, entrypoint=entrypoint, runtime_env=runtime_env)
    print(f"cluster: submitted Ray Job {job_id} to {address}: {entrypoint}", flush=True)
    if pip:
        print(f"cluster: each node installs {', '.join(pip['packages'])} (pip) before the sweep starts there; "
              "the first time, this takes a while", flush=True)
    try:
        asyncio.run(_stream_logs(client, job_id))
    except KeyboardInterrupt:
        print(f"\ncluster: stopped following; the job goes on (stop it with `ray job stop {job_id} "
              f"--address {address}`)", flush=True)
        raise
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                              JobStatus.STOPPED}:
        time.sleep(0.5)
    info = client.get_job_info(job_id)
    # A job whose driver never ran (its environment could not be made: a `pip:` package that does not
    # install) has no logs to stream: Ray's message is the only reason there is.
    why = f": {_reason(info.message or '')}" if info.driver_exit_code is None and status == JobStatus.FAILED else ""
    print(f"cluster: job {job_id} {status.value.lower()}{why}", flush=True)
    if info.driver_exit_code is not None:
        return info.driver_exit_code
    return 0 if status == JobStatus.SUCCEEDED else 1


def _submit(client, address: str, **job) -> str:
    """Submit the job, waiting up to a minute for the head's job agent, which can start well after
    the dashboard answers (a fresh or busy head)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as error:
            if "No available agent" not in str(error) or time.monotonic() > deadline:
                raise ClusterError(f"the job server at {address} did not take the sweep: {error}") from None
        time.sleep(2)


def _reason(message: str) -> str:
    """Ray's message on a job that never started, cut to its first line and pip's ``ERROR:`` lines
    when it has them (the rest is Ray's traceback)."""
    lines = message.strip().splitlines()
    errors = [line.strip() for line in lines if line.strip().startswith("ERROR:")]
    return "\n".join(lines[:1] + errors) if errors else message.strip()


async def _stream_logs(client, job_id: str) -> None:
    async for chunk in client.tail_job_logs(job_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def read_cluster_file(cluster_file: Path) -> dict:
    """The cluster-launcher config in ``cluster_file``, checked to be one."""
    try:
        config = yaml.safe_load(Path(cluster_file).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ClusterError(f"cannot read cluster file {cluster_file}: {error}") from None
    if not isinstance(config, dict) or "provider" not in config or "cluster_name" not in config:
        raise ClusterError(f"{cluster_file} is not a Ray cluster-launcher file (needs cluster_name and provider)")
    return config


def check_cluster_file(cluster_file: Path) -> dict:
    """The cluster file's config, refused (:class:`SpecError`, one line) unless the head's MLflow
    server and Ray dashboard are open only to the user's network range."""
    config = read_cluster_file(cluster_file)
    check_network_access(config, str(cluster_file))
    return config


def check_network_access(config: dict, origin: str) -> None:
    """``metadata.shrink.allowed_network`` must be the user's range, and no range anywhere in the
    file (security groups, firewall commands) may be an example range or open to every address."""
    allowed = ((config.get("metadata") or {}).get("shrink") or {}).get("allowed_network")
    what_to_set = (f"set {ALLOWED_NETWORK} (and every range the file opens ports 5000 and "
                   f"{dashboard_port(config)} to) to your network's range, e.g. 10.0.0.0/16")
    if not allowed:
        raise SpecError(f"{origin}: {ALLOWED_NETWORK} is not set: {what_to_set}")
    try:
        ipaddress.ip_network(str(allowed), strict=False)
    except ValueError:
        raise SpecError(f"{origin}: {ALLOWED_NETWORK}: {allowed!r} is not a network range (CIDR): "
                        f"{what_to_set}") from None
    for where, network in _networks(config):
        if network.prefixlen == 0:
            raise SpecError(f"{origin}: {where}: {network} opens MLflow and the Ray dashboard to every "
                            f"address: {what_to_set}")
        if any(network.version == p.version and network.overlaps(p) for p in PLACEHOLDER_NETWORKS):
            raise SpecError(f"{origin}: {where}: {network} is an example range, a placeholder: {what_to_set}")


def _networks(value, where: str = ""):
    """Every network range (CIDR) written in a config value, with its place (``a.b[0].c``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _networks(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _networks(item, f"{where}[{index}]")
    elif isinstance(value, str):
        for match in _CIDR.finditer(value):
            try:
                yield where, ipaddress.ip_network(match.group(0), strict=False)
            except ValueError:
                continue


def dashboard_port(config: dict) -> int:
    """The head's dashboard (job server) port: ``--dashboard-port`` in its start commands, else 8265."""
    commands = " ".join(config.get("head_start_ray_commands") or [])
    match = re.search(r"--dashboard-port[= ](\d+)", commands)
    return int(match.group(1)) if match else DASHBOARD_PORT


def answers(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """Whether an HTTP server answers at ``host:port`` (any status, authorised or not)."""
    try:
        urllib.request.urlopen(f"http://{host}:{port}/api/version", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def wait_until_answers(host: str, port: int, *, timeout_s: float) -> bool:
    """Poll :func:`answers` until it does or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(host, port):
            return True
        time.sleep(2)
    return False


def _head_ip(cluster_file: Path, config: dict) -> str | None:
    """The head's address: given in an on-prem file, else asked of the launcher (None: no head)."""
    provider = config["provider"]
    if provider.get("type") == "local" and provider.get("head_ip"):
        return provider["head_ip"]
    from ray.autoscaler.sdk import get_head_node_ip

    try:
        return get_head_node_ip(str(cluster_file))
    except RuntimeError:  # the launcher knows no running head for this cluster
        return None


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))
