"""How the stack test runs the compose file's services as processes: the compose file read,
`${VAR:-default}` / `${VAR:?…}` resolved from a `.env` the test makes (secrets only there), configs written, host names and ports mapped to this machine, each service a process in
its own group (stopped as a whole), and polling until a service answers."""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import yaml

from tests.helpers.reference import REPO_ROOT

PG_BIN = "/usr/lib/postgresql/15/bin"
BIN = os.path.dirname(sys.executable)  # mlflow, ray and rubiks of this environment


COMPOSE = os.path.join(REPO_ROOT, "docker-compose.yml")


def compose() -> dict:
    with open(COMPOSE) as f:
        return yaml.safe_load(f)  # resolves the <<: merge keys the way compose does


class MissingSetting(KeyError):
    """A `${VAR:?message}` with VAR unset: compose refuses to start."""


def resolve_defaults(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${VAR:-default}` / `${VAR:?msg}` from `env` (the `.env` file's role): a `:-` default when
    VAR is unset, `MissingSetting` for a `:?` one, as `docker compose` refuses to start then."""
    env = os.environ if env is None else env

    def sub(m: re.Match) -> str:
        name, op, rest = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise MissingSetting(f"{name}: {rest}")
        return rest if op == ":-" else ""
    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", sub, text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_command(name: str, hosts: dict[str, str], dotenv: dict[str, str] | None = None) -> list[str]:
    """The compose service's command as argv: host:port pairs mapped, 0.0.0.0 -> 127.0.0.1, our
    environment's executables; `dotenv` plays compose's .env file. (No folder is mapped: the services
    share none, their job data is in the object store.)"""
    text = _mapped(compose()["services"][name]["command"], hosts, dotenv or {})
    text = text.replace("0.0.0.0", "127.0.0.1")
    argv = shlex.split(text)
    exe = os.path.join(BIN, argv[0])
    return [exe if os.path.exists(exe) else argv[0], *argv[1:]]


def _mapped(text: str, hosts: dict[str, str], dotenv: dict[str, str]) -> str:
    """`${…}` resolved, then every `hosts` key replaced in one pass (a replacement is never matched again:
    a free port such as 127.0.0.1:50012 must not be taken for 127.0.0.1:5000)."""
    text = resolve_defaults(text, dotenv)
    pattern = "|".join(re.escape(old) for old in sorted(hosts, key=len, reverse=True))
    return re.sub(pattern, lambda m: hosts[m.group(0)], text) if hosts else text


def service_env(name: str, hosts: dict[str, str], dotenv: dict[str, str]) -> dict[str, str]:
    return {key: _mapped(str(value), hosts, dotenv)
            for key, value in compose()["services"][name].get("environment", {}).items()}


def write_configs(name: str, hosts: dict[str, str], dotenv: dict[str, str], folder: str) -> dict[str, str]:
    """The compose `configs` a service mounts, written into `folder` (mode 0600, as compose's `mode`
    keeps them private); {target path in the container: path here}."""
    top = compose().get("configs", {})
    written = {}
    for mount in compose()["services"][name].get("configs", []):
        path = os.path.join(folder, os.path.basename(mount["target"]))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_mapped(top[mount["source"]]["content"], hosts, dotenv))
        written[mount["target"]] = path
    return written


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


def as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv
