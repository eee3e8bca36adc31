"""A Ray Train callback that logs each reported epoch to an MLflow run while training runs. The
end-of-run protocols' accuracy (`1clip_*`, `2clip_*`, reported with the last epoch) is not logged
here: the tracked run logs it once, at the same step, with the run's model (tracked_training)."""
from __future__ import annotations

from typing import Any

from ray.train.v2.api.callback import UserCallback

from rubiks_service.train.config import EVAL_PROTOCOLS
from rubiks_service.train.metric_names import EPOCH, of_scope

from .mlflow_store import log_metrics, make_client


class MlflowEpochLogger(UserCallback):
    """Runs in the Train controller: metrics of worker 0's reports go to `run_id`."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self._client = None

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        if not metrics:
            return
        if self._client is None:
            self._client = make_client(self.tracking_uri)
        row = metrics[0]
        final = {k for protocol in EVAL_PROTOCOLS for k in of_scope(row, protocol)}
        log_metrics(self._client, self.run_id, {k: v for k, v in row.items() if k != EPOCH and k not in final},
                    step=int(row.get(EPOCH, 0)))
