"""`shrink report` end to end on hand-written sweeps: tables, figures, report.md, artifacts."""

import json
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import free_port
from mlflow import MlflowClient
from PIL import Image
from report_sweeps import BASE, FAILURE, trial, write_sweep
from scipy import stats

from shrink.cli import main
from shrink.report import build_report, compare, curve_areas, find_sweep, load_trials, summarize

FILES = ["comparisons.parquet", "curves.parquet", "mnist_lenet-300-100.png", "mnist_lenet-300-100.svg", "report.md",
         "summary.parquet", "trials.parquet"]


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
    pd.testing.assert_frame_equal(pd.read_parquet(out / "comparisons.parquet"), compare(trials, None))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "curves.parquet"), curve_areas(trials))
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
    assert ("Hardware: 2-core test CPU (device: cpu; autocast: off; channels_last: 0). "
            "shrink git commit: c0ffee.") in lines
    # The fine-tuned controls score 98%, as the base does: Δ vs control equals Δ top-1 here.
    assert ("| mnist | lenet-300-100 | global-magnitude | 4 | 3 | 0 | 93.00 ± 3.61 | 99.00 ± 0.00 | -5.00 ± 3.61 "
            "| -5.00 ± 3.61 | 4.00 ± 0.00 | 3.40 ± 0.00 | 3.0 ± 0.0 | 11.0 ± 1.0 | yes |") in lines
    assert ("| mnist | lenet-300-100 | random | 4 | 3 | 1 | 60.00 ± 10.00 | 99.00 ± 0.00 | -38.00 ± 10.00 "
            "| -38.00 ± 10.00 | 4.00 ± 0.00 | 3.40 ± 0.00 | 3.0 ± 0.0 | 11.0 ± 1.0 |  |") in lines
    assert "![mnist_lenet-300-100](mnist_lenet-300-100.png)" in lines
    assert ("mnist/lenet-300-100: top-1 against measured speedup is not plotted: no trial recorded a measured "
            "speedup.") in lines
    assert "| seeds | PASS | every point has >= 3 seeds (min 3); mean and std in the summary |" in lines
    assert any(line.endswith(f"| mnist | lenet-300-100 | random | 4 | 3 | {FAILURE} |") for line in lines)


def test_figures_and_report_are_artifacts_of_the_parent_run(built, store, tmp_path):
    report, _ = built
    client = MlflowClient(tracking_uri=store)
    names = sorted(a.path for a in client.list_artifacts(report.sweep.run_id, "report"))
    assert names == ["report/comparisons.json", "report/mnist_lenet-300-100.png", "report/mnist_lenet-300-100.svg",
                     "report/report.md", "report/summary.json"]
    # MLflow tables (the UI shows them as tables): columns and rows of the summary and the comparisons.
    run = client.get_run(report.sweep.run_id)
    assert json.loads(run.data.tags["mlflow.loggedArtifacts"]) == [
        {"path": "report/summary.json", "type": "table"}, {"path": "report/comparisons.json", "type": "table"}]
    table = json.loads(Path(client.download_artifacts(report.sweep.run_id, "report/summary.json", tmp_path)).read_text())
    assert table["columns"][:4] == ["dataset", "model", "strategy", "compression"] and len(table["data"]) == 6
    assert table["data"][0][:4] == ["mnist", "lenet-300-100", "global-magnitude", 1.0]
    logged = json.loads(Path(client.download_artifacts(report.sweep.run_id, "report/comparisons.json",
                                                       tmp_path)).read_text())
    assert logged["columns"][:6] == ["dataset", "model", "metric", "compression", "method", "baseline"]
    assert [row[2:6] for row in logged["data"]] == [["test_top1", 2.0, "global-magnitude", "random"],
                                                    ["test_top1", 4.0, "global-magnitude", "random"],
                                                    ["test_top5", 2.0, "global-magnitude", "random"],
                                                    ["test_top5", 4.0, "global-magnitude", "random"]]

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


@pytest.mark.parametrize(("command", "store", "reason"), [
    ("report", "http://127.0.0.1:{port}", "no MLflow server answers (Connection refused); start it, or give the "
                                          "address of one"),
    ("check", "http://127.0.0.1:{port}", "no MLflow server answers (Connection refused); start it, or give the "
                                         "address of one"),
    ("ui", "postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow",
     'the database refuses the connection (connection failed: connection to server at "127.0.0.1", port {port} '
     "failed: Connection refused)"),
], ids=["report-server", "check-server", "ui-database"])
def test_a_store_that_does_not_answer_is_a_one_line_error_within_seconds(command, store, reason):
    port = free_port()
    uri = store.format(port=port)
    started = time.monotonic()
    result = CliRunner().invoke(main, [command, "--tracking-uri", uri])
    assert time.monotonic() - started < 10  # MLflow's own client would retry for minutes
    assert result.exit_code == 1
    assert result.output == f"Error: tracking store {uri}: {reason.format(port=port)}\n"


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


# A digits sweep with a method, two baselines and four seeds, one base per seed: test top-1 per
# (strategy, compression); compression 1 is the fine-tuned control, 0.5 points above each base.
DIGITS_TOP1 = {
    ("global-gradient", 2): (0.95, 0.96, 0.94, 0.955), ("global-gradient", 4): (0.90, 0.91, 0.88, 0.905),
    ("global-magnitude", 2): (0.948, 0.961, 0.937, 0.957), ("global-magnitude", 4): (0.92, 0.935, 0.90, 0.93),
    ("random", 2): (0.90, 0.90, 0.885, 0.903), ("random", 4): (0.70, 0.75, 0.72, 0.74),
}
DIGITS_DENSE = (0.96, 0.965, 0.955, 0.97)


@pytest.fixture(scope="module")
def digits(make_store, tmp_path_factory):
    uri = make_store()
    common = {"dataset": "digits", "model": "small-cnn"}
    trials = [trial(s, c, seed, top1, base=str(seed) * 64, dense=DIGITS_DENSE[seed], **common)
              for (s, c), values in DIGITS_TOP1.items() for seed, top1 in enumerate(values)]
    trials += [trial(s, 1, seed, DIGITS_DENSE[seed] + 0.005, base=str(seed) * 64, dense=DIGITS_DENSE[seed], **common)
               for s in ("global-gradient", "global-magnitude", "random") for seed in range(4)]
    write_sweep(uri, "digits", trials, methods=["global-gradient"])
    out = tmp_path_factory.mktemp("digits")
    result = CliRunner().invoke(main, ["report", "digits", "--tracking-uri", uri, "--out", str(out),
                                       "--error-bars", "ci"])
    assert result.exit_code == 0, result.output
    return out


def test_comparisons_of_a_method_and_two_baselines_over_four_seeds_equal_scipys(digits):
    table = pd.read_parquet(digits / "comparisons.parquet")
    assert list(table.columns) == ["dataset", "model", "metric", "compression", "method", "baseline", "test", "n",
                                   "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "verdict", "seeds_needed"]
    top1 = table[table["metric"] == "test_top1"].set_index(["compression", "baseline"])
    assert set(table["method"]) == {"global-gradient"} and list(top1["n"]) == [4] * 4
    p = {}
    for c, baseline in top1.index:
        method, base = DIGITS_TOP1["global-gradient", c], DIGITS_TOP1[baseline, c]
        expected = stats.ttest_rel(method, base)
        interval = expected.confidence_interval(0.95)
        row = top1.loc[(c, baseline)]
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high), rel=1e-12)
        assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
        p[c, baseline] = expected.pvalue
    ranked = sorted(p, key=p.get)
    holm = [min(1, max((4 - i) * p[k] for i, k in enumerate(ranked[:j + 1]))) for j in range(4)]
    assert [top1.loc[k, "p_holm"] for k in ranked] == pytest.approx(holm, rel=1e-12)
    assert list(top1["verdict"]) == ["indistinguishable", "better", "worse", "better"]


def test_report_md_has_the_comparisons_the_control_and_the_curves(digits):
    lines = (digits / "report.md").read_text().splitlines()
    start = lines.index("## Comparisons")
    assert lines[start + 4] == ("| dataset | model | metric | compression | method | baseline | test | n | Δ (points) "
                                "| 95% CI (points) | p | p (Holm) | verdict | seeds needed |")
    [row] = [line for line in lines
             if line.startswith("| digits | small-cnn | test_top1 | 4 | global-gradient | random |")]
    interval = stats.ttest_rel(DIGITS_TOP1["global-gradient", 4], DIGITS_TOP1["random", 4]).confidence_interval()
    assert f"| paired | 4 | +17.13 | {100 * interval.low:+.2f} to {100 * interval.high:+.2f} |" in row
    assert row.endswith("| better | 3 |")
    assert ("`global-gradient` on digits/small-cnn (test top-1): better than random at 2x, 4x; worse than "
            "global-magnitude at 4x; indistinguishable from global-magnitude at 2x.") in lines
    # Controls 0.5 points above each of four bases: every pair gains exactly that, a zero-width interval above 0.
    assert ("digits/small-cnn: base not converged: the fine-tuned control beats it by +0.50 points (95% "
            "t-interval +0.50 to +0.50, 4 base-seed pairs), so Δ top-1 against the base credits pruned points "
            "with the extra training; read Δ vs control.") in lines
    assert "Error bars: 95% t-interval of the mean over seeds. Grey band: the dense control, mean ± 95% " \
           "t-interval of the mean of the dense test top-1 over the distinct base checkpoints (one value per " \
           "base, however many of its trials finished)." in lines
    areas = [(a + b) / 2 for a, b in zip(DIGITS_TOP1["random", 2], DIGITS_TOP1["random", 4])]  # one doubling
    interval = stats.ttest_1samp(areas, 0).confidence_interval()
    [row] = [line for line in lines if line.startswith("| digits | small-cnn | random | 2-4x (2 points) | 4 |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    (area, spread), (low, high) = (map(float, cells[5].split(" ± ")), map(float, cells[6].split(" to ")))
    rounded = 0.0051  # two decimals
    assert (area, spread) == pytest.approx((100 * np.mean(areas), 100 * np.std(areas, ddof=1)), abs=rounded)
    assert (low, high) == pytest.approx((100 * interval.low, 100 * interval.high), abs=rounded)
    checks = {line.split(" | ")[0]: line for line in lines if line.startswith("| ")}
    assert checks["| fine-tuned control"].startswith(
        "| fine-tuned control | FAIL | digits/small-cnn: base not converged")
    assert checks["| significant advantage"] == (
        "| significant advantage | PASS | global-gradient is better than random at 2x, 4x (p_holm < 0.05); ahead only "
        "within noise, or untested, against global-magnitude at 2x |")


def test_delta_vs_control_is_a_column_of_the_trials_and_the_summary(digits):
    trials = pd.read_parquet(digits / "trials.parquet").set_index(["strategy", "compression", "seed"])
    row = trials.loc[("random", 4.0, 1)]
    assert row["delta_top1_vs_control"] == pytest.approx(0.75 - (0.965 + 0.005), abs=1e-12)
    summary = pd.read_parquet(digits / "summary.parquet").set_index(["strategy", "compression"])
    expected = np.mean([v - d - 0.005 for v, d in zip(DIGITS_TOP1["random", 4], DIGITS_DENSE)])
    assert summary.loc[("random", 4.0), "delta_top1_vs_control_mean"] == pytest.approx(expected, abs=1e-12)
