"""The one progress display of a sweep: trials done / running / failed, the current best trial and an
ETA, as a tqdm bar on the terminal (a Tune callback, run in the driver)."""
from __future__ import annotations

from typing import TextIO

from ray.tune import Callback

from rubiks_service.train import metric_names as names


class SweepProgress(Callback):
    def __init__(self, total: int, stream: TextIO) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="trial", desc="sweep", file=stream, dynamic_ncols=True,
                        bar_format="{desc}: {n_fmt}/{total_fmt} trials done |{bar:20}| {elapsed}<{remaining} {postfix}")
        self.running: set[str] = set()
        self.failed = 0
        self.best: tuple[float, str] | None = None
        self._refresh()

    # Tune pickles its run config (callbacks included) for the experiment state: a copy carries no
    # terminal, and only the driver's own object draws
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.bar, self.running, self.failed, self.best = None, set(), 0, None

    def _refresh(self) -> None:
        if self.bar is None:
            return
        best = f", best {self.best[1]} {self.best[0]:.3f}" if self.best else ""
        self.bar.set_postfix_str(f"{len(self.running)} running, {self.failed} failed{best}", refresh=True)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.trial_id)
        self._refresh()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        value = result.get(names.ONE_CLIP_TOP1)
        if isinstance(value, int | float) and (self.best is None or value > self.best[0]):
            self.best = (float(value), trial.config.get("point", {}).get("label", trial.trial_id))
            self._refresh()

    def _ended(self, trial, failed: bool) -> None:
        if trial.trial_id in self.running and self.bar is not None:
            self.running.discard(trial.trial_id)
            self.failed += failed
            self.bar.update(1)
            self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, failed=True)

    def skip(self, trials: list) -> None:
        """Trials that will not run (their starting trial did not finish): counted as failed."""
        if trials and self.bar is not None:
            self.failed += len(trials)
            self.bar.update(len(trials))
            self._refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
