"""Under a schedule, a sweep runs each matched baseline after its reference trial, and the baseline keeps
exactly the per-layer counts that trial recorded at every round (Blalock et al.: "the same layerwise pruning
proportions as the proposed technique")."""

import json

import pandas as pd
import pytest
from mlflow import MlflowClient

from helpers import digits_sweep, digits_sweep_text
from shrink.experiment.recording import ROUNDS_ARTIFACT
from shrink.orchestrator import SpecError, load_spec, parse_spec, run_sweep
from sweep_testing import trial_runs

ITERATIVE = {"models": "[small-cnn]", "strategies": "[global-gradient, random-matched:global-gradient]",
             "compressions": "[4]", "seeds": "[0]", "finetune": "{epochs: 3, patience: 3}",
             "schedule": "iterative", "schedule_rounds": "3"}


def artifact(client: MlflowClient, run, name: str, folder) -> str:
    return open(client.download_artifacts(run.info.run_id, name, str(folder))).read()


def test_an_iterative_matched_baseline_keeps_its_references_counts_at_every_round(ray_tmpdir, tmp_path):
    path = digits_sweep(tmp_path, "follow", **ITERATIVE)
    spec = load_spec(path)
    assert ("then, after their references: 1 trials of random-matched:global-gradient (under schedule iterative, "
            "each keeps its reference trial's per-layer counts)") in spec.describe().splitlines()

    outcome = run_sweep(spec)

    assert (outcome.total, outcome.finished, outcome.errored) == (2, 2, 0)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    runs = {run.data.params["strategy"]: run for run in trial_runs(uri, outcome.parent_run_id)}
    reference, matched = runs["global-gradient"], runs["random-matched:global-gradient"]
    assert matched.data.params["reference_run"] == reference.info.run_id
    assert reference.info.end_time <= matched.info.start_time  # it ran after its reference
    rounds = {name: json.loads(artifact(client, run, ROUNDS_ARTIFACT, tmp_path / name))
              for name, run in (("reference", reference), ("matched", matched))}
    assert [r["compression"] for r in rounds["reference"]] == pytest.approx([4 ** (1 / 3), 4 ** (2 / 3), 4.0])
    assert rounds["matched"] == rounds["reference"]  # every round, every layer
    layers = {name: pd.read_csv(client.download_artifacts(run.info.run_id, "layers.csv", str(tmp_path / f"l{name}")))
              for name, run in (("reference", reference), ("matched", matched))}
    assert layers["matched"]["nonzero"].tolist() == layers["reference"]["nonzero"].tolist()


def test_a_matched_baseline_under_a_schedule_needs_its_reference_in_the_grid():
    text = digits_sweep_text(**{**ITERATIVE, "strategies": "[random, random-matched:global-gradient]"})
    with pytest.raises(SpecError, match=r"^tiny.yaml: strategies: random-matched:global-gradient under schedule "
                                        r"'iterative' keeps, at every round, the per-layer counts of global-gradient's "
                                        r"own trial: add global-gradient to strategies, or prune one-shot$"):
        parse_spec(text, origin="tiny.yaml")
    one_shot = {k: v for k, v in ITERATIVE.items() if not k.startswith("schedule")}
    spec = parse_spec(digits_sweep_text(**{**one_shot, "strategies": "[random, random-matched:global-gradient]"}))
    assert spec.reference_of("random-matched:global-gradient") is None  # one-shot: the dense base's counts
