"""Classification metrics: top-1, top-5 and mean-class accuracy and the confusion matrix from
accumulated counts, so they can be summed across DDP workers before dividing."""
from __future__ import annotations

import torch

from .metric_names import accuracy_name


class AccuracyCounter:
    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        # [top1 correct, top5 correct, seen], per-class correct, per-class seen, then the confusion
        # matrix (true class x top-1 class) row by row: one tensor, one all_reduce
        self.counts = torch.zeros(3 + 2 * num_classes + num_classes**2, dtype=torch.float64)

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits, labels = logits.detach().float().cpu(), labels.cpu()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit1 = top[:, 0] == labels
        hit5 = (top == labels[:, None]).any(dim=1)
        c = self.num_classes
        self.counts[0] += hit1.sum()
        self.counts[1] += hit5.sum()
        self.counts[2] += len(labels)
        self.counts[3 : 3 + c] += torch.bincount(labels[hit1], minlength=c).double()
        self.counts[3 + c : 3 + 2 * c] += torch.bincount(labels, minlength=c).double()
        self.counts[3 + 2 * c :] += torch.bincount(labels * c + top[:, 0], minlength=c * c).double()

    def all_reduce(self) -> None:
        """Sum the counts over the DDP workers (no-op without a process group)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.counts)

    def result(self, scope: str) -> dict[str, float]:
        """{`<scope>_top1`, `_top5`, `_mean_class`, `_clips`} (metric_names)."""
        seen = max(self.counts[2].item(), 1.0)
        c = self.num_classes
        per_class_seen = self.counts[3 + c : 3 + 2 * c]
        present = per_class_seen > 0
        per_class = self.counts[3 : 3 + c][present] / per_class_seen[present]
        return {
            accuracy_name(scope, "top1"): self.counts[0].item() / seen,
            accuracy_name(scope, "top5"): self.counts[1].item() / seen,
            accuracy_name(scope, "mean_class"): per_class.mean().item() if present.any() else 0.0,
            accuracy_name(scope, "clips"): int(self.counts[2].item()),
        }

    def confusion(self) -> list[list[int]]:
        """Clip counts, row = true class, column = top-1 prediction (summed over the workers once
        `all_reduce` ran)."""
        c = self.num_classes
        return self.counts[3 + 2 * c :].view(c, c).long().tolist()
