"""Several sweeps in one report (``shrink report A B``): a method added next month is compared with last
month's baselines instead of rerunning them, but only where both sweeps ran the same protocol.

A sweep's protocol, per (dataset, model), is the set of values its finished trials hold in each field of
:data:`PROTOCOL`: the data's train/validation carve-out (split hash, fraction and seed), the base checkpoints
(sha256), the fine-tuning recipe and variant, the schedule, the pruning batch and shrink's version (the
metric definitions). The first sweep named sets the protocol of each (dataset, model) it holds; a later
sweep's trials of that (dataset, model) are kept only where every field's values are among the first's,
else refused with one line naming the sweep and the field. A trial whose cell (model, base, strategy,
compression, seed) an earlier sweep already holds is left out too: every cell counts once.
"""

import json
from dataclasses import dataclass

import pandas as pd

from shrink.experiment.recording import Status

# Trials-table columns (shrink.report.runs.trials_frame) that make a protocol; ``params.finetune.*`` are added.
PROTOCOL = ("split_hash", "params.val_fraction", "params.split_seed", "base_sha256", "params.schedule",
            "params.schedule_rounds", "params.schedule_every", "params.prune_batch_size",
            "params.prune_classifier", "shrink_version")
CELL = ["dataset", "model", "base_sha256", "base_name", "strategy", "compression", "seed"]


@dataclass(frozen=True)
class Combined:
    """The trials of several sweeps in one table (column ``sweep`` says whose), and why some were left out."""

    trials: pd.DataFrame
    refused: tuple[str, ...]  # one line per sweep and (dataset, model) left out, or cells already held


def shrink_version(versions: str) -> str:
    """shrink's version in a trial's ``versions`` tag (JSON), or empty where it was not recorded."""
    try:
        return str(json.loads(versions).get("shrink", ""))
    except (TypeError, ValueError):
        return ""


def protocol_fields(trials: pd.DataFrame) -> list[str]:
    """The fields of :data:`PROTOCOL` and every fine-tuning param the trials carry."""
    return [*PROTOCOL, *sorted(c for c in trials.columns if c.startswith("params.finetune."))]


def combine(sweeps: list[tuple[str, pd.DataFrame]]) -> Combined:
    """``sweeps`` (name, trials table) in order, combined as the module doc says."""
    tables, refused, protocols = [], [], {}
    held = pd.DataFrame(columns=CELL)
    for name, trials in sweeps:
        trials = trials.assign(sweep=name, shrink_version=trials["versions"].map(shrink_version))
        kept = []
        for key, group in trials.groupby(["dataset", "model"], sort=True):
            mine = _protocol(group)
            first = protocols.setdefault(key, (name, mine))
            differs = _first_difference(mine, first[1])
            if differs is not None:
                refused.append(f"sweep {name}: {key[0]}/{key[1]}: {differs} differs from sweep {first[0]}'s; its "
                               f"{len(group)} trials are left out")
                continue
            kept.append(group)
        if not kept:
            continue
        mine = pd.concat(kept)
        repeated = mine[CELL].astype(str).apply(tuple, axis=1).isin(set(held.astype(str).apply(tuple, axis=1)))
        if repeated.any():
            refused.append(f"sweep {name}: {int(repeated.sum())} trials repeat cells an earlier sweep holds; "
                           "the earlier ones are kept")
        tables.append(mine[~repeated])
        held = pd.concat([held, mine.loc[~repeated, CELL]], ignore_index=True)
    return Combined(pd.concat(tables, ignore_index=True).drop(columns="shrink_version"), tuple(refused))


def _protocol(trials: pd.DataFrame) -> dict[str, frozenset]:
    finished = trials[trials["status"] == Status.FINISHED]
    return {field: frozenset(finished[field].astype(str)) for field in protocol_fields(trials) if field in finished}


def _first_difference(mine: dict[str, frozenset], first: dict[str, frozenset]) -> str | None:
    """``<field> <values>`` of the first field whose values are not among the first sweep's, or None."""
    for field in sorted(mine.keys() | first.keys()):
        values, allowed = mine.get(field, frozenset({"(none)"})), first.get(field, frozenset({"(none)"}))
        if not values <= allowed:
            shown = ", ".join(sorted(values - allowed))
            return f"{field.removeprefix('params.')} {shown} (vs {', '.join(sorted(allowed))})"
    return None
