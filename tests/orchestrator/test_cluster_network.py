"""Nothing open by default: `shrink sweep --cluster` refuses a cluster file whose MLflow server and
Ray dashboard are not restricted to the user's network range, before anything starts."""

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from shrink.cli import main
from shrink.orchestrator import SpecError, check_cluster_file
from shrink.orchestrator.cluster import check_network_access
from helpers import digits_sweep

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = "allowed_network: &allowed_network 203.0.113.0/24"
WHAT_TO_SET = ("set metadata.shrink.allowed_network (and every range the file opens ports 5000 and 8265 to) "
               "to your network's range, e.g. 10.0.0.0/16")


def _cluster_file(folder: Path, text: str | None = None) -> Path:
    path = folder / "cluster.yaml"
    path.write_text(text if text is not None else (ROOT / "cluster.yaml").read_text())
    return path


def _sweep(folder: Path, *args: str):
    digits_sweep(folder, name="net")
    return CliRunner().invoke(main, ["sweep", str(folder / "net.yaml"), "--cluster", str(folder / "cluster.yaml"),
                                     *args])


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_shipped_file_is_refused_until_the_user_sets_their_range(tmp_path, monkeypatch, dry_run):
    monkeypatch.chdir(tmp_path)
    _cluster_file(tmp_path)

    result = _sweep(tmp_path, *(["--dry-run"] if dry_run else []))

    assert result.exit_code == 2
    assert result.output == (f"Error: {tmp_path / 'cluster.yaml'}: metadata.shrink.allowed_network: 203.0.113.0/24 "
                             f"is an example range, a placeholder: {WHAT_TO_SET}\n")  # one line; no `ray up`


def test_a_range_set_once_opens_mlflow_and_the_dashboard_to_it_only(tmp_path, monkeypatch):
    from ray.autoscaler._private.util import prepare_config, validate_config

    monkeypatch.chdir(tmp_path)
    text = (ROOT / "cluster.yaml").read_text()
    assert text.count(PLACEHOLDER) == 1
    path = _cluster_file(tmp_path, text.replace(PLACEHOLDER, "allowed_network: &allowed_network 10.20.0.0/16"))

    config = check_cluster_file(path)

    validate_config(prepare_config(config))
    rules = {(rule["FromPort"], rule["ToPort"]): [r["CidrIp"] for r in rule["IpRanges"]]
             for rule in config["provider"]["security_group"]["IpPermissions"]}
    assert rules == {(8265, 8265): ["10.20.0.0/16"], (5000, 5000): ["10.20.0.0/16"]}  # the only open ports
    result = _sweep(tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "sweep net: 8 trials" in result.output


def _config(**changes) -> dict:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text().replace(
        PLACEHOLDER, "allowed_network: &allowed_network 10.20.0.0/16"))
    config.update(changes)
    return config


@pytest.mark.parametrize(("change", "problem"), [
    ({"metadata": {}}, "metadata.shrink.allowed_network is not set: "),
    ({"metadata": {"shrink": {"allowed_network": "office"}}},
     "metadata.shrink.allowed_network: 'office' is not a network range (CIDR): "),
    ({"metadata": {"shrink": {"allowed_network": "0.0.0.0/0"}}},
     "metadata.shrink.allowed_network: 0.0.0.0/0 opens MLflow and the Ray dashboard to every address: "),
    ({"metadata": {"shrink": {"allowed_network": "198.51.100.7/32"}}},
     "metadata.shrink.allowed_network: 198.51.100.7/32 is an example range, a placeholder: "),
    ({"initialization_commands": ["sudo iptables -I INPUT -p tcp --dport 5000 ! -s ::/0 -j DROP"]},
     "initialization_commands[0]: ::/0 opens MLflow and the Ray dashboard to every address: "),
])
def test_placeholder_open_or_missing_ranges_are_refused_naming_the_place(change, problem):
    with pytest.raises(SpecError) as refused:
        check_network_access(_config(**change), "c.yaml")
    assert str(refused.value) == f"c.yaml: {problem}{WHAT_TO_SET}"


def test_a_security_group_rule_written_out_is_checked_too():
    config = _config()
    config["provider"]["security_group"]["IpPermissions"][1]["IpRanges"].append({"CidrIp": "0.0.0.0/0"})
    with pytest.raises(SpecError, match=r"^c.yaml: provider.security_group.IpPermissions\[1\].IpRanges\[1\].CidrIp: "
                                        r"0.0.0.0/0 opens MLflow and the Ray dashboard to every address: "):
        check_network_access(config, "c.yaml")
