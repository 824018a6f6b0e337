"""The paper's Appendix B checklist, audited on a sweep's per-trial table.

Each item is judged per (dataset, model) over the finished trials and says why it passed or
failed. Strategy names are shrink's canonical ones (the trial records its resolved config).
"""

from dataclasses import dataclass

import pandas as pd

from shrink.experiment.recording import Status
from shrink.experiment.sources import PRETRAIN
from shrink.pruning.names import matched_names
from shrink.report.comparisons import ALPHA, compare, default_methods, where
from shrink.report.control import finetuned_controls

MIN_POINTS = 5  # pruned operating points (compression > 1) per strategy
MIN_SEEDS = 3
SUBSTANTIAL_DROP = 0.05  # a mean top-1 drop of 5 points or more counts as substantial
MANY_CLASSES = 10  # datasets with more classes must report top-5
RANDOM = ("random", "layer-random")
MAGNITUDE = ("global-magnitude", "layer-magnitude")


@dataclass(frozen=True)
class CheckItem:
    """One checklist item: its name, whether the sweep passes it, and why."""

    name: str
    passed: bool
    reason: str


def _pairs(finished: pd.DataFrame):
    return finished.groupby(["dataset", "model"], sort=True)


def _label(key) -> str:
    return "/".join(str(k) for k in key)


def _operating_points(finished):
    problems, drops = [], []
    for key, pair in _pairs(finished):
        pruned = pair[pair["compression"] > 1]
        counts = pruned.groupby("strategy")["compression"].nunique()
        few = [f"{s} ({counts.get(s, 0)})" for s in sorted(pair["strategy"].unique())
               if counts.get(s, 0) < MIN_POINTS]
        if few:
            problems.append(f"{_label(key)}: fewer than {MIN_POINTS} compressions > 1 for {', '.join(few)}")
        means = pruned.groupby(["strategy", "compression"])["delta_top1"].mean()
        worst = -means.min() if len(means) else float("nan")
        if not worst >= SUBSTANTIAL_DROP:
            problems.append(f"{_label(key)}: largest mean top-1 drop {100 * worst:.1f} points, "
                            f"none reaches {100 * SUBSTANTIAL_DROP:.0f}")
        else:
            drops.append(f"{_label(key)} drops up to {100 * worst:.1f} points")
    return not problems, "; ".join(problems) or (
        f">= {MIN_POINTS} compressions > 1 per strategy; " + "; ".join(drops))


def _seeds(finished):
    seeds = finished.groupby(["dataset", "model", "strategy", "compression"])["seed"].nunique()
    few = seeds[seeds < MIN_SEEDS]
    if len(few):
        shown = ", ".join(f"{s} at {c:g}x ({n})" for (_, _, s, c), n in few.head(4).items())
        more = f" and {len(few) - 4} more" if len(few) > 4 else ""
        return False, f"{len(few)} of {len(seeds)} points have fewer than {MIN_SEEDS} seeds: {shown}{more}"
    return True, f"every point has >= {MIN_SEEDS} seeds (min {seeds.min()}); mean and std in the summary"


def _baseline(names, what):
    def check(finished):
        missing = [_label(k) for k, pair in _pairs(finished) if not set(names) & set(pair["strategy"])]
        if missing:
            return False, f"no {what} baseline ({' or '.join(names)}) for {', '.join(missing)}"
        found = sorted(set(names) & set(finished["strategy"]))
        return True, f"{', '.join(found)} present"
    return check


def _matched(methods):
    """Random- and magnitude-matched baselines for every proposed method that finished trials."""
    def check(finished):
        missing, covered, channels = [], set(), set()
        for key, pair in _pairs(finished):
            present = set(pair["strategy"])
            for method in sorted(present & set(methods)):
                if _removes_channels(method):  # matched families reproduce per-weight counts only
                    channels.add(method)
                    continue
                lacking = [name for name in matched_names(method) if name not in present]
                if lacking:
                    missing.append(f"{', '.join(lacking)} ({_label(key)})")
                covered.add(method)
        if missing:
            return False, "missing " + "; ".join(missing)
        notes = [f"matched baselines present for {', '.join(sorted(covered))}"] if covered else []
        if channels:
            notes.append(f"{', '.join(sorted(channels))} removes whole channels: per-weight matched baselines "
                         "do not apply")
        if not methods:
            notes.append("no proposed methods (every strategy is a built-in baseline, or the sweep's "
                         "methods: names none): no matched baselines needed")
        elif not notes:
            notes.append(f"no finished trials of the proposed methods ({', '.join(methods)})")
        return True, "; ".join(notes)
    return check


def _removes_channels(strategy: str) -> bool:
    """Whether ``strategy`` is a registered channel strategy (imports torch: only for named methods)."""
    from shrink import pruning

    try:
        return pruning.get_strategy(strategy).structure == "channels"
    except ValueError:  # a plug-in not installed here: taken as a weight strategy
        return False


def _recorded(columns, what):
    def check(finished):
        lacking = finished[columns].isna().any(axis=1).sum()
        if lacking:
            return False, f"{lacking} of {len(finished)} finished trials lack {what} ({', '.join(columns)})"
        return True, f"{what} recorded for all {len(finished)} finished trials"
    return check


def _top5(finished):
    lacking = finished[finished["test_top5"].isna()]
    if lacking.empty:
        return True, f"top-5 recorded for all {len(finished)} finished trials"
    from shrink.datasets import UnknownDataset, info  # imports torch: only when top-5 is missing

    problems = []
    for dataset, trials in lacking.groupby("dataset", sort=True):
        try:
            classes = info(dataset).num_classes
        except UnknownDataset:
            problems.append(f"{dataset} (class count unknown, {len(trials)} without top-5)")
            continue
        if classes > MANY_CLASSES:
            problems.append(f"{dataset} ({classes} classes, {len(trials)} without top-5)")
    if problems:
        return False, f"top-5 missing on {', '.join(problems)}"
    return True, f"top-5 missing only on datasets with <= {MANY_CLASSES} classes, where it is not required"


def _same_base(finished):
    if finished["base_sha256"].isna().any():
        return False, f"{finished['base_sha256'].isna().sum()} finished trials lack shrink.base_sha256"
    bases = finished.groupby(["dataset", "model", "seed"])["base_sha256"].nunique()
    mixed = bases[bases > 1]
    if len(mixed):
        shown = ", ".join(f"{d}/{m} seed {s}" for d, m, s in mixed.index[:4])
        return False, f"strategies start from different base checkpoints at {shown}"
    hashes = sorted(finished["base_sha256"].unique())
    return True, f"one base per (dataset, model, seed) shared by every strategy: {', '.join(h[:12] for h in hashes)}"


def _held_out(finished):
    """Bases shrink pretrained never saw the validation carve-out; bases trained elsewhere (published or
    file weights) did. Runs recorded before ``shrink.base_source`` existed had pretrained bases."""
    sources = finished["base_source"].fillna(PRETRAIN)
    elsewhere = sorted(sources[sources != PRETRAIN].unique())
    if elsewhere:
        return False, (f"the validation carve-out was part of the training data of base {', '.join(elsewhere)} "
                       "(trained elsewhere, as in the paper's ImageNet setup): validation scores, and early "
                       "stopping on them, are optimistic")
    return True, "every base was pretrained by shrink without the validation carve-out"


def _finetuned_control(finished):
    """Whether each base has converged: the fine-tuned control (compression 1) must not beat it beyond its
    interval, or every pruned point's Δ top-1 against the base also counts the extra training."""
    controls = {(c.dataset, c.model): c for c in finetuned_controls(finished)}
    problems, notes = [], []
    for key, _ in _pairs(finished):
        control = controls.get(key)
        if control is None:
            problems.append(f"{_label(key)}: no compression-1 trials; add compression 1 to the grid for the "
                            "fine-tuned control")
        elif control.converged is None:
            problems.append(f"{_label(key)}: one base and seed at compression 1, no interval to tell whether "
                            f"the base converged (control {control.described()})")
        elif not control.converged:
            problems.append(f"{_label(key)}: base not converged: the fine-tuned control beats it by "
                            f"{control.described()}; read delta_top1_vs_control, not delta_top1")
        else:
            notes.append(f"{_label(key)} gains {control.described()}")
    return not problems, "; ".join(problems) or ("the fine-tuned control (compression 1) does not beat the base "
                                                 "beyond its interval: " + "; ".join(notes))


def _one_base(finished) -> list[str]:
    """Advice for each (dataset, model) whose comparisons all rest on one base checkpoint."""
    bases = finished.groupby(["dataset", "model"], sort=True)["base_sha256"].unique()
    return [f"{_label(key)} rests on one base ({hashes[0][:12]}): the order of strategies can change with "
            "the base (Blalock et al. 2020, Figure 8); train one base per seed to see it hold across bases"
            for key, hashes in bases.items() if len(hashes) == 1]


def _claim(method: str, rows: pd.DataFrame) -> tuple[bool, str]:
    """Whether ``method``'s comparisons on test top-1 (``rows``) back an advantage, and where."""
    better = rows[rows["verdict"] == "better"]
    unsure = rows[(rows["mean_diff"] > 0) & rows["verdict"].isin(["indistinguishable", "untested"])]
    caveat = f"; ahead only within noise, or untested, against {where(unsure)}" if len(unsure) else ""
    if rows.empty:
        return False, f"{method}: no comparison (no baseline finished at its compressions > 1)"
    if better.empty:
        return False, f"{method}: no advantage with p_holm < {ALPHA:g}{caveat}"
    return True, f"{method} is better than {where(better)} (p_holm < {ALPHA:g}){caveat}"


def _advantage(methods, comparisons):
    """A proposed method's claimed advantage passes only where a comparison finds it better after the
    Holm-Bonferroni correction (p_holm < ALPHA), on test top-1."""
    def check(finished):
        if not methods:
            return True, ("no proposed methods, so no advantage claimed; comparisons.parquet compares every pair "
                          "of strategies")
        present = [m for m in methods if m in set(finished["strategy"])]
        if not present:
            return True, f"no finished trials of the proposed methods ({', '.join(methods)}): nothing to back"
        top1 = comparisons[comparisons["metric"] == "test_top1"]
        claims = [_claim(method, top1[top1["method"] == method]) for method in present]
        reasons = [text for ok, text in claims if not ok] + [text for ok, text in claims if ok]
        return all(ok for ok, _ in claims), "; ".join([*reasons, *_one_base(finished)])
    return check


def _checks(methods: tuple[str, ...], comparisons: pd.DataFrame) -> tuple:
    """(name, check) of every item; ``methods`` are the proposed methods the matched and advantage items
    ask about, ``comparisons`` the table of :func:`~shrink.report.comparisons.compare`."""
    return (
        ("operating points", _operating_points),
        ("seeds", _seeds),
        ("random baseline", _baseline(RANDOM, "random-pruning")),
        ("magnitude baseline", _baseline(MAGNITUDE, "magnitude")),
        ("matched baselines", _matched(methods)),
        ("compression and speedup", _recorded(["compression_ratio", "theoretical_speedup"], "both metrics")),
        ("top-5", _top5),
        ("dense control", _recorded(["dense_test_top1", "dense_test_top5", "dense_val_top1"], "dense metrics")),
        ("library and hardware", _recorded(["versions", "hardware"], "versions and hardware")),
        ("same base checkpoint", _same_base),
        ("validation held out", _held_out),
        ("fine-tuned control", _finetuned_control),
        ("significant advantage", _advantage(methods, comparisons)),
    )


def run_checklist(trials: pd.DataFrame, methods: tuple[str, ...] | None = None,
                  comparisons: pd.DataFrame | None = None) -> list[CheckItem]:
    """Audit the per-trial table (see :func:`shrink.report.runs.trials_frame`) against the
    checklist; every item fails when no trial finished. ``methods`` are the sweep's proposed
    methods, the only strategies that need matched baselines and claim an advantage (None, for a sweep
    that did not record them: its strategies that are not built-in baselines); ``comparisons`` is their
    :func:`~shrink.report.comparisons.compare` table when already computed."""
    finished = trials[trials["status"] == Status.FINISHED]
    if finished.empty:
        return [CheckItem(name, False, "no finished trials") for name, _ in _checks((), pd.DataFrame())]
    if methods is None:
        methods = default_methods(finished["strategy"])
    if comparisons is None:
        comparisons = compare(finished, tuple(methods))
    return [CheckItem(name, *check(finished)) for name, check in _checks(tuple(methods), comparisons)]


def format_checklist(items: list[CheckItem]) -> str:
    """The checklist as a fixed-width text table: item, PASS/FAIL, why."""
    width = max(len(item.name) for item in items)
    lines = [f"{'item':<{width}}  result  why"]
    lines += [f"{i.name:<{width}}  {'PASS' if i.passed else 'FAIL':<6}  {i.reason}" for i in items]
    return "\n".join(lines)
