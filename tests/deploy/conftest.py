"""The deployment's services, started for real on this machine the way docker-compose.yml starts
them: each command is read from the compose file, with its host names mapped to 127.0.0.1, free
ports, and a temporary folder for /work/runs. PostgreSQL is Debian's server binaries (the
compose file's `postgres` image has no command of its own: initdb + pg_ctl with its user,
password and database). Every process runs in its own process group and the whole group is
stopped at the end (MLflow's server and `ray start` leave children)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
import requests

from tests.helpers.training import colour_data  # noqa: F401  (shared fixture: small real mp4 dataset)

from .services import (BIN, PG_BIN, Process, as_postgres, compose, free_port, service_command, service_env,
                       wait_for, write_configs)

class Stack:
    def __init__(self) -> None:
        self.token = uuid.uuid4().hex  # the cluster's Ray token
        # what `.env` holds: docker-compose.yml takes every secret from it and defaults none
        self.dotenv = {"RAY_AUTH_TOKEN": self.token, "POSTGRES_PASSWORD": uuid.uuid4().hex,
                       "MLFLOW_ADMIN_PASSWORD": uuid.uuid4().hex, "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex}
        self.base = tempfile.mkdtemp(prefix="rubiks-stack-")
        os.chmod(self.base, 0o755)
        self.runs = os.path.join(self.base, "runs")
        self.logs = os.path.join(self.base, "logs")
        os.makedirs(self.runs)
        os.makedirs(self.logs)
        self.ports = {"postgres": free_port(), "mlflow": free_port(), "gcs": free_port(), "dashboard": free_port()}
        self.hosts = {"postgres:5432": f"127.0.0.1:{self.ports['postgres']}",
                      "mlflow:5000": f"127.0.0.1:{self.ports['mlflow']}",
                      "ray-head:6379": f"127.0.0.1:{self.ports['gcs']}",
                      "ray-head:8265": f"127.0.0.1:{self.ports['dashboard']}",
                      "--port 5000": f"--port {self.ports['mlflow']}",
                      "127.0.0.1:5000": f"127.0.0.1:{self.ports['mlflow']}",
                      "--port=6379": f"--port={self.ports['gcs']}",
                      "--dashboard-port=8265": f"--dashboard-port={self.ports['dashboard']}"}
        self.processes: dict[str, Process] = {}
        self.ray_temp = tempfile.mkdtemp(prefix="rs-ray-")  # short: Ray's socket paths live under it
        self.pgdata = None

    # --- URLs a user of the deployment has ------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """The environment every rubiks service of the compose file gets (RAY_AUTH_TOKEN from .env)."""
        env = dict(os.environ)
        env.update(service_env("dispatcher", self.hosts, self.dotenv))
        assert env["RAY_AUTH_TOKEN"] == self.token and env["MLFLOW_TRACKING_PASSWORD"] == self.dotenv["MLFLOW_ADMIN_PASSWORD"]
        env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
        env.pop("RAY_ADDRESS", None)
        return env

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def mlflow_login(self) -> tuple[str, str]:
        """The MLflow account the services use (the admin the basic-auth app creates from .env)."""
        return self.env["MLFLOW_TRACKING_USERNAME"], self.env["MLFLOW_TRACKING_PASSWORD"]

    @property
    def queue_url(self) -> str:
        return self.env["RUBIKS_QUEUE_URL"]

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboard']}"

    # --- services ---------------------------------------------------------------------------
    def start_postgres(self) -> None:
        pg = compose()["services"]["postgres"]["environment"]
        user, db = pg["POSTGRES_USER"], pg["POSTGRES_DB"]
        password = service_env("postgres", self.hosts, self.dotenv)["POSTGRES_PASSWORD"]
        self.pgdata = os.path.join(self.base, "pgdata")
        pwfile = os.path.join(self.base, "pgpass")
        with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(password)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(pwfile, "postgres")
        subprocess.run(as_postgres([f"{PG_BIN}/initdb", "-D", self.pgdata, "-U", user, f"--pwfile={pwfile}",
                                     "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        port = self.ports["postgres"]
        subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.pgdata, "-l", os.path.join(self.pgdata, "server.log"),
                                     "-o", f"-p {port} -k {self.pgdata} -c listen_addresses=127.0.0.1", "-w", "start"]),
                       check=True, capture_output=True)
        subprocess.run(as_postgres([f"{PG_BIN}/createdb", "-h", self.pgdata, "-p", str(port), "-U", user, db]),
                       check=True, capture_output=True)

    def start_mlflow(self) -> None:
        # one server process (.env's MLFLOW_WORKERS=1): on a loaded 2-core machine uvicorn's
        # supervisor kills slow-starting workers of a multi-process server
        argv = service_command("mlflow", self.hosts, self.runs, {**self.dotenv, "MLFLOW_WORKERS": "1"})
        # the basic-auth app: its settings file (compose's `configs`) and the admin it creates, from .env
        configs = write_configs("mlflow", self.hosts, self.dotenv, self.base)
        env = {key: configs.get(value, value) for key, value in service_env("mlflow", self.hosts, self.dotenv).items()}
        proc = self._start("mlflow", argv, env)
        wait_for(lambda: requests.get(f"{self.tracking_uri}/health", timeout=5).ok, "mlflow server", 300, proc)

    def start_ray(self) -> None:
        head = service_command("ray-head", self.hosts, self.runs)
        # two nodes on one machine need their own agent / client ports (the compose nodes are separate hosts)
        per_node = lambda: [f"--dashboard-agent-listen-port={free_port()}", "--node-ip-address=127.0.0.1",  # noqa: E731
                            f"--ray-client-server-port={free_port()}", "--num-cpus=2"]
        # its own temp dir: `ray start` writes the cluster's address to <temp>/ray_current_cluster, and
        # Ray Jobs of any later local cluster under the default /tmp/ray would resolve "auto" to this one
        self._start_until_up("ray-head", [*head, *per_node(), f"--temp-dir={self.ray_temp}"], "ray head dashboard",
                             lambda: requests.get(f"{self.dashboard}/api/version", headers=self.auth, timeout=5).ok)
        worker = service_command("ray-gpu-worker", self.hosts, self.runs)
        self._start_until_up("ray-worker", [*worker, *per_node()], "two Ray nodes", self._two_nodes_alive)

    def _start_until_up(self, name: str, argv: list[str], what: str, check, attempts: int = 3) -> None:
        """Start a Ray node and wait until `check` passes; a node that gives up during start-up ("timed out
        during startup", "Deadline Exceeded": Ray's own start-up deadlines, missed on a loaded machine) is
        started again, as compose's restart would."""
        for attempt in range(1, attempts + 1):
            proc = self._start(name if attempt == 1 else f"{name}-{attempt}", argv)
            try:
                wait_for(check, what, 180, proc)
                return
            except RuntimeError:  # the process exited: Ray's start-up deadline on a loaded machine
                if attempt == attempts:
                    raise
                proc.stop()

    def _two_nodes_alive(self) -> bool:
        from ray.job_submission import JobSubmissionClient

        headers = self.auth
        reply = requests.get(f"{self.dashboard}/nodes?view=summary", headers=headers, timeout=10).json()
        alive = [n for n in reply["data"]["summary"] if n["raylet"]["state"] == "ALIVE"]
        if len(alive) < 2:
            return False
        JobSubmissionClient(self.dashboard, headers=headers).list_jobs()  # the Jobs API answers too
        return True

    def start_dispatcher(self, name: str = "dispatcher") -> Process:
        argv = service_command("dispatcher", self.hosts, self.runs) + ["--poll", "1"]
        return self._start(name, argv)

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        proc = Process(name, argv, {**self.env, **(env or {})}, self.logs, cwd=self.base)
        self.processes[name] = proc
        return proc

    def rubiks(self, *args: str, cwd: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(BIN, "rubiks"), *args], cwd=cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()
        if self.pgdata:
            subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.pgdata, "-m", "immediate", "stop"]),
                           capture_output=True)
        if os.environ.get("RUBIKS_KEEP_STACK") is None:
            shutil.rmtree(self.base, ignore_errors=True)
            shutil.rmtree(self.ray_temp, ignore_errors=True)


@pytest.fixture(scope="module")
def stack():
    if not os.path.exists(f"{PG_BIN}/initdb"):
        pytest.fail("PostgreSQL 15 server binaries are missing: scripts/test.sh installs them (apt-get install postgresql)")
    s = Stack()
    try:
        s.start_postgres()
        s.start_mlflow()
        s.start_ray()
        yield s
    finally:
        s.stop()
