"""A live, compact view of a running sweep, printed by the driver as a Tune callback.

One line per trial that finishes, fails or is retried, and every ``interval_s`` a status block: how
many trials are pending, running, finished and failed, what each running trial is doing, and an ETA.
Plain lines, so that the same output reads well in a terminal and in a Ray Job's streamed logs.
"""

import time

from ray import tune
from ray.tune.experiment import Trial

from shrink.orchestrator.spec import trial_label
from shrink.experiment.recording import TrialEnd
from shrink.orchestrator.trainable import STATUS, TrialTask


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _diverged(trial: Trial) -> bool:
    return trial.last_result.get(STATUS) == TrialEnd.DIVERGED


def _config(trial: Trial):
    return TrialTask.from_tune(trial.config).trial


def counts(trials: list[Trial]) -> dict[str, int]:
    """Trials by state: pending, running, finished, failed (errored for good, or diverged)."""
    result = dict.fromkeys(("pending", "running", "finished", "failed"), 0)
    for trial in trials:
        if trial.status == Trial.RUNNING:
            result["running"] += 1
        elif trial.status == Trial.ERROR or (trial.status == Trial.TERMINATED and _diverged(trial)):
            result["failed"] += 1
        elif trial.status == Trial.TERMINATED:
            result["finished"] += 1
        else:
            result["pending"] += 1
    return result


class Progress(tune.Callback):
    """Prints sweep progress; picklable (Tune stores it with the experiment for ``--resume``)."""

    def __init__(self, interval_s: float = 15.0, metric: str = "test_top1"):
        self.interval_s = interval_s
        self.metric = metric
        self._start = self._last = 0.0
        self._done_before: int | None = None  # trials already done when this run (or resume) began

    def setup(self, **info) -> None:
        self._start = self._last = time.monotonic()
        self._done_before = None

    def on_step_end(self, iteration: int, trials: list[Trial], **info) -> None:
        if self._done_before is None and trials:
            c = counts(trials)
            self._done_before = c["finished"] + c["failed"]
        if time.monotonic() - self._last >= self.interval_s:
            self.print_status(trials)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        result = trial.last_result
        if _diverged(trial):
            what = f"diverged   {result.get('failure', '')}"
        else:
            what = f"finished   {self.metric} {result.get(self.metric, float('nan')):.4f}"
        self._trial_line(trials, trial, f"{what}  ({result.get('time_total_s', 0):.1f} s)", ended=True)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        last = trial.latest_checkpoint_result
        if last:
            start = f"from its epoch {last.metrics['epoch']} checkpoint"
        elif _config(trial).workers > 1 and "epoch" in trial.last_result:  # Ray Train's own
            start = f"from its workers' last checkpoint (epoch {trial.last_result['epoch']} was reported)"
        else:
            start = "from the start (no checkpoint yet)"
        self._trial_line(trials, trial, f"retrying   after failure {trial.num_failures}, {start}", ended=False)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        what = f"errored    for good after {trial.num_failures} failures; see {trial.error_file}"
        self._trial_line(trials, trial, what, ended=True)

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        self.print_status(trials, running=False)

    def _trial_line(self, trials: list[Trial], trial: Trial, what: str, *, ended: bool) -> None:
        """One line about one trial; ``ended`` ones are counted (Tune still lists them as running)."""
        width = len(str(len(trials)))
        count = " " * (2 * width + 1)
        if ended:
            c = counts(trials)
            done = c["finished"] + c["failed"] + (trial.status == Trial.RUNNING)
            count = f"{done:>{width}}/{len(trials)}"
        print(f"[{_clock(time.monotonic() - self._start)}] {count} {trial_label(_config(trial))}  {what}",
              flush=True)

    def print_status(self, trials: list[Trial], running: bool = True) -> None:
        """Print the counts, the ETA and one line per running trial."""
        self._last = time.monotonic()
        elapsed = self._last - self._start
        c = counts(trials)
        done = c["finished"] + c["failed"]
        lines = [
            f"[{_clock(elapsed)}] {done}/{len(trials)} done: {c['finished']} finished, {c['failed']} failed"
            f" | {c['running']} running | {c['pending']} pending | ETA {self.eta(done, len(trials), elapsed)}"
        ]
        if running:
            for trial in trials:
                if trial.status == Trial.RUNNING:
                    result = trial.last_result
                    epoch = f"epoch {result['epoch']}" if "epoch" in result else "starting"
                    score = f"  val_top1 {result['val_top1']:.4f}" if "val_top1" in result else ""
                    lines.append(f"    running  {trial_label(_config(trial))}  {epoch}{score}")
        print("\n".join(lines), flush=True)

    def eta(self, done: int, total: int, elapsed: float) -> str:
        """Remaining time at the pace of the trials done since this run began."""
        if done == total:
            return _clock(0)
        new = done - (self._done_before or 0)
        if new <= 0:
            return "?"
        return _clock(elapsed / new * (total - done))
