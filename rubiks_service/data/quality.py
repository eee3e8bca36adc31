"""The consumer side of the pipeline: decoded batches -> normalised clips, with the unusable rows
dropped and counted, and a run stopped when too much of its data could not be used (so it never
silently trains on less)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from . import transforms


class DataQualityError(RuntimeError):
    """Too much of the data could not be used."""


@dataclass
class DataQualityMonitor:
    """Counts usable and unusable rows; `check()` enforces the minimum usable fraction."""

    min_valid_fraction: float = 0.9
    seen: int = 0
    bad: int = 0

    def update(self, valid: torch.Tensor) -> None:
        self.seen += int(valid.numel())
        self.bad += int((~valid).sum())

    @property
    def valid_fraction(self) -> float:
        return 1.0 if self.seen == 0 else 1 - self.bad / self.seen

    def check(self) -> None:
        if self.seen and self.valid_fraction < self.min_valid_fraction:
            raise DataQualityError(
                f"only {self.seen - self.bad}/{self.seen} videos ({100 * self.valid_fraction:.1f}%) could be read, "
                f"below the required {100 * self.min_valid_fraction:.0f}%: see the warnings for the paths"
            )


def clip_batches(
    batches: Iterator[dict[str, torch.Tensor]], monitor: DataQualityMonitor, device: torch.device | str = "cpu"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised (N, V, T, 3, S, S) float clips and labels from {clip, label, valid} torch batches;
    invalid rows are dropped and counted."""
    for batch in batches:
        valid = batch["valid"].bool()
        monitor.update(valid)
        if not valid.any():
            continue
        clips = batch["clip"][valid].to(device, non_blocking=True)
        yield transforms.normalize(clips), batch["label"][valid].to(device)
    monitor.check()
