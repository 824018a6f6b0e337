"""Sweep files: the presets, the grid expansion, and one clear error per kind of bad input."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import digits_sweep_text
from shrink.experiment import FinetuneConfig
from shrink.orchestrator import SpecError, load_spec, parse_spec, presets
from shrink.orchestrator.spec import CLUSTER_JOB_ENV, BaseKey, check_data, check_resources

BASELINES = ("global-magnitude", "layer-magnitude", "global-gradient", "layer-gradient", "random")

DIGITS = digits_sweep_text(strategies="[GlobalMagWeight, random]", pretrain=None, finetune="{epochs: 2, lr: 0.001}")


def test_presets_are_the_demo_and_the_papers_appendix_c_setups():
    assert presets() == ["cifar10-resnet56", "demo", "imagenet-resnet18"]
    demo = load_spec()
    assert (demo.name, demo.dataset, demo.models) == ("demo", "fashion-mnist", ("lenet-300-100",))
    assert demo.strategies == BASELINES
    assert demo.compressions == (1, 2, 4, 8, 16, 32)
    assert demo.seeds == (0, 1, 2)
    # 90 grid points; at compression 1 the five strategies share one dense control per seed: 78 trials run.
    assert (len(demo.grid()), demo.size) == (90, 78)
    assert demo.bases() == [BaseKey("lenet-300-100", 0)]
    assert demo.resources.cpus == 1 and demo.resources.gpus == 0
    assert demo.methods == ()  # the paper's five are baselines: no proposed method

    cifar = load_spec(preset="cifar10-resnet56")
    assert (cifar.dataset, cifar.models, cifar.size) == ("cifar10", ("resnet56",), 78)
    assert cifar.template.finetune == FinetuneConfig(optimizer="adam", lr=3e-4, batch_size=64, epochs=30)
    imagenet = load_spec(preset="imagenet-resnet18")
    assert (imagenet.dataset, imagenet.models, imagenet.size) == ("imagenet", ("resnet18",), 78)
    assert imagenet.template.finetune == FinetuneConfig(optimizer="sgd", lr=1e-3, momentum=0.9, nesterov=True,
                                                        batch_size=256, epochs=20)
    assert imagenet.strategies == cifar.strategies == BASELINES


def test_grid_expands_to_one_trial_config_per_point():
    spec = parse_spec(DIGITS)
    assert spec.strategies == ("global-magnitude", "random")  # ShrinkBench alias resolved
    base = SimpleNamespace(path=Path("/bases/b.pt"), sha256="a" * 64)
    configs = spec.trial_configs({BaseKey("small-mlp", 0): base}, tracking_uri="sqlite:////x.db", parent_run_id="p1")
    assert [(c.strategy, c.compression, c.seed) for c in configs] == [
        ("global-magnitude", 2, 0), ("global-magnitude", 2, 1), ("global-magnitude", 4, 0),
        ("global-magnitude", 4, 1), ("random", 2, 0), ("random", 2, 1), ("random", 4, 0), ("random", 4, 1),
    ]
    first = configs[0]
    assert first.model == "small-mlp" and first.dataset == "digits"
    assert (first.base_path, first.base_sha256) == ("/bases/b.pt", "a" * 64)
    assert (first.device, first.threads, first.workers) == ("cpu", 1, 1)
    assert (first.tracking_uri, first.experiment_name, first.parent_run_id, first.sweep) == (
        "sqlite:////x.db", "shrink", "p1", "tiny")
    assert first.finetune == FinetuneConfig(epochs=2, lr=0.001)


def test_compression_1_runs_once_per_seed_as_a_dense_control_shared_by_every_strategy():
    spec = parse_spec(DIGITS.replace("compressions: [2, 4]", "compressions: [1, 2]"))
    assert (len(spec.grid()), spec.size) == (8, 6)
    base = SimpleNamespace(path=Path("/bases/b.pt"), sha256="a" * 64)
    configs = spec.trial_configs({BaseKey("small-mlp", 0): base}, tracking_uri="sqlite:////x.db", parent_run_id=None)
    both = ("global-magnitude", "random")
    assert [(c.strategy, c.compression, c.seed, c.control_for) for c in configs] == [
        ("global-magnitude", 1, 0, both), ("global-magnitude", 1, 1, both),
        ("global-magnitude", 2, 0, ()), ("global-magnitude", 2, 1, ()), ("random", 2, 0, ()), ("random", 2, 1, ()),
    ]
    assert configs[0].flat()["control_for"] == '["global-magnitude", "random"]'
    assert configs[2].flat()["control_for"] == "[]"
    lines = spec.describe().splitlines()
    assert lines[:2] == [
        "sweep tiny: 6 trials on digits (1 model x 2 strategies x 2 compressions x 2 seeds)",
        "dense controls: 2 trials at compression 1, one per model, base and seed, each counted for all 2 "
        "strategies (the report's 8 grid points)"]
    assert lines[6:8] == ["1  small-mlp  control (global-magnitude)  1            0",
                          "2  small-mlp  control (global-magnitude)  1            1"]
    # Under a schedule a matched strategy follows its reference, but not at compression 1, where nothing is
    # pruned: its point there is the control's, which runs in the first phase as the first strategy that
    # follows none.
    matched = parse_spec(DIGITS.replace("[GlobalMagWeight, random]", "[random-matched:global-magnitude, "
                                        "global-magnitude]").replace("compressions: [2, 4]", "compressions: [1, 2]")
                         + "schedule: iterative\nschedule_rounds: 2\n")
    assert [(p.strategy, p.compression, p.seed, bool(p.control_for)) for p in matched.trials()] == [
        ("global-magnitude", 1, 0, True), ("global-magnitude", 1, 1, True),
        ("random-matched:global-magnitude", 2, 0, False), ("random-matched:global-magnitude", 2, 1, False),
        ("global-magnitude", 2, 0, False), ("global-magnitude", 2, 1, False)]
    assert ("then, after their references: 2 trials of random-matched:global-magnitude (under schedule iterative, "
            "each keeps its reference trial's per-layer counts)") in matched.describe().splitlines()


def test_per_trial_bases_give_each_seed_its_own_base():
    spec = parse_spec(DIGITS + "pretrain: {seed: per-trial, epochs: 3}\n")
    assert spec.bases() == [BaseKey("small-mlp", 0), BaseKey("small-mlp", 1)]
    assert spec.base_setting().epochs == 3
    bases = {key: SimpleNamespace(path=Path(f"/b{key[1]}.pt"), sha256=str(key[1]) * 64) for key in spec.bases()}
    configs = spec.trial_configs(bases, tracking_uri="sqlite:////x.db", parent_run_id=None)
    assert {(c.seed, c.base_path) for c in configs} == {(0, "/b0.pt"), (1, "/b1.pt")}


def test_relative_data_root_is_made_absolute_for_trials_in_other_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = parse_spec(DIGITS + "data_root: data\n")
    assert spec.template.data_root == str(tmp_path / "data")


def test_methods_default_to_the_strategies_that_are_not_baselines():
    mixed = DIGITS.replace("[GlobalMagWeight, random]", "[GlobalMagWeight, random, GlobalMagAct, "
                                                        "random-matched:GlobalMagAct, layer-random, global-gradient]")
    assert parse_spec(mixed).methods == ("global-activation",)
    named = parse_spec(mixed.replace("name: tiny", "name: tiny\nmethods: [GlobalMagGrad, global-activation]"))
    assert named.methods == ("global-gradient", "global-activation")
    assert parse_spec(mixed.replace("name: tiny", "name: tiny\nmethods: []")).methods == ()
    assert "methods: none (no matched baselines needed)" in parse_spec(DIGITS).describe().splitlines()
    assert ("methods: global-activation (the checklist asks for their matched baselines)"
            in parse_spec(mixed).describe().splitlines())


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        ("[global-activation]", "methods: global-activation is not among the strategies (global-magnitude, random)"),
        ("[random-matched:random]", "methods: random-matched:random is a baseline for random, not a proposed method"),
        ("[snip]", "methods: unknown strategy 'snip'"),
        ("[random, random]", "methods: 'random' is listed twice"),
        ("random", "methods: 'random' is not a list of strategy names ([] for none)"),
    ],
)
def test_bad_methods_fail_with_one_line(methods, message):
    with pytest.raises(SpecError) as error:
        parse_spec(DIGITS.replace("name: tiny", f"name: tiny\nmethods: {methods}"), origin="tiny.yaml")
    assert str(error.value).startswith(f"tiny.yaml: {message}")


def test_default_name_is_the_file_name(tmp_path):
    path = tmp_path / "my-sweep.yaml"
    path.write_text(DIGITS.replace("name: tiny\n", ""))
    assert load_spec(path).name == "my-sweep"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("models: [small-mlp]", "models: [tiny-net]"), "models: unknown model 'tiny-net'; known: "),
        (("[GlobalMagWeight, random]", "[GlobalMagWeight, snip]"), "strategies: unknown strategy 'snip'"),
        (("dataset: digits", "dataset: mnist-2"), "dataset: unknown dataset 'mnist-2'; known: "),
        (("[2, 4]", "[0.5, 2]"), "compressions: 0.5 is not a compression ratio; ratios are numbers >= 1"),
        (("[2, 4]", "[2, 8]"), "compressions: compression 8 is unreachable for small-mlp: at most 6.76577 with the classifier unpruned "
                             "(see prune_classifier)"),
        (("[2, 4]", "[2, 2]"), "compressions: 2 is listed twice"),
        (("seeds: [0, 1]", "seeds: [0, -1]"), "seeds: [0, -1] is not a non-empty list of whole numbers >= 0"),
        (("finetune: {epochs: 2, lr: 0.001}", "finetune: {epochs: 2, lr: -1}"), "finetune.lr must be > 0, got -1"),
        (("finetune: {epochs: 2, lr: 0.001}", "finetune: {epoch: 2}"), "unknown trial config key 'finetune.epoch'"),
        (("name: tiny", "name: tiny\nmodel: small-mlp"), "model: is swept: list the values under 'models'"),
        (("name: tiny", "name: tiny\ndevice: cuda"), "device: is set by the sweep for every trial"),
        (("name: tiny", "name: tiny\ndecode: nvjpeg"), "tiny.yaml: decode must be one of auto, cpu, gpu, got 'nvjpeg'"),
        (("name: tiny", "name: tiny\nworker: 3"), "worker: unknown key; known keys: "),
        (("name: tiny", "name: tiny\nworkers: 3"), "workers: is set under resources: resources: {workers: 3, cpus: C, gpus: G}"),
        (("name: tiny", "name: tiny\nresources: {cpus: 0}"), "resources.cpus: 0 is not a number of CPUs > 0"),
        (("name: tiny", "name: tiny\nresources: {gpus: 1.5}"), "resources.gpus: 1.5 is not a GPU share"),
        (("name: tiny", "name: tiny\nretries: -1"), "retries: -1 is not a whole number >= 0"),
        (("name: tiny", "name: a/b"), "name: 'a/b' is not a name"),
        (("seeds: [0, 1]\n", ""), "missing required keys: seeds"),
        (("name: tiny", "name: tiny\npip: my-methods"), "pip: 'my-methods' is not a non-empty list of strings"),
        (("name: tiny", "name: tiny\npip: [a, a]"), "pip: 'a' is listed twice"),
        (("name: tiny", "name: tiny\npip: {index: x}"), "pip: unknown key 'index'; known keys: packages, install_options"),
        (("name: tiny", "name: tiny\npip: {install_options: []}"), "pip: a mapping needs packages: [requirement, ...]"),
        (("name: tiny", "name: tiny\npip: {packages: [a], install_options: -q}"), "pip.install_options: '-q' is not a list"),
        (("seeds: [0, 1]", "seeds: [0, 1]]"), "malformed YAML at line 6, column 14: expected <block end>"),
    ],
)
def test_each_bad_spec_fails_with_one_line_naming_key_and_rule(change, message):
    old, new = change
    assert old in DIGITS
    with pytest.raises(SpecError) as error:
        parse_spec(DIGITS.replace(old, new), origin="tiny.yaml")
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith("tiny.yaml: ")
    assert message in text


def test_pip_packages_become_the_cluster_jobs_pip_runtime_environment():
    assert parse_spec(DIGITS).pip.runtime_env() is None
    listed = parse_spec(DIGITS + "pip: [my-methods==1.2, /shared/wheels/b-0.1-py3-none-any.whl]\n")
    assert listed.pip.runtime_env() == {"packages": ["my-methods==1.2", "/shared/wheels/b-0.1-py3-none-any.whl"]}
    assert "installed on the cluster (pip): my-methods==1.2, /shared/wheels/b-0.1-py3-none-any.whl" in listed.describe()
    options = parse_spec(DIGITS + "pip: {packages: [my-methods], install_options: [--no-build-isolation]}\n")
    assert options.pip.runtime_env() == {"packages": ["my-methods"], "pip_install_options": ["--no-build-isolation"]}


def test_compile_is_a_sweep_setting_and_a_cluster_sweep_shares_inductors_cache_on_its_storage(monkeypatch):
    from shrink.orchestrator.sweep import cluster_trial_env

    monkeypatch.delenv("SHRINK_COMPILE", raising=False)
    shared = parse_spec(DIGITS + "storage_path: /shared/ray\n")
    assert cluster_trial_env(shared) == {
        "TORCHINDUCTOR_CACHE_DIR": "/shared/ray/inductor-cache", "TORCHINDUCTOR_FX_GRAPH_CACHE": "1"}
    monkeypatch.setenv("SHRINK_COMPILE", "1")  # the driver's override reaches the trials on every node
    assert cluster_trial_env(shared)["SHRINK_COMPILE"] == "1"
    monkeypatch.setenv(CLUSTER_JOB_ENV, "1")  # unless the driver is a cluster job, whose environment holds it
    assert "SHRINK_COMPILE" not in cluster_trial_env(shared)
    # compile: is a trial setting of the sweep file's, given once for every trial (None: the default rule).
    assert (parse_spec(DIGITS).template.compile, parse_spec(DIGITS + "compile: true\n").template.compile) == (None, True)


def test_a_strategy_unknown_in_a_cluster_job_says_to_list_its_package_under_pip(monkeypatch):
    snip = DIGITS.replace("[GlobalMagWeight, random]", "[snip]")
    with pytest.raises(SpecError) as here:
        parse_spec(snip, origin="tiny.yaml")
    assert "pip" not in str(here.value)
    monkeypatch.setenv(CLUSTER_JOB_ENV, "1")
    with pytest.raises(SpecError) as there:
        parse_spec(snip, origin="tiny.yaml")
    assert str(there.value) == str(here.value) + (
        "; this sweep runs as a Ray Job on the cluster, where 'snip' is not registered: list the package that "
        "registers it under `pip:` in the sweep file")


def test_a_sweep_file_must_be_a_mapping():
    with pytest.raises(SpecError, match=r"^s.yaml: a sweep file is a YAML mapping"):
        parse_spec("- just\n- a list\n", origin="s.yaml")


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"^unknown preset 'cifar100'; presets: cifar10-resnet56, demo, imagenet-resnet18$"):
        load_spec(preset="cifar100")
    with pytest.raises(SpecError, match=r"^cannot read sweep file .*nope.yaml: No such file or directory$"):
        load_spec(tmp_path / "nope.yaml")


def test_missing_dataset_files_are_named_before_anything_starts(monkeypatch):
    monkeypatch.delenv("SHRINK_DATA", raising=False)
    spec = load_spec(preset="cifar10-resnet56")  # no CIFAR-10 files on this machine, nor downloads
    with pytest.raises(SpecError, match=r"cifar10") as error:
        check_data(spec)
    assert "\n" not in str(error.value)


def test_resources_must_fit_where_the_sweep_runs():
    spec = parse_spec(DIGITS + "resources: {cpus: 4, gpus: 0.5}\n")
    with pytest.raises(SpecError, match=r"^resources.cpus: a trial asks for 4 CPUs but this machine has 2; ask for at most 2$"):
        check_resources(spec, {"CPU": 2, "GPU": 1}, "this machine")
    with pytest.raises(SpecError, match=r"^resources.gpus: a trial asks for 0.5 GPUs but this machine has 0; set gpus: 0"):
        check_resources(spec, {"CPU": 8, "GPU": 0}, "this machine")
    check_resources(spec, {"CPU": 4, "GPU": 1}, "this machine")
