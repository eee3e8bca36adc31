"""The deployment's services, started for real on this machine the way docker-compose.yml starts
them: each command is read from the compose file, with its host names mapped to 127.0.0.1, free
ports, and a temporary folder for /work/runs. PostgreSQL is Debian's server binaries (the
compose file's `postgres` image has no command of its own: initdb + pg_ctl with its user,
password and database). Every process runs in its own process group and the whole group is
stopped at the end (MLflow's server and `ray start` leave children)."""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests
import yaml

from tests.helpers.training import colour_data  # noqa: F401  (shared fixture: small real mp4 dataset)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = "/usr/lib/postgresql/15/bin"
BIN = os.path.dirname(sys.executable)  # mlflow, ray and rubiks of this environment


def compose() -> dict:
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


def _defaults(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${VAR:-default}` / `${VAR:?msg}` from `env` (the `.env` file's role), else the default."""
    env = os.environ if env is None else env

    def sub(m: re.Match) -> str:
        name, op, rest = m.group(1), m.group(2), m.group(3)
        return env.get(name) or (rest if op == ":-" else "")
    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", sub, text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_command(name: str, hosts: dict[str, str], runs: str, dotenv: dict[str, str] | None = None) -> list[str]:
    """The compose service's command as argv: host:port pairs mapped, 0.0.0.0 -> 127.0.0.1,
    /work/runs -> `runs`, our environment's executables; `dotenv` plays compose's .env file."""
    text = _defaults(compose()["services"][name]["command"], dotenv or {})
    for old, new in hosts.items():
        text = text.replace(old, new)
    text = text.replace("0.0.0.0", "127.0.0.1").replace("/work/runs", runs)
    argv = shlex.split(text)
    exe = os.path.join(BIN, argv[0])
    return [exe if os.path.exists(exe) else argv[0], *argv[1:]]


def service_env(name: str, hosts: dict[str, str], dotenv: dict[str, str]) -> dict[str, str]:
    env = {}
    for key, value in compose()["services"][name].get("environment", {}).items():
        value = _defaults(str(value), dotenv)
        for old, new in hosts.items():
            value = value.replace(old, new)
        env[key] = value
    return env


class Process:
    """A service process in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: str, cwd: str | None = None):
        self.name, self.argv = name, argv
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self, tail: int = 4000) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-tail:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, grace: float = 10.0) -> None:
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill(signal.SIGKILL)  # whatever of the group is left
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()


def wait_for(check, what: str, timeout: float, proc: Process | None = None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"{what}: {proc.name} exited with {proc.proc.returncode}:\n{proc.log()}")
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(1.0)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last: {last})" + (f"\n{proc.log()}" if proc else ""))


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Stack:
    def __init__(self) -> None:
        self.token = uuid.uuid4().hex  # the cluster's Ray token, as `.env` would hold it
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
        env.update(service_env("dispatcher", self.hosts, {"RAY_AUTH_TOKEN": self.token}))
        assert env["RAY_AUTH_TOKEN"] == self.token
        env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
        env.pop("RAY_ADDRESS", None)
        return env

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

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
        user, password, db = pg["POSTGRES_USER"], _defaults(pg["POSTGRES_PASSWORD"]), pg["POSTGRES_DB"]
        self.pgdata = os.path.join(self.base, "pgdata")
        pwfile = os.path.join(self.base, "pgpass")
        with open(pwfile, "w") as f:
            f.write(password)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(pwfile, "postgres")
        subprocess.run(_as_postgres([f"{PG_BIN}/initdb", "-D", self.pgdata, "-U", user, f"--pwfile={pwfile}",
                                     "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        port = self.ports["postgres"]
        subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.pgdata, "-l", os.path.join(self.pgdata, "server.log"),
                                     "-o", f"-p {port} -k {self.pgdata} -c listen_addresses=127.0.0.1", "-w", "start"]),
                       check=True, capture_output=True)
        subprocess.run(_as_postgres([f"{PG_BIN}/createdb", "-h", self.pgdata, "-p", str(port), "-U", user, db]),
                       check=True, capture_output=True)

    def start_mlflow(self) -> None:
        # one server process (.env's MLFLOW_WORKERS=1): on a loaded 2-core machine uvicorn's
        # supervisor kills slow-starting workers of a multi-process server
        argv = service_command("mlflow", self.hosts, self.runs, {"MLFLOW_WORKERS": "1"})
        proc = self._start("mlflow", argv)
        wait_for(lambda: requests.get(f"{self.tracking_uri}/health", timeout=5).ok, "mlflow server", 300, proc)

    def start_ray(self) -> None:
        head = service_command("ray-head", self.hosts, self.runs)
        # two nodes on one machine need their own agent / client ports (the compose nodes are separate hosts)
        per_node = lambda: [f"--dashboard-agent-listen-port={free_port()}", "--node-ip-address=127.0.0.1",  # noqa: E731
                            f"--ray-client-server-port={free_port()}", "--num-cpus=2"]
        # its own temp dir: `ray start` writes the cluster's address to <temp>/ray_current_cluster, and
        # Ray Jobs of any later local cluster under the default /tmp/ray would resolve "auto" to this one
        proc = self._start("ray-head", [*head, *per_node(), f"--temp-dir={self.ray_temp}"])
        wait_for(lambda: requests.get(f"{self.dashboard}/api/version", headers=self.auth, timeout=5).ok,
                 "ray head dashboard", 180, proc)
        worker = service_command("ray-gpu-worker", self.hosts, self.runs)
        self._start("ray-worker", [*worker, *per_node()])
        wait_for(self._two_nodes_alive, "two Ray nodes", 180, self.processes["ray-worker"])

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

    def _start(self, name: str, argv: list[str]) -> Process:
        proc = Process(name, argv, self.env, self.logs, cwd=self.base)
        self.processes[name] = proc
        return proc

    def rubiks(self, *args: str, cwd: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(BIN, "rubiks"), *args], cwd=cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()
        if self.pgdata:
            subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.pgdata, "-m", "immediate", "stop"]),
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
