"""`shrink report` end to end on hand-written sweeps: tables, figures, report.md, artifacts."""

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from PIL import Image
from report_sweeps import BASE, FAILURE, trial, write_sweep

from shrink.cli import main
from shrink.report import build_report, find_sweep, load_trials, summarize

FILES = ["mnist_lenet-300-100.png", "mnist_lenet-300-100.svg", "report.md", "summary.parquet", "trials.parquet"]


@pytest.fixture(scope="module")
def built(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report("small", tracking_uri=store, out_dir=out), out


def test_writes_the_tables_figures_and_report(built):
    report, out = built
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert sorted(p.name for p in report.files) == FILES
    assert report.out_dir == out and report.sweep.name == "small"


def test_tables_on_disk_equal_the_computed_ones(built, store):
    _, out = built
    trials = load_trials(find_sweep(store, "small"))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "trials.parquet"), trials)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "summary.parquet"), summarize(trials))
    failed = pd.read_parquet(out / "trials.parquet").query("status == 'failed'")
    assert list(failed["failure"]) == [FAILURE]


def test_figures_open_as_images(built):
    _, out = built
    with Image.open(out / "mnist_lenet-300-100.png") as png:
        assert png.format == "PNG" and png.size == (1632, 660)  # 13.6 x 5.5 inches at 120 dpi: two panels
    svg = ET.parse(out / "mnist_lenet-300-100.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"


def test_report_markdown_has_setup_summary_figures_checklist_and_failures(built, store):
    report, out = built
    text = (out / "report.md").read_text()
    lines = text.splitlines()
    assert lines[0] == "# Pruning report: sweep `small`"
    started = datetime.fromtimestamp(report.sweep.start_time / 1000, timezone.utc)
    assert lines[2] == (f"MLflow parent run `{report.sweep.run_id}` (experiment 1, started "
                        f"{started:%Y-%m-%d %H:%M:%S} UTC) in `{store}`: 19 trials, 18 finished, 1 failed, 0 running.")
    assert lines[4] == ("Proposed methods: not recorded by the sweep; the checklist takes every strategy that is "
                        "not a built-in baseline.")
    assert f"| mnist | lenet-300-100 | 18 | `{BASE}` | pretrain | split01 | 98.00 | 99.90 |" in lines  # one base: no spread
    assert "| finetune.lr | 0.0003 |" in lines and "| torch | 2.15.0 |" in lines
    assert ("Hardware: 2-core test CPU (device: cpu; bf16 autocast: off; channels_last: 0). "
            "shrink git commit: c0ffee.") in lines
    assert ("| mnist | lenet-300-100 | global-magnitude | 4 | 3 | 0 | 93.00 ± 3.61 | 99.00 ± 0.00 | -5.00 ± 3.61 "
            "| 4.00 ± 0.00 | 3.40 ± 0.00 | 3.0 ± 0.0 | 11.0 ± 1.0 |") in lines
    assert ("| mnist | lenet-300-100 | random | 4 | 3 | 1 | 60.00 ± 10.00 | 99.00 ± 0.00 | -38.00 ± 10.00 "
            "| 4.00 ± 0.00 | 3.40 ± 0.00 | 3.0 ± 0.0 | 11.0 ± 1.0 |") in lines
    assert "![mnist_lenet-300-100](mnist_lenet-300-100.png)" in lines
    assert ("mnist/lenet-300-100: top-1 against measured speedup is not plotted: no trial recorded a measured "
            "speedup.") in lines
    assert "| seeds | PASS | every point has >= 3 seeds (min 3); mean and std in the summary |" in lines
    assert any(line.endswith(f"| mnist | lenet-300-100 | random | 4 | 3 | {FAILURE} |") for line in lines)


def test_figures_and_report_are_artifacts_of_the_parent_run(built, store, tmp_path):
    report, _ = built
    client = MlflowClient(tracking_uri=store)
    names = sorted(a.path for a in client.list_artifacts(report.sweep.run_id, "report"))
    assert names == ["report/mnist_lenet-300-100.png", "report/mnist_lenet-300-100.svg", "report/report.md",
                     "report/summary.json"]
    # An MLflow table (the UI shows it as one): columns and rows of the summary.
    run = client.get_run(report.sweep.run_id)
    assert json.loads(run.data.tags["mlflow.loggedArtifacts"]) == [{"path": "report/summary.json", "type": "table"}]
    table = json.loads(Path(client.download_artifacts(report.sweep.run_id, "report/summary.json", tmp_path)).read_text())
    assert table["columns"][:4] == ["dataset", "model", "strategy", "compression"] and len(table["data"]) == 6
    assert table["data"][0][:4] == ["mnist", "lenet-300-100", "global-magnitude", 1.0]


def test_rerunning_gives_identical_files(built, store):
    _, out = built
    before = {name: (out / name).read_bytes() for name in FILES}
    build_report("small", tracking_uri=store, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == FILES  # no temporary files left behind
    assert {name: (out / name).read_bytes() for name in FILES} == before


def test_literature_adds_a_row_of_published_points(make_store, tmp_path):
    uri = make_store()
    write_sweep(uri, "cifar", [trial(s, c, seed, 0.9, dataset="cifar10", model="resnet56")
                               for s in ("random", "global-magnitude") for c in (1, 2) for seed in (0, 1)])
    report = build_report("cifar", tracking_uri=uri, out_dir=tmp_path, literature=True)
    with Image.open(tmp_path / "cifar10_resnet56.png") as png:
        assert png.size == (1632, 1212)  # two rows: 13.6 x 10.1 inches at 120 dpi
    assert ("Published results (Blalock et al. 2020 survey data, from ShrinkBench, MIT license) for "
            "cifar10/resnet56 appear in a second row") in (tmp_path / "report.md").read_text()
    assert report.sweep.name == "cifar"


def test_cli_report_defaults_to_the_newest_sweep_under_shrink_out(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["report", "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    out = tmp_path / "shrink-out" / "report" / "small"
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert result.output.splitlines()[-1] == f"report: {out / 'report.md'}"
    assert "19 trials: 18 finished, 1 failed, 0 running" in result.output
    assert "operating points         FAIL" in result.output


def test_cli_report_unknown_sweep_is_a_one_line_error(store):
    result = CliRunner().invoke(main, ["report", "nope", "--tracking-uri", store])
    assert result.exit_code == 1
    assert result.output == f"Error: unknown sweep 'nope' in {store}; available: small, old\n"


def test_literature_without_matching_papers_says_so(store, tmp_path):
    build_report("small", tracking_uri=store, out_dir=tmp_path, literature=True)
    with Image.open(tmp_path / "mnist_lenet-300-100.png") as png:
        assert png.size == (1632, 660)  # one row: the survey has no MNIST LeNet-300-100 numbers
    assert ("The survey data (Blalock et al. 2020) has no published results for these datasets and models."
            in (tmp_path / "report.md").read_text().splitlines())


def test_setup_names_each_base_source_and_says_when_validation_data_was_trained_on():
    from report_sweeps import table

    from shrink.report.aggregate import dense_controls
    from shrink.report.markdown import _setup

    trials = [trial("random", 2, seed, 0.9) for seed in (0, 1, 2)]
    frame = table(trials)
    assert f"| mnist | lenet-300-100 | 3 | `{BASE}` | pretrain |" in _setup(frame, dense_controls(frame))
    assert "validation carve-out" not in _setup(frame, dense_controls(frame))
    for t in trials:
        t["tags"]["shrink.base_source"] = "torchvision:IMAGENET1K_V1"
    frame = table(trials)
    text = _setup(frame, dense_controls(frame))
    assert f"| mnist | lenet-300-100 | 3 | `{BASE}` | torchvision:IMAGENET1K_V1 |" in text
    assert ("The validation carve-out was part of the training data of base torchvision:IMAGENET1K_V1: it was "
            "trained elsewhere (as in the paper's ImageNet setup), so validation scores, and early stopping on "
            "them, are optimistic; test scores are not affected.") in text


def test_report_says_why_the_measured_speedup_panel_is_left_out(make_store, tmp_path):
    uri = make_store()
    write_sweep(uri, "masked", [trial(s, c, seed, 0.9, measured_speedup=1 + 0.02 * (seed - 1))
                                for s in ("random", "global-magnitude") for c in (2, 4) for seed in (0, 1, 2)])
    build_report("masked", tracking_uri=uri, out_dir=tmp_path)
    assert ("mnist/lenet-300-100: top-1 against measured speedup is not plotted: every strategy's mean measured "
            "speedup is 1x within its spread (twice the sample std over seeds, at least ±25% for timing noise), "
            "as expected of masked weights, which run on dense kernels.") in (
        tmp_path / "report.md").read_text().splitlines()
    with Image.open(tmp_path / "mnist_lenet-300-100.png") as png:
        assert png.size == (1632, 660)
