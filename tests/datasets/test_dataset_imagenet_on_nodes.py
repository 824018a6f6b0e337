"""cluster.yaml's setup command that puts ImageNet on each node's own disk, run for real by bash on a tar
written here, with its /shared and /local folders moved into the test's directory."""

import subprocess
import tarfile
from pathlib import Path

import yaml

CLUSTER_FILE = Path(__file__).resolve().parents[2] / "cluster.yaml"


def unpack_command(shared: Path, local: Path) -> str:
    commands = [c for c in yaml.safe_load(CLUSTER_FILE.read_text())["setup_commands"] if "imagenet.tar" in c]
    assert len(commands) == 1
    return commands[0].replace("/shared/", f"{shared}/").replace("/local/", f"{local}/")


def run(command: str) -> None:
    subprocess.run(["bash", "-c", command], check=True, timeout=60)


def test_imagenet_is_unpacked_once_per_node_and_only_when_shared(tmp_path):
    shared, local = tmp_path / "shared", tmp_path / "local"
    command = unpack_command(shared, local)
    run(command)  # no tar on the shared storage: nothing to do, no error
    assert not (local / "imagenet").exists()

    tree = tmp_path / "tree"
    for part in ("train", "val"):
        (tree / part / "n01").mkdir(parents=True)
        (tree / part / "n01" / "a.JPEG").write_bytes(b"jpeg bytes")
    (shared / "datasets").mkdir(parents=True)
    with tarfile.open(shared / "datasets" / "imagenet.tar", "w") as tar:
        for part in ("train", "val"):
            tar.add(tree / part, arcname=part)
    run(command)
    assert (local / "imagenet" / "train" / "n01" / "a.JPEG").read_bytes() == b"jpeg bytes"
    assert (local / "imagenet" / "val" / "n01" / "a.JPEG").exists() and (local / "imagenet" / ".unpacked").exists()

    (local / "imagenet" / "val" / "n01" / "a.JPEG").unlink()
    run(command)  # unpacked before: not again
    assert not (local / "imagenet" / "val" / "n01" / "a.JPEG").exists()
