"""Where a SQLite store's artifacts go: beside its database, whatever the working directory."""
import os

from rubiks_service.tracking.mlflow_store import make_client, tracked_run


def test_sqlite_artifacts_live_beside_the_database(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = "sqlite:///" + str(tmp_path / "store" / "mlflow.db")
    client = make_client(uri)
    (tmp_path / "note.txt").write_text("hello")
    with tracked_run(client, "exp", "run") as run_id:
        client.log_artifact(run_id, str(tmp_path / "note.txt"))
    assert client.get_run(run_id).info.artifact_uri.startswith("file://" + str(tmp_path / "store" / "mlartifacts"))
    assert os.path.exists(tmp_path / "store" / "mlartifacts") and not os.path.exists(elsewhere / "mlruns")
    assert client.download_artifacts(run_id, "note.txt", str(tmp_path)).endswith("note.txt")
