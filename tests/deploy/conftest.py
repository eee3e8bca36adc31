"""The deployment's services, started for real on this machine the way docker-compose.yml starts
them: each command is read from the compose file, with its host names mapped to 127.0.0.1 and free
ports. PostgreSQL is Debian's server binaries (the compose file's `postgres` image has no command of
its own: initdb + pg_ctl with its user, password and database). The object store is moto's S3 server
in MinIO's place, a process of its own as MinIO is a container of its own: `minio:9000` maps to it,
.env holds its keys, and the stack makes its bucket as compose's one-shot `minio-bucket` does. It runs
without moto's IAM checks: those cannot check the presigned URLs MLflow's server hands out for artifact
downloads (moto reads only the Authorization header and fails them with a 500), which MinIO checks.

No two services share a folder, as no two compose containers do: each process has its own working
folder, HOME and TMPDIR, and each Ray node its own --temp-dir (Ray takes it on a non-head node too;
without it a node on the head's machine would use the head's). Every process runs in its own process
group and the whole group is stopped at the end (MLflow's server and `ray start` leave children)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
import requests

from tests.helpers.s3 import S3Server
from tests.helpers.training import colour_data  # noqa: F401  (shared fixture: small real mp4 dataset)

from .services import (BIN, PG_BIN, Process, as_postgres, compose, free_port, service_command, service_env,
                       wait_for, write_configs)

class Stack:
    def __init__(self) -> None:
        # MinIO's stand-in (started by start_object_store), with .env's keys
        self.s3 = S3Server(f"http://127.0.0.1:{free_port()}", f"rubiks{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
        self.token = uuid.uuid4().hex  # the cluster's Ray token
        # what `.env` holds: docker-compose.yml takes every secret from it and defaults none
        self.dotenv = {"RAY_AUTH_TOKEN": self.token, "POSTGRES_PASSWORD": uuid.uuid4().hex,
                       "MLFLOW_ADMIN_PASSWORD": uuid.uuid4().hex, "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
                       "S3_ACCESS_KEY_ID": self.s3.key_id, "S3_SECRET_ACCESS_KEY": self.s3.secret, "S3_BUCKET": self.s3.bucket}
        self.base = tempfile.mkdtemp(prefix="rubiks-stack-")
        os.chmod(self.base, 0o755)
        self.logs = os.path.join(self.base, "logs")
        os.makedirs(self.logs)
        self.ports = {"postgres": free_port(), "mlflow": free_port(), "gcs": free_port(), "dashboard": free_port()}
        self.hosts = {"postgres:5432": f"127.0.0.1:{self.ports['postgres']}",
                      "minio:9000": self.s3.endpoint.removeprefix("http://"),
                      "mlflow:5000": f"127.0.0.1:{self.ports['mlflow']}",
                      "ray-head:6379": f"127.0.0.1:{self.ports['gcs']}",
                      "ray-head:8265": f"127.0.0.1:{self.ports['dashboard']}",
                      "--port 5000": f"--port {self.ports['mlflow']}",
                      "127.0.0.1:5000": f"127.0.0.1:{self.ports['mlflow']}",
                      "--port=6379": f"--port={self.ports['gcs']}",
                      "--dashboard-port=8265": f"--dashboard-port={self.ports['dashboard']}"}
        self.processes: dict[str, Process] = {}
        self.folders: dict[str, dict[str, str]] = {}  # service -> its own folders (see `folders_of`)
        self.pgdata = None

    # --- URLs a user of the deployment has ------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """The environment every rubiks service of the compose file gets (RAY_AUTH_TOKEN from .env): a
        user's shell with the deployment's settings."""
        return self.env_of("dispatcher")

    def env_of(self, service: str) -> dict[str, str]:
        """What `service`'s container environment holds (compose's `environment`), over this process's."""
        env = dict(os.environ)
        env.update(service_env(service, self.hosts, self.dotenv))
        assert env["RAY_AUTH_TOKEN"] == self.token and env["MLFLOW_TRACKING_PASSWORD"] == self.dotenv["MLFLOW_ADMIN_PASSWORD"]
        assert env["AWS_ENDPOINT_URL"] == self.s3.endpoint and env["AWS_SECRET_ACCESS_KEY"] == self.s3.secret
        env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
        env["AWS_EC2_METADATA_DISABLED"] = "true"  # no cloud VM here: the SDK would probe its metadata service
        env.pop("RAY_ADDRESS", None)
        return env

    def folders_of(self, service: str, ray_temp: bool = False) -> dict[str, str]:
        """`service`'s own folders, as its container's filesystem would be: its working folder, HOME and
        TMPDIR, and for a Ray node its --temp-dir (short: Ray's socket paths live under it)."""
        root = os.path.join(self.base, "services", service)
        folders = {name: os.path.join(root, name) for name in ("work", "home", "tmp")}
        for path in folders.values():
            os.makedirs(path)
        if ray_temp:
            folders["ray_temp"] = tempfile.mkdtemp(prefix="rs-ray-")
        self.folders[service] = folders
        return folders

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

    def start_object_store(self) -> None:
        port = self.s3.endpoint.rsplit(":", 1)[1]
        folders = self.folders_of("minio")
        env = {**os.environ, "HOME": folders["home"], "TMPDIR": folders["tmp"]}
        proc = Process("minio", [os.path.join(BIN, "moto_server"), "-H", "127.0.0.1", "-p", port], env, self.logs,
                       cwd=folders["work"])
        self.processes["minio"] = proc
        wait_for(lambda: requests.get(self.s3.endpoint, timeout=5).status_code < 500, "S3 server", 120, proc)
        self.s3.client().create_bucket(Bucket=self.s3.bucket)

    def start_mlflow(self) -> None:
        # one server process (.env's MLFLOW_WORKERS=1): on a loaded 2-core machine uvicorn's
        # supervisor kills slow-starting workers of a multi-process server
        argv = service_command("mlflow", self.hosts, {**self.dotenv, "MLFLOW_WORKERS": "1"})
        # the basic-auth app: its settings file (compose's `configs`) and the admin it creates, from .env
        configs = write_configs("mlflow", self.hosts, self.dotenv, self.base)
        env = {key: configs.get(value, value) for key, value in self.env_of("mlflow").items()}
        proc = self._start("mlflow", argv, env)
        wait_for(lambda: requests.get(f"{self.tracking_uri}/health", timeout=5).ok, "mlflow server", 300, proc)

    def start_ray(self) -> None:
        # two nodes on one machine need their own agent / client ports (the compose nodes are separate
        # hosts) and their own --temp-dir: without it a non-head node uses the head's. (Also, `ray start`
        # writes the cluster's address to <temp>/ray_current_cluster: Ray Jobs of any later local cluster
        # under the default /tmp/ray would resolve "auto" to this one.) The head has 1 CPU: a sweep's two
        # 1-CPU trials cannot both train there, so one runs on the other node.
        def per_node(folders: dict[str, str], cpus: int) -> list[str]:
            return [f"--dashboard-agent-listen-port={free_port()}", "--node-ip-address=127.0.0.1",
                    f"--ray-client-server-port={free_port()}", f"--num-cpus={cpus}", f"--temp-dir={folders['ray_temp']}"]

        head = self.folders_of("ray-head", ray_temp=True)
        self._start_until_up("ray-head", [*service_command("ray-head", self.hosts), *per_node(head, 1)],
                             "ray head dashboard",
                             lambda: requests.get(f"{self.dashboard}/api/version", headers=self.auth, timeout=5).ok)
        worker = self.folders_of("ray-gpu-worker", ray_temp=True)
        self._start_until_up("ray-gpu-worker", [*service_command("ray-gpu-worker", self.hosts), *per_node(worker, 2)],
                             "two Ray nodes", self._two_nodes_alive)

    def _start_until_up(self, name: str, argv: list[str], what: str, check, attempts: int = 3) -> None:
        """Start a Ray node and wait until `check` passes; a node that gives up during start-up ("timed out
        during startup", "Deadline Exceeded": Ray's own start-up deadlines, missed on a loaded machine) is
        started again, as compose's restart would."""
        for attempt in range(1, attempts + 1):
            proc = self._start(name, argv, log_name=name if attempt == 1 else f"{name}-{attempt}")
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
        argv = service_command("dispatcher", self.hosts, self.dotenv) + ["--poll", "1"]
        return self._start("dispatcher", argv, log_name=name)

    def _start(self, service: str, argv: list[str], env: dict[str, str] | None = None,
               log_name: str | None = None) -> Process:
        """`service` as a process in its own folders (made on its first start, kept across restarts)."""
        folders = self.folders.get(service) or self.folders_of(service)
        env = {**self.env_of(service), **(env or {}), "HOME": folders["home"], "TMPDIR": folders["tmp"]}
        proc = Process(log_name or service, argv, env, self.logs, cwd=folders["work"])
        self.processes[log_name or service] = proc
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
            for folders in self.folders.values():
                if "ray_temp" in folders:
                    shutil.rmtree(folders["ray_temp"], ignore_errors=True)


@pytest.fixture(scope="module")
def stack():
    if not os.path.exists(f"{PG_BIN}/initdb"):
        pytest.fail("PostgreSQL 15 server binaries are missing: scripts/test.sh installs them (apt-get install postgresql)")
    s = Stack()
    try:
        s.start_object_store()
        s.start_postgres()
        s.start_mlflow()
        s.start_ray()
        yield s
    finally:
        s.stop()
