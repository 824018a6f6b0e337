"""An on-prem cluster on this machine, for ``ray up`` with Ray's ``local`` provider: the scenario that
``test_cluster_launcher.py`` runs inside private namespaces.

Run as ``unshare --pid --fork --mount-proc --net PYTHON onprem_cluster.py WORKDIR [SHRINK ARGS...]``:
only then can the ``ray stop`` that ``ray up`` and ``ray down`` run over SSH end no Ray process but
this scenario's own (the PID namespace), and Ray's fixed ports (6379, 8265, ...) and sshd's port 22
(the local provider cannot name another) collide with nothing (the network namespace, where only
127.0.0.1 exists). Steps, each in a named function below:

1. ``loopback``: bring 127.0.0.1 up in the new network namespace.
2. ``private_home``: this user's home becomes an empty tmpfs in the mount namespace (so that the
   cluster's ``~/.bashrc``, ``~/.ray`` and bootstrap files touch nothing real), keeping the folders
   under it that Python, the virtual environment and the project live in.
3. ``test_user``: a user ``shrinkssh`` exists only in this mount namespace (bind-mounted copies of
   /etc/passwd, /etc/shadow and /etc/group), with its home in WORKDIR; the cluster's head runs as it.
4. ``start_sshd``: Debian's sshd on 127.0.0.1:22, its own config and host key in WORKDIR, key-only
   login for that user alone.
5. ``cluster_file``: ``WORKDIR/project/onprem.yaml`` for ``ray up`` (head 127.0.0.1, no workers).
6. ``shrink sweep SHRINK ARGS --cluster onprem.yaml`` in ``WORKDIR/project``, then ``ray down -y
   onprem.yaml``; their exit status and output, and the Ray processes left after each, go to
   ``WORKDIR/result.json`` for the test to check.

``WORKDIR/project`` must hold the sweep file; the test writes it. Needs root (namespaces, sshd).
"""

import getpass
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

USER, UID = "shrinkssh", 48620  # exists only inside the scenario's mount namespace
VENV_BIN = Path(sys.executable).parent
RAY_PROCESSES = ("gcs_server", "raylet", "dashboard", "ray::", "monitor.py", "log_monitor", "runtime_env_agent")


def loopback() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def private_home(keep: list[Path]) -> None:
    """Shadow ``$HOME`` with a tmpfs, bind-mounting back the entries of it on the paths in ``keep``."""
    home = Path.home().resolve()
    kept = {home / p.resolve().relative_to(home).parts[0] for p in keep if p.resolve().is_relative_to(home)}
    staging = Path(f"/tmp/.{USER}-{uuid.uuid4().hex[:8]}")  # the real entries, reachable under another name
    mounts = []
    for entry in sorted(kept):
        held = staging / entry.name
        held.mkdir(parents=True)
        subprocess.run(["mount", "--bind", str(entry), str(held)], check=True)
        mounts.append((held, entry))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(home)], check=True)
    for held, entry in mounts:
        entry.mkdir()
        subprocess.run(["mount", "--move", str(held), str(entry)], check=True)
    shutil.rmtree(staging)


def test_user(workdir: Path) -> Path:
    """Add ``USER`` to private copies of the account files; its home, in ``workdir``, is returned."""
    accounts = Path("/etc/passwd").read_text().splitlines()
    taken = [line for line in accounts if line.split(":")[0] == USER or line.split(":")[2] == str(UID)]
    assert not taken, f"the scenario's user {USER} (uid {UID}) must not exist on this machine: {taken}"
    home = workdir / "home"
    home.mkdir(mode=0o755)
    os.chown(home, UID, UID)
    entries = {"passwd": f"{USER}:x:{UID}:{UID}::{home}:/bin/bash", "shadow": f"{USER}:*:20000:0:99999:7:::",
               "group": f"{USER}:x:{UID}:"}
    for name, entry in entries.items():
        copy = workdir / "etc" / name
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(Path(f"/etc/{name}").read_text().rstrip("\n") + f"\n{entry}\n")
        subprocess.run(["mount", "--bind", str(copy), f"/etc/{name}"], check=True)
    return home


def start_sshd(workdir: Path) -> Path:
    """sshd on 127.0.0.1:22 letting ``USER`` in with a fresh key only; the private key's path."""
    ssh = workdir / "ssh"
    ssh.mkdir(mode=0o755)
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / key)], check=True)
    shutil.copy(ssh / "client_key.pub", ssh / "authorized_keys")
    config = ssh / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1:22", f"HostKey {ssh / 'host_key'}", f"AuthorizedKeysFile {ssh / 'authorized_keys'}",
        f"AllowUsers {USER}", "PermitRootLogin no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes no", f"PidFile {ssh / 'sshd.pid'}", "",
    ]))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    subprocess.run(["/usr/sbin/sshd", "-f", str(config), "-E", str(ssh / "sshd.log")], check=True)
    return ssh / "client_key"


def cluster_file(project: Path, workdir: Path, key: Path, name: str) -> Path:
    """An on-prem ``ray up`` file: the head on 127.0.0.1, reached over SSH as ``USER``, no workers."""
    import yaml

    env = {  # what every login shell on the head gets, through ~/.bashrc (as a real cluster file would)
        "PATH": f"{VENV_BIN}:$PATH",  # `ray` and the Python that has shrink, also for `ray down`'s `ray stop`
        "RAY_AUTH_MODE": "token",
        "RAY_TMPDIR": str(workdir / "ray-head"),
        "SHRINK_CACHE": str(workdir / "head-cache"),
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    }
    exports = "export " + " ".join(f"{k}={v}" for k, v in env.items())
    path = project / "onprem.yaml"
    path.write_text(yaml.safe_dump({
        "cluster_name": name,
        "provider": {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []},
        "auth": {"ssh_user": USER, "ssh_private_key": str(key)},
        "metadata": {"shrink": {"allowed_network": "127.0.0.0/8"}},  # the dashboard listens on 127.0.0.1
        "file_mounts": {"~/.ray/auth_token": str(workdir / "auth_token")},
        "setup_commands": [f"grep -q RAY_TMPDIR ~/.bashrc || echo '{exports}' >> ~/.bashrc"],
        "head_start_ray_commands": [
            "ray start --head --node-ip-address=127.0.0.1 --port=6379 --dashboard-host=127.0.0.1 "
            "--dashboard-port=8265 --num-cpus=2 --disable-usage-stats --autoscaling-config=~/ray_bootstrap_config.yaml",
        ],
        "worker_start_ray_commands": [],
    }, sort_keys=False))
    return path


def ray_processes() -> list[str]:
    """Command lines of the live (not zombie) Ray processes in this PID namespace."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if state != "Z" and any(marker in command for marker in RAY_PROCESSES):
            found.append(command)
    return found


def run(command: list[str], cwd: Path, env: dict, timeout: int) -> dict:
    """Run ``command``, echoing its output as it comes; its exit status, output and wall time."""
    print("$", " ".join(command), flush=True)
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    status = process.wait(timeout=timeout)
    return {"status": status, "output": "".join(lines), "seconds": round(time.monotonic() - start, 1)}


def main(workdir: Path, shrink_args: list[str]) -> None:
    project = workdir / "project"
    loopback()
    private_home(keep=[Path(sys.base_prefix), Path(sys.prefix), Path(__file__), project])
    home = test_user(workdir)
    key = start_sshd(workdir)
    for folder in ("ray-head", "head-cache"):
        (workdir / folder).mkdir()
    for path in (project, *project.rglob("*"), workdir / "ray-head", workdir / "head-cache"):
        os.chown(path, UID, UID)  # the head (as USER) writes its Ray state, MLflow and Ray Tune state here
    name = f"shrink-onprem-{uuid.uuid4().hex[:8]}"
    cluster = cluster_file(project, workdir, key, name)
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": str(Path.home()),
           "RAY_TMPDIR": str(workdir / "ray-client"), "TMPDIR": str(workdir / "tmp"),
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(workdir / "auth_token")}
    (workdir / "tmp").mkdir()
    (workdir / "auth_token").write_text(secrets.token_hex(32))  # the cluster's shared token (`file_mounts`)

    sweep = run([str(VENV_BIN / "shrink"), "sweep", *shrink_args, "--cluster", cluster.name], project, env, 600)
    sweep["ray_processes"] = ray_processes()
    down = run([str(VENV_BIN / "ray"), "down", "-y", cluster.name], project, env, 120)
    down["ray_processes"] = ray_processes()
    (workdir / "result.json").write_text(json.dumps({"sweep": sweep, "down": down, "home": str(home)}))
    shutil.rmtree(f"/tmp/ray_ssh_{_hash(getpass.getuser())}/{_hash(name)}", ignore_errors=True)


def _hash(text: str) -> str:
    """The name Ray's SSH runner gives ``text`` in its control-socket folder."""
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def reap_orphans_while(child: int) -> int:
    """As this PID namespace's init, reap every process orphaned into it (``ray stop`` waits for the
    ones it ends to be gone, zombies included) until ``child`` exits; its exit status."""
    while True:
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    assert os.getpid() == 1, "run me through `unshare --pid --fork --mount-proc --net`"
    scenario = os.fork()
    if scenario == 0:
        main(Path(sys.argv[1]), sys.argv[2:])
        sys.exit(0)
    sys.exit(reap_orphans_while(scenario))
