"""docker-compose.yml is checked without a Docker engine: against the compose specification's
JSON schema (check-jsonschema's vendored copy), and each service's command against our CLI."""
import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from rubiks_service.cli import build_parser

from tests.helpers.reference import REPO_ROOT

from .services import COMPOSE, compose


def test_compose_file_matches_the_compose_specification():
    exe = shutil.which("check-jsonschema") or os.path.join(os.path.dirname(sys.executable), "check-jsonschema")
    if not os.path.exists(exe):
        pytest.skip("check-jsonschema is not installed")
    done = subprocess.run([exe, "--builtin-schema", "vendor.compose-spec", COMPOSE], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_services_and_exposure():
    services = compose()["services"]
    assert set(services) == {"postgres", "minio", "minio-bucket", "mlflow", "ray-head", "ray-gpu-worker", "dispatcher"}
    published = {name: svc.get("ports", []) for name, svc in services.items() if svc.get("ports")}
    # only the UI/API a user needs, and only on the host's loopback
    assert published == {"mlflow": ["127.0.0.1:5000:5000"], "ray-head": ["127.0.0.1:8265:8265"],
                         "postgres": ["127.0.0.1:5432:5432"], "minio": ["127.0.0.1:9000:9000"]}
    for name in ("mlflow", "ray-head", "ray-gpu-worker", "dispatcher"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name  # required, never defaulted off
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?"), name
    gpu = services["ray-gpu-worker"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["shm_size"]


def test_service_commands_match_the_cli():
    services = compose()["services"]
    dispatcher = shlex.split(services["dispatcher"]["command"])
    assert dispatcher[0] == "rubiks"
    args = build_parser().parse_args(dispatcher[1:])
    assert args.command == "serve" and args.address == "http://ray-head:8265"
    assert args.storage_path == "s3://${S3_BUCKET:-rubiks}/runs"  # no local folder, even for defaults

    head = shlex.split(services["ray-head"]["command"])
    assert head[:3] == ["ray", "start", "--head"] and "--port=6379" in head and "--dashboard-port=8265" in head
    worker = shlex.split(services["ray-gpu-worker"]["command"])
    assert worker == ["ray", "start", "--address=ray-head:6379", "--block"]

    mlflow = shlex.split(services["mlflow"]["command"])
    assert mlflow[:2] == ["mlflow", "server"]
    uri = mlflow[mlflow.index("--backend-store-uri") + 1]
    assert uri.startswith("postgresql+psycopg://") and "@postgres:5432/" in uri
    assert "--allowed-hosts" in mlflow
    # the queue and MLflow share the postgres service
    assert services["dispatcher"]["environment"]["RUBIKS_QUEUE_URL"].startswith("postgresql+psycopg://")


def test_dockerfile_installs_the_package_with_its_extension():
    with open(os.path.join(REPO_ROOT, "Dockerfile")) as f:
        text = f.read()
    assert "linux/amd64" in text and "--no-build-isolation" in text and "rubiks info" in text
    # Ubuntu 24.04 ships python3 = 3.12 and no python3.11 package
    assert "ubuntu24.04" in text and "python3.11" not in text and "python3 -m venv" in text


def test_every_secret_comes_from_dotenv_without_a_default():
    """Compose refuses to start while a secret is unset (`${VAR:?…}`): no password, token or key has a
    `:-` default or a literal value anywhere in the file."""
    with open(COMPOSE) as f:
        text = f.read()
    refs = re.findall(r"\$\{(\w+)(:-|:\?|)([^}]*)\}", text)
    secrets = {name for name, _, _ in refs if re.search(r"PASSWORD|TOKEN|SECRET", name)}
    assert secrets == {"POSTGRES_PASSWORD", "RAY_AUTH_TOKEN", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                       "S3_SECRET_ACCESS_KEY"}
    assert all(op == ":?" for name, op, _ in refs if name in secrets), [r for r in refs if r[0] in secrets]
    for name, svc in compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert str(value).startswith("${"), (name, key)  # never a literal secret
    with open(os.path.join(REPO_ROOT, ".gitignore")) as f:
        assert ".env" in f.read().split()  # the file that holds them is never committed


def test_mlflow_runs_its_basic_auth_app_and_no_service_runs_as_root():
    services = compose()["services"]
    mlflow = shlex.split(services["mlflow"]["command"])
    assert mlflow[mlflow.index("--app-name") + 1] == "basic-auth"
    env = services["mlflow"]["environment"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    mount, = services["mlflow"]["configs"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == mount["target"] and mount["mode"] == 0o400
    ini = configparser.ConfigParser()
    ini.read_string(compose()["configs"][mount["source"]]["content"])
    assert ini["mlflow"]["database_uri"].startswith("postgresql+psycopg://") and ini["mlflow"]["default_permission"]
    for name, svc in services.items():
        assert svc.get("user") not in (None, "root", "0"), name
    with open(os.path.join(REPO_ROOT, "Dockerfile")) as f:
        text = f.read()
    assert re.search(r"^USER rubiks$", text, re.MULTILINE) and "--uid 1000" in text


RUBIKS_SERVICES = ("mlflow", "ray-head", "ray-gpu-worker", "dispatcher")


def test_job_data_lives_in_the_object_store_not_on_a_shared_volume():
    """No folder is shared between services: the only storage outside the bucket is PostgreSQL's volume
    and MinIO's own data folder; every rubiks service reaches the bucket the standard AWS way, with the
    credentials from .env; MLflow keeps its artifacts in the bucket and serves them."""
    doc = compose()
    services = doc["services"]
    assert set(doc.get("volumes") or {}) == {"pgdata"}
    mounts = {name: svc.get("volumes", []) for name, svc in services.items() if svc.get("volumes")}
    assert set(mounts) == {"postgres", "minio"}, mounts  # no rubiks service mounts anything
    assert mounts["postgres"] == ["pgdata:/var/lib/postgresql/data"]
    data, = mounts["minio"]
    assert data["type"] == "bind" and data["target"] == "/data" and data["bind"]["create_host_path"] is False
    assert data["source"].startswith("${MINIO_DATA_DIR:?")
    with open(COMPOSE) as f:
        assert "/work/runs" not in f.read()  # the old shared job-data folder is named nowhere
    for name in RUBIKS_SERVICES:
        env = services[name]["environment"]
        assert env["AWS_ENDPOINT_URL"] == "${S3_ENDPOINT_URL:-http://minio:9000}", name
        assert env["AWS_ACCESS_KEY_ID"].startswith("${S3_ACCESS_KEY_ID:?"), name
        assert env["AWS_SECRET_ACCESS_KEY"].startswith("${S3_SECRET_ACCESS_KEY:?"), name
        assert env["AWS_DEFAULT_REGION"], name
        assert "volumes" not in services[name], name
    mlflow = shlex.split(services["mlflow"]["command"])
    assert mlflow[mlflow.index("--artifacts-destination") + 1] == "s3://${S3_BUCKET:-rubiks}/mlflow-artifacts"
    assert "--serve-artifacts" in mlflow  # clients get artifacts through the server, without S3 credentials
    assert services["mlflow"]["depends_on"]["minio-bucket"] == {"condition": "service_completed_successfully"}


def test_minio_and_its_bucket():
    services = compose()["services"]
    minio, bucket = services["minio"], services["minio-bucket"]
    assert re.fullmatch(r"quay\.io/minio/minio:RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z", minio["image"])  # pinned
    assert bucket["image"] == minio["image"] and not bucket.get("ports")
    assert shlex.split(minio["command"]) == ["server", "/data", "--address", ":9000"]
    assert minio["environment"]["MINIO_ROOT_USER"].startswith("${S3_ACCESS_KEY_ID:?")
    assert minio["environment"]["MINIO_ROOT_PASSWORD"].startswith("${S3_SECRET_ACCESS_KEY:?")
    assert "ready" in minio["healthcheck"]["test"]
    # the one-shot: mc (not the image's `minio` entrypoint) makes the bucket the services use, idempotently
    assert bucket["entrypoint"][0] == "mc" and bucket["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert bucket["command"] == ["mb", "--ignore-existing", "store/${S3_BUCKET:-rubiks}"]
    assert bucket["environment"]["MC_HOST_store"].endswith("@minio:9000")
