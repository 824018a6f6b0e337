"""The fine-tuned control: the compression-1 trial of each base and seed, the base fine-tuned with the
sweep's recipe and nothing pruned.

Δ top-1 against the base before fine-tuning credits a pruned point with the extra training as well as
charging it for the pruning; against this control the recipe is the same on both sides, so only the
pruning differs. The control is matched on (dataset, model, base, seed, compression 1) whatever its
strategy: pruning nothing is the same for every strategy, and a grid may run it once for all of them.
A base the control beats beyond its interval still gains from training: it has not converged.
"""

from dataclasses import dataclass

import pandas as pd

from shrink.experiment.recording import Status
from shrink.report.intervals import describe

CONTROL_DELTAS = ("delta_top1_vs_control", "delta_top5_vs_control")
CONTROL_KEY = ["dataset", "model", "base_sha256", "seed"]
SCORES = ("test_top1", "test_top5")  # what each of CONTROL_DELTAS subtracts, in order


def _finished_controls(trials: pd.DataFrame) -> pd.DataFrame:
    finished = trials[trials["status"] == Status.FINISHED]
    return finished[finished["compression"] == 1]


def with_control_deltas(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with :data:`CONTROL_DELTAS` set: each trial's test top-1 and top-5 minus its control's
    (the mean where several compression-1 trials share the key, one per strategy); NaN without one."""
    control = _finished_controls(trials).groupby(CONTROL_KEY, sort=False)[list(SCORES)].mean()
    matched = trials[CONTROL_KEY].join(control, on=CONTROL_KEY)
    deltas = {delta: trials[score] - matched[score] for delta, score in zip(CONTROL_DELTAS, SCORES)}
    return trials.assign(**deltas)


@dataclass(frozen=True)
class FinetunedControl:
    """What fine-tuning gained the unpruned base of one (dataset, model): the control's test top-1 minus
    the base's dense test top-1, one value per (base, seed), with its 95% t-interval over them."""

    dataset: str
    model: str
    pairs: int  # distinct (base, seed) with a finished compression-1 trial
    gain: float
    ci_low: float  # NaN with one pair
    ci_high: float

    @property
    def converged(self) -> bool | None:
        """False when the whole interval lies above 0 (base not converged); None without an interval."""
        return None if self.pairs < 2 else not self.ci_low > 0

    def described(self) -> str:
        """The gain in points with its interval, e.g. ``+0.93 points (95% t-interval +0.50 to +1.36, 3 pairs)``."""
        if self.pairs < 2:
            return f"{100 * self.gain:+.2f} points (1 base-seed pair)"
        return (f"{100 * self.gain:+.2f} points (95% t-interval {100 * self.ci_low:+.2f} to "
                f"{100 * self.ci_high:+.2f}, {self.pairs} base-seed pairs)")


def finetuned_controls(trials: pd.DataFrame) -> list[FinetunedControl]:
    """One :class:`FinetunedControl` per (dataset, model) with finished compression-1 trials."""
    controls = _finished_controls(trials)
    gains = (controls["test_top1"] - controls["dense_test_top1"]).rename("gain")
    per_pair = controls[CONTROL_KEY].assign(gain=gains).groupby(CONTROL_KEY, sort=True)["gain"].mean().dropna()
    table = describe(per_pair.reset_index(), ["dataset", "model"], ["gain"])
    pairs = per_pair.groupby(["dataset", "model"], sort=True).size()
    return [FinetunedControl(dataset, model, int(pairs[dataset, model]), float(row["gain_mean"]),
                             float(row["gain_ci_low"]), float(row["gain_ci_high"]))
            for (dataset, model), row in table.iterrows()]
