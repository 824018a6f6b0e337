"""The ``shrink`` command line: each command maps its options to one library call (how a sweep or a trial
runs is ``shrink.orchestrator.launch``'s to decide) and turns the library's errors into one-line messages."""

from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shrink")
def main() -> None:
    """shrink: standardized evaluation of neural-network pruning.

    \b
    Typical flow:
      shrink doctor --address HOST:PORT                    # what a trial will find on each node
      shrink pretrain --model resnet20 --dataset cifar10   # train the shared base once
      shrink sweep sweep.yaml                              # fan trials out with Ray Tune
      shrink report                                        # tables, plots, checklist
    """


@main.group("list")
def list_() -> None:
    """List what shrink knows: strategies, models, datasets, and the cached bases."""


@list_.command("models")
def list_models() -> None:
    """Models of the zoo: name, parameters, input shape (C, H, W), classes, source paper."""
    from shrink import models

    click.echo(f"{'name':<14} {'params':>12}  {'input':<12} {'classes':>7}  paper")
    for model in models.available():
        shape = "x".join(map(str, model.input_shape))
        params = models.parameter_count(model.name)
        click.echo(f"{model.name:<14} {params:>12,}  {shape:<12} {model.num_classes:>7}  {model.paper}")


@list_.command("datasets")
@click.option("--data-root", type=click.Path(file_okay=False), help="Also look for the files here.")
@click.option("-v", "--verbose", is_flag=True, help="Say where shrink looked for missing datasets and how to provide them.")
def list_datasets(data_root: str | None, verbose: bool) -> None:
    """Datasets: name, input shape (C, H, W), classes, family, where the files are, training augmentation."""
    from shrink import datasets

    click.echo(f"{'name':<14} {'input':<10} {'classes':>7}  {'family':<9} {'files':<40} augmentation")
    missing = []
    for dataset in datasets.available():
        shape = "x".join(map(str, dataset.input_shape))
        try:
            where = str(datasets.locate(dataset.name, data_root))
        except datasets.DatasetNotFound as err:
            where = "missing"
            missing.append(str(err))
        row = f"{dataset.name:<14} {shape:<10} {dataset.num_classes:>7}  {dataset.family:<9} {where:<40}"
        click.echo(f"{row} {dataset.augmentation}")
    if missing and verbose:
        click.echo("\n" + "\n".join(missing))
    elif missing:
        click.echo(f"\n{len(missing)} missing: shrink list datasets -v says where shrink looked and how to provide them")


@list_.command("bases")
@click.option("--cache", type=click.Path(file_okay=False), help="Cache root [default: $SHRINK_CACHE/bases].")
def list_bases(cache: str | None) -> None:
    """Cached bases: model, dataset, source (pretrain's recipe, torchvision's weights or a file), seed,
    train/validation split, sha256 prefix, val and test top-1, size on disk."""
    from shrink.experiment.bases import bases_dir, cached_bases

    bases = cached_bases(cache)
    if not bases:
        click.echo(f"no bases in {bases_dir(cache)}: `shrink pretrain` or a sweep makes them")
        return
    rows = [(b.model, b.dataset, b.recipe.name if b.recipe else b.source, "-" if b.seed is None else str(b.seed),
             b.split, b.sha256[:12], f"{b.val_scores.top1:.4f}", f"{b.test_scores.top1:.4f}",
             f"{b.disk_bytes / 1e6:.1f} MB") for b in bases]
    _echo_table(("model", "dataset", "source", "seed", "split", "sha256", "val top-1", "test top-1", "size"), rows)
    click.echo(f"{len(bases)} bases in {bases_dir(cache)}")


@list_.command("strategies")
def list_strategies() -> None:
    """Pruning strategies: name, ShrinkBench aliases, whether they need data, description."""
    from shrink.pruning import strategies
    from shrink.pruning.names import MATCHED

    try:
        registered = strategies()
    except ImportError as error:
        raise click.ClickException(str(error)) from error
    rows = [
        (s.name, ", ".join(s.aliases) or "-", "yes" if s.needs_data else "no", s.description)
        for s in registered.values()
    ]
    rows += [(f"{family}:<strategy>", "-", "as <strategy>", text) for family, (_, text) in MATCHED.items()]
    _echo_table(("name", "aliases", "needs data", "description"), rows)


def _echo_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print rows as left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _library_errors() -> tuple[type[Exception], ...]:
    """The library's own failures, shown as one-line errors rather than tracebacks."""
    from shrink import datasets, experiment, pruning

    return (datasets.DatasetNotFound, datasets.DatasetFormatError, experiment.CheckpointMismatch,
            experiment.TrialDiverged, experiment.RecordingError, experiment.MaskDrift,
            pruning.CompressionNotReached, pruning.RemovalMismatch)


def _bad_input(error: Exception) -> click.ClickException:
    """A refusal before anything started: one line, exit status 2."""
    failure = click.ClickException(str(error))
    failure.exit_code = 2
    return failure


def _stderr_line(line: str) -> None:
    click.echo(line, err=True)


BASE_HELP = ("pretrain (train it with the dataset family's recipe), torchvision (the model's default published "
             "weights), torchvision:WEIGHTS (e.g. torchvision:IMAGENET1K_V1), or a state-dict file")


@main.command()
@click.option("--model", required=True, help="Model name (see `shrink list models`).")
@click.option("--dataset", required=True, help="Dataset name (see `shrink list datasets`).")
@click.option("--base", "source", default="pretrain", show_default=True, metavar="SOURCE",
              help=f"Where the base comes from: {BASE_HELP}; weights trained elsewhere are measured on this split.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's number of epochs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Cache root [default: $SHRINK_CACHE/bases].")
@click.option("--data-root", type=click.Path(file_okay=False), help="Where the dataset files are.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Share of the training set held out for validation.")
@click.option("--split-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", help="cpu, cuda or cuda:N [default: cuda when present].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
def pretrain(model, dataset, source, epochs, seed, out, data_root, val_fraction, split_seed, device, threads) -> None:
    """Make a dense base model, or reuse the cached one: train it with its family's recipe, or take
    published or file weights and measure them on this split.

    Every check that needs no training runs first. Prints the checkpoint's path, sha256, source and
    scores; the JSON sidecar beside it holds the rest.
    """
    from shrink import experiment
    from shrink.experiment.bases import BaseRequest, make_base

    try:
        request = BaseRequest(model, dataset, source, epochs=epochs, seed=seed, data_root=data_root,
                              val_fraction=val_fraction, split_seed=split_seed)
        base = make_base(request, cache_dir=out, device=device, threads=threads, progress=_stderr_line)
    except experiment.ConfigError as error:
        raise click.UsageError(str(error)) from None
    except _library_errors() as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"path    {base.path}\nsha256  {base.sha256}\nsource  {base.source}\n"
               f"val     top-1 {base.val_scores.top1:.4f}  top-5 {base.val_scores.top5:.4f}\n"
               f"test    top-1 {base.test_scores.top1:.4f}  top-5 {base.test_scores.top5:.4f}")


@main.command()
@click.option("--model", required=True, help="Model name (see `shrink list models`).")
@click.option("--dataset", required=True, help="Dataset name (see `shrink list datasets`).")
@click.option("--strategy", required=True, help="Pruning strategy (see `shrink list strategies`).")
@click.option("--compression", type=click.FloatRange(min=1), required=True,
              help="Target compression ratio (total / nonzero parameters).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--base", metavar="SOURCE",
              help=f"Where the base comes from: {BASE_HELP}, or a base checkpoint shrink wrote (its sidecar "
                   "beside it gives the hash) [default: pretrain, cached once made].")
@click.option("--epochs", type=click.IntRange(min=0), help="Fine-tuning epochs [default: family preset].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Fine-tuning learning rate.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Fine-tuning batch size.")
@click.option("--patience", type=click.IntRange(min=1), help="Early-stopping patience in epochs.")
@click.option("--data-root", type=click.Path(file_okay=False), help="Where the dataset files are.")
@click.option("--device", help="cpu, cuda or cuda:N [default: cuda when present].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--deterministic", is_flag=True, help="Use deterministic algorithms only.")
@click.option("--amp/--no-amp", default=None,
              help="Mixed precision: bf16 autocast (fp16 with loss scaling on GPUs before compute capability 8.0) "
                   "[default: on for CUDA, off on CPU].")
@click.option("--decode", metavar="auto|cpu|gpu",
              help="Where ImageNet's JPEGs are decoded: cpu, libjpeg-turbo in the trial's loader workers (one per "
                   "--threads CPU); gpu, nvJPEG on the device, the next batch prepared while the current one "
                   "trains; auto, gpu only where the GPU has a hardware JPEG engine (A100, H100: `shrink "
                   "doctor` says), else cpu [default: auto]. The run's shrink.decode tag says which.")
@click.option("--compile/--no-compile", default=None,
              help="torch.compile the model's training and evaluation steps, with CUDA graphs on a GPU; the "
                   "first epoch pays the compilation (seconds to a minute; less with inductor's cache warm) "
                   "[default: on for CUDA, off on CPU].")
@click.option("--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else ./mlflow.db].")
@click.option("--experiment", "experiment_name", default="shrink", show_default=True, help="MLflow experiment.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False),
              help="Save the trial's state here every epoch, and resume from it when present.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Fine-tune data-parallel on this many processes (Ray Train, DDP; gloo on CPU, NCCL with "
                   "one GPU each); --batch-size is their global batch and must be divisible by it.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any other trial config field, e.g. finetune.optimizer=sgd or prune_classifier=true.")
def trial(settings, checkpoint_dir, **options) -> None:
    """Run one trial: prune a base, fine-tune with early stopping, evaluate, record in MLflow.

    Prints one line per epoch to stderr and the final metrics as JSON to stdout. With --workers N the
    trial runs on a Ray started on this machine, each worker with --threads CPUs (default 1).
    """
    import json

    from shrink import experiment, orchestrator

    values = {k: v for k, v in options.items() if v is not None and k not in _FINETUNE_OPTIONS}
    finetune = {k: options[k] for k in _FINETUNE_OPTIONS if options[k] is not None}
    values["finetune"] = finetune
    for setting in settings:
        key, value = _parse_setting(setting)
        (finetune if key.startswith("finetune.") else values)[key.removeprefix("finetune.")] = value
    try:
        result = orchestrator.launch_trial(values, checkpoint_dir=checkpoint_dir, reporter=_print_epoch)
    except experiment.ConfigError as error:
        raise click.UsageError(str(error)) from None
    except _library_errors() as error:
        raise click.ClickException(f"{type(error).__name__}: {error}") from None
    click.echo(json.dumps(result, indent=2, sort_keys=True))


_FINETUNE_OPTIONS = ("epochs", "lr", "batch_size", "patience")


def _parse_setting(setting: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as YAML (numbers, true/false, null, strings)."""
    import re

    import yaml

    key, sep, text = setting.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {setting!r}", param_hint="--set")
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", text):
        return key, float(text)  # YAML 1.1 reads 3e-4 (no dot) as a string
    return key, yaml.safe_load(text) if text else None


def _print_epoch(epoch: int, metrics: dict) -> None:
    click.echo(f"epoch {epoch}: train loss {metrics['train_loss']:.4f}  val top-1 {metrics['val_top1']:.4f}  "
               f"val loss {metrics['val_loss']:.4f}  {metrics['epoch_time_s']:.1f}s "
               f"({metrics['images_per_s']:.0f} img/s)", err=True)


# --- shrink report, shrink check, shrink ui (shrink.report) ---

# `shrink report A B`: A's report combined with B's trials where their protocols match (shrink.report.protocol).
SWEEPS_ARGUMENT = click.argument("sweeps", nargs=-1)
TRACKING_URI_OPTION = click.option(
    "--tracking-uri", metavar="URI",
    help="MLflow tracking store [default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db].",
)


@main.command("report")
@SWEEPS_ARGUMENT
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output directory [default: shrink-out/report/<sweep>].")
@click.option("--literature", is_flag=True,
              help="Overlay published results (Blalock et al. 2020) on matching figures.")
@click.option("--error-bars", type=click.Choice(["std", "ci"]), default="std", show_default=True,
              help="What the figures' bars show: the sample std over seeds, or the 95% t-interval of the mean.")
@TRACKING_URI_OPTION
def report(sweeps, out_dir, literature, error_bars, tracking_uri):
    """Tables, comparisons, figures, report.md and the checklist of SWEEPS (default: the newest sweep).

    Several sweeps (`shrink report A B`) make one report of A's trials and those of B, C, ... whose protocol
    (carve-out, bases, fine-tuning, schedule, pruning batch, shrink version) is A's: a method added later is
    compared with A's baselines without rerunning them. Trials that do not match are left out, each sweep
    and field named in one line.
    """
    from shrink.report import SweepNotFound, build_report, format_checklist

    try:
        result = build_report(sweeps[0] if sweeps else None, also=sweeps[1:], tracking_uri=tracking_uri,
                              out_dir=out_dir, literature=literature, error_bars=error_bars, log=click.echo)
    except SweepNotFound as e:
        raise click.ClickException(str(e)) from e
    click.echo(format_checklist(result.checks))
    click.echo(f"report: {result.out_dir / 'report.md'}")


@main.command("check")
@SWEEPS_ARGUMENT
@click.option("--strict", is_flag=True, help="Exit with status 1 when any item fails.")
@TRACKING_URI_OPTION
def check(sweeps, strict, tracking_uri):
    """Audit SWEEPS (default: the newest; several combine as in `shrink report`) against the paper's Appendix
    B checklist."""
    from shrink.report import SweepNotFound, check_sweep, format_checklist

    try:
        _, items = check_sweep(sweeps[0] if sweeps else None, also=sweeps[1:], tracking_uri=tracking_uri,
                               log=click.echo)
    except SweepNotFound as e:
        raise click.ClickException(str(e)) from e
    click.echo(format_checklist(items))
    failed = sum(not item.passed for item in items)
    if strict and failed:
        click.echo(f"{failed} of {len(items)} checklist items failed", err=True)
        raise SystemExit(1)


@main.command("ui")
@SWEEPS_ARGUMENT
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; any other than 127.0.0.1 exposes the UI beyond this machine.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@TRACKING_URI_OPTION
def ui(sweeps, host, port, tracking_uri):
    """Start the MLflow UI on the sweeps' tracking store and print the URL of each sweep's trial runs (SWEEPS:
    default the newest), then where the first one's report is (`shrink report A B` reports several on A's run)."""
    from shrink.experiment.tracking import resolve_tracking_uri
    from shrink.report import SweepNotFound
    from shrink.report.ui import serve

    try:
        serve(resolve_tracking_uri(tracking_uri), host, port, sweeps, echo=click.echo)
    except SweepNotFound as e:
        raise click.ClickException(str(e)) from e


@main.command()
@click.argument("spec_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--preset", metavar="NAME",
              help="A built-in sweep: demo (the default), cifar10-resnet56, imagenet-resnet18.")
@click.option("--dry-run", is_flag=True, help="Check the sweep, print its trial grid and resources, and exit.")
@click.option("--resume", is_flag=True, help="Continue an interrupted sweep without rerunning finished trials.")
@click.option("--address", metavar="HOST:PORT",
              help="Attach to a running Ray cluster ('auto': the one on this node) instead of starting Ray here.")
@click.option("--cluster", "cluster_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run as a Ray Job on the cluster this `ray up` file describes (brought up if needed). "
                   "Refused unless metadata.shrink.allowed_network in it is your network's range.")
@click.option("--tracking-uri", metavar="URI",
              help="MLflow tracking URI (default: the sweep file's, else $MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--storage-path", metavar="DIR",
              help="Where Ray Tune keeps sweep state, on a cluster a folder all nodes share "
                   "(default: the sweep file's, else $SHRINK_STORAGE, else ./shrink-out/ray).")
def sweep(spec_file, preset, dry_run, resume, address, cluster_file, tracking_uri, storage_path):
    """Fan a grid of pruning trials out with Ray Tune (default: the built-in demo sweep).

    SPEC_FILE is a YAML sweep file (see shrink/orchestrator/spec.py). Trials are recorded in MLflow
    under one parent run per sweep; `shrink report` summarises them.
    """
    from shrink import experiment, orchestrator

    request = orchestrator.SweepRequest(spec_file=spec_file, preset=preset, dry_run=dry_run, resume=resume,
                                        address=address, cluster_file=cluster_file, tracking_uri=tracking_uri,
                                        storage_path=storage_path)
    try:
        status = orchestrator.launch_sweep(request, echo=click.echo)
    except orchestrator.SpecError as error:
        raise _bad_input(error) from None
    except (orchestrator.ClusterError, experiment.RecordingError) as error:  # a store lost mid-sweep: one line
        raise click.ClickException(str(error)) from None
    if status:
        raise SystemExit(status)


@main.command()
@click.option("--address", metavar="HOST:PORT",
              help="Check every node of the running Ray cluster there ('auto': the one on this node), one Ray task "
                   "per node (it holds no resources: it runs beside trials).")
@click.option("--cluster", "cluster_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run as a Ray Job on the cluster this `ray up` file describes (brought up if needed).")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of {node, report, problems} instead of text.")
def doctor(address, cluster_file, as_json):
    """Check what a trial will find on each node before a sweep fans out.

    \b
    Per node: Python, torch, torchvision and the CUDA torch was built with; the NVIDIA driver
    against what that CUDA needs; each GPU's compute capability against torch.cuda.get_arch_list(),
    bf16, hardware JPEG decoder and free memory, with a tiny bf16 channels-last conv
    forward/backward and a one-image decode_jpeg run on it; MPS; host memory.

    Without --address or --cluster it checks this machine without Ray (a CPU-only machine is fine:
    it says so). Exits 1 when a node has a problem, each problem one line with its remedy. A sweep
    that asks for GPUs runs the same checks after Ray starts and refuses to start (exit 2) if a node
    with GPUs fails them.
    """
    import json

    if cluster_file and address:
        raise click.UsageError("--cluster and --address exclude each other: --cluster runs doctor with --address auto")
    if cluster_file:
        raise SystemExit(_doctor_on_cluster(cluster_file, as_json))
    if address:
        from shrink import orchestrator
        from shrink.orchestrator.doctor import doctor_cluster

        try:
            checks = doctor_cluster(address)
        except orchestrator.SpecError as error:
            raise _bad_input(error) from None
    else:
        from shrink.experiment.node import check_here

        checks = [check_here()]
    if as_json:
        click.echo(json.dumps([check.to_json() for check in checks], indent=2))
    else:
        from shrink.experiment.node import summary

        click.echo("\n\n".join(check.describe() for check in checks) + "\n\n" + summary(checks))
    if any(check.problems for check in checks):
        raise SystemExit(1)


def _doctor_on_cluster(cluster_file: Path, as_json: bool) -> int:
    from shrink import orchestrator

    try:
        return orchestrator.run_on_cluster(cluster_file, ["--json"] if as_json else [], working_dir=Path.cwd(),
                                           command="doctor")
    except orchestrator.SpecError as error:
        raise _bad_input(error) from None
    except orchestrator.ClusterError as error:
        raise click.ClickException(str(error)) from None
