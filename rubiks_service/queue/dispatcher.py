"""The dispatcher: queued jobs -> Ray Jobs, in priority-then-FIFO order, within a concurrency limit.

One `step()`:
  1. reconcile: every submitted/running job is checked against Ray (`get_job_info`); finished
     jobs get their final state, MLflow run id and error text. A job that failed for an
     infrastructure reason (supervisor died, runtime env, unschedulable, node lost) goes back
     to the queue until `max_retries`; a job whose own command failed does not.
  2. dispatch: while fewer than `max_running` jobs are active, submit the next queued job.

Crash safety: the Ray submission id is derived from the job id (`<id>` on the first attempt,
`<id>-retry<n>` after), and the state is written after `submit_job` returns. If the process
dies in between, the job is still `queued`; the next submit of the same id is refused by Ray
("already exists"), which the dispatcher takes as proof of the earlier submit and records it.
So a restart neither loses nor duplicates a job.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from rubiks_service.config_files import ConfigError
from rubiks_service.redact import one_line, redact

from .spec import BUNDLE_ENV, bundle_job
from .store import ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, SUBMITTED, SUCCEEDED, Job, JobStore

log = logging.getLogger(__name__)

# Ray's JobErrorType values that mean the job's own command failed: not worth a retry
APPLICATION_ERRORS = {"JOB_ENTRYPOINT_COMMAND_ERROR", "JOB_ENTRYPOINT_COMMAND_START_ERROR"}


def submission_id(job: Job, attempt: int) -> str:
    return job.id if attempt <= 1 else f"{job.id}-retry{attempt - 1}"


class Dispatcher:
    def __init__(self, store: JobStore, client, *, max_running: int = 1, launcher: str = "rubiks",
                 tracking_uri: str | None = None,
                 env: dict[str, str] | None = None, find_mlflow_run: Callable[[str], str | None] | None = None,
                 find_model_uri: Callable[[str], str | None] | None = None,
                 before_state_write: Callable[[Job], None] | None = None) -> None:
        self.store = store
        self.client = client  # ray.job_submission.JobSubmissionClient
        self.max_running = max_running
        self.launcher = launcher
        self.tracking_uri = tracking_uri
        self.env = dict(env or {})
        self.find_mlflow_run = find_mlflow_run
        self.find_model_uri = find_model_uri  # MLflow run id -> the model URI the run recorded
        self._before_state_write = before_state_write  # test hook: crash between submit and state write

    # --- dispatch -------------------------------------------------------------------------
    def _runtime_env(self, job: Job, bundle: dict[str, str]) -> dict:
        env = {"RUBIKS_JOB_ID": job.id, **self.env, BUNDLE_ENV: json.dumps(bundle)}
        if self.tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        return {"env_vars": env}

    def submit(self, job: Job) -> bool:
        attempt = job.attempts + 1
        sid = submission_id(job, attempt)
        spec = job.job_spec
        try:  # jobs queued before bundles existed are bundled from their (absolute) config path now
            bundle = job.job_bundle or bundle_job(spec)
        except ConfigError as exc:
            self.store.transition(job.id, [QUEUED], FAILED, error=f"cannot bundle the job: {exc}")
            return False
        try:
            self.client.submit_job(entrypoint=spec.entrypoint(self.launcher), submission_id=sid,
                                   runtime_env=self._runtime_env(job, bundle),
                                   entrypoint_num_cpus=spec.resources.cpus or None,
                                   entrypoint_num_gpus=spec.resources.gpus or None,
                                   metadata={"rubiks_job": job.id, "name": job.name})
        except Exception as exc:  # noqa: BLE001 - Ray raises RuntimeError for HTTP errors
            if "already exists" not in str(exc):
                log.warning("submitting %s failed: %s", job.id, exc)
                # still queued (the next step tries again); `jobs status` shows why it waits
                self.store.set_fields(job.id, error=f"submitting to Ray failed (retried on the next step): "
                                                    f"{one_line(exc, limit=1000)}")
                return False
            log.info("%s was already submitted as %s (a restart after a crash): recording it", job.id, sid)
        if self._before_state_write:
            self._before_state_write(job)
        return self.store.transition(job.id, [QUEUED], SUBMITTED, submission_id=sid, attempts=attempt, error=None)

    def dispatch(self) -> list[str]:
        free = self.max_running - self.store.count(ACTIVE)
        submitted = []
        for job in self.store.next_queued(max(free, 0)):
            if self.submit(job):
                submitted.append(job.id)
        return submitted

    # --- reconcile ------------------------------------------------------------------------
    def reconcile(self) -> None:
        for job in self.store.list(ACTIVE):
            try:
                info = self.client.get_job_info(job.submission_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot read the status of %s: %s", job.id, exc)
                continue
            status = str(getattr(info.status, "value", info.status))
            if status == "RUNNING" and job.state == SUBMITTED:
                self.store.transition(job.id, [SUBMITTED], RUNNING)
            elif status in ("SUCCEEDED", "FAILED", "STOPPED"):
                self._finish(job, status, info)

    def _finish(self, job: Job, status: str, info) -> None:
        run_id = self.find_mlflow_run(job.id) if self.find_mlflow_run else None
        if status == "SUCCEEDED":
            model_uri = self.find_model_uri(run_id) if run_id and self.find_model_uri else None
            self.store.transition(job.id, ACTIVE, SUCCEEDED, mlflow_run_id=run_id, model_uri=model_uri)
            return
        if status == "STOPPED":
            self.store.transition(job.id, ACTIVE, CANCELLED, mlflow_run_id=run_id, error="stopped on the cluster")
            return
        error_type = str(getattr(info, "error_type", "") or "")
        message = redact(f"{error_type}: {info.message or ''}".strip(": "))[:5000]
        infra = error_type not in APPLICATION_ERRORS
        if infra and job.attempts <= job.job_spec.max_retries:
            log.warning("%s failed for an infrastructure reason (%s): queued again", job.id, error_type)
            self.store.transition(job.id, ACTIVE, QUEUED, error=f"retrying after: {message}")
        else:
            self.store.transition(job.id, ACTIVE, FAILED, mlflow_run_id=run_id, error=message)

    # --- user actions ---------------------------------------------------------------------
    def cancel(self, job_id: str) -> str:
        job = self.store.get(job_id)
        if job.state == QUEUED and self.store.transition(job_id, [QUEUED], CANCELLED, error="cancelled while queued"):
            return CANCELLED
        if job.state in ACTIVE:
            self.client.stop_job(job.submission_id)
            self.store.transition(job_id, ACTIVE, CANCELLED, error="cancelled by the user")
            return CANCELLED
        return self.store.get(job_id).state

    def step(self) -> list[str]:
        self.reconcile()
        return self.dispatch()

    def serve(self, poll_s: float = 2.0, until_idle: bool = False, progress: Callable[[str], None] | None = None) -> None:
        """Dispatch forever (or, with `until_idle`, until no job is queued or active)."""
        while True:
            for job_id in self.step():
                if progress:
                    progress(f"submitted {job_id}")
            if until_idle and self.store.count([QUEUED, *ACTIVE]) == 0:
                return
            time.sleep(poll_s)


def mlflow_run_finder(tracking_uri: str) -> Callable[[str], str | None]:
    """Find the top-level MLflow run a job opened (runs carry the tag rubiks.job_id)."""
    def find(job_id: str) -> str | None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        if not experiments:
            return None
        runs = client.search_runs(experiments, filter_string=f"tags.`rubiks.job_id` = '{job_id}'",
                                  order_by=["attributes.start_time ASC"], max_results=50)
        top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        return (top or runs)[0].info.run_id if runs else None

    return find


def mlflow_model_uri_reader(tracking_uri: str) -> Callable[[str], str | None]:
    """The model URI a job's top-level MLflow run recorded (its `rubiks.model_uri` tag), if any."""
    def read(run_id: str) -> str | None:
        from mlflow.tracking import MlflowClient

        from rubiks_service.tracking.tag_names import MODEL_URI_TAG

        try:
            return MlflowClient(tracking_uri=tracking_uri).get_run(run_id).data.tags.get(MODEL_URI_TAG)
        except Exception as exc:  # noqa: BLE001 - a missing tag must not fail the job's bookkeeping
            log.warning("cannot read the model URI of run %s: %s", run_id, exc)
            return None

    return read

