"""Bad input, as a careless user or an attacker gives it: every case is one line on stderr naming the
problem, exit status 2, nothing on stdout, no traceback, no secret, and nothing queued, loaded or run.
One table; each case runs `rubiks` in this process (the files it reads are made once, below)."""
from __future__ import annotations

import json
import os

import pytest
import torch
import yaml

from rubiks_service.cli import main

SECRET = "Sup3rSecretPW"  # in every URL a case gives: it must never be shown


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from rubiks_service.train.config import DataConfig, TrainConfig

    from tests.crafted import write_crafted_checkpoint

    d = tmp_path_factory.mktemp("bad-input")
    f = {"dir": str(d), "marker": str(d / "pwned"), "folder": str(d / "a-folder")}
    os.mkdir(f["folder"])
    (d / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (d / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "ok.csv").write_text("path,label\nx.mp4,a\ny.mp4,b\n")
    (d / "bin.csv").write_bytes(b"path,label\n\x00\xff\xfe\x00garbage\n")
    (d / "latin1.csv").write_bytes("path,label\nx.mp4,caf\xe9\n".encode("latin-1"))
    (d / "frames.csv").write_text("path,label,num_frames\nx.mp4,a,ten\n")
    (d / "huge-label.csv").write_text("path,label\nx.mp4,99999999999\n")
    (d / "nolabels.csv").write_text("file,class\nx.mp4,a\n")

    def config(name, **extra):
        tree = {"name": name, "storage_path": str(d / "runs"),
                "data": {"train_manifest": str(d / "ok.csv"), "val_manifest": str(d / "ok.csv")}} | extra
        path = d / f"{name}.yaml"
        path.write_text(yaml.safe_dump(tree))
        return str(path)

    f["cfg"] = config("ok")
    f["cfg_tracking"] = config("tracking", tracking_uri=f"http://user:{SECRET}@mlflow.example:5000")
    f["cfg_bad_manifest"] = config("badmanifest", data={"train_manifest": str(d / "bin.csv"),
                                                         "val_manifest": str(d / "ok.csv")})
    f["cfg_folder_manifest"] = config("foldermanifest", data={"train_manifest": f["folder"],
                                                               "val_manifest": str(d / "ok.csv")})
    f["cfg_no_rows"] = config("norows", data={"train_manifest": str(d / "nolabels.csv"),
                                              "val_manifest": str(d / "ok.csv")})
    # a run whose checkpoint folder holds a crafted pickle, and one holding a safe but wrong file
    for name, writer in (("resume-crafted", lambda p: write_crafted_checkpoint(p, f["marker"])),
                         ("resume-malformed", lambda p: torch.save({"model": 3, "epoch": "x"}, p))):
        f[f"cfg_{name}"] = config(name)
        os.makedirs(d / "runs" / name / "checkpoint_000000")
        writer(d / "runs" / name / "checkpoint_000000" / "checkpoint.pt")
    (d / "job.yaml").write_text(yaml.safe_dump({"name": "j", "kind": "train", "config": "ok.yaml"}))

    cfg = TrainConfig(data=DataConfig(train_manifest="a.csv", val_manifest="a.csv")).model_dump(mode="json")
    torch.save({"config": cfg, "classes": ["a", "b"], "model": 5}, d / "model-int.pt")
    torch.save({"config": cfg, "classes": None, "model": {}}, d / "classes-none.pt")
    torch.save({"tier": "nano", "num_classes": 10**11, "num_frames": 4, "variant": "rs", "model": {}},
               d / "huge-classes.pt")
    torch.save([1, 2, 3], d / "a-list.pt")
    f["crafted"] = write_crafted_checkpoint(d / "crafted.pt", f["marker"])
    f["store"] = _mlflow_store(d)
    return f


def _mlflow_store(d) -> dict:
    """Runs whose logged `model` folder holds a crafted MLmodel each (what a registry writer could log)."""
    from rubiks_service.tracking.mlflow_store import make_client

    uri = f"sqlite:///{d}/mlflow.db"
    client = make_client(uri)  # as every command makes it: the database file private
    exp = client.create_experiment("bad", artifact_location=f"file://{d}/artifacts")
    weights = d / "outside.pt"
    torch.save({"tier": "nano"}, weights)
    mlmodels = {"list": "- a\n- b\n", "string": "just a string\n", "bad-yaml": "flavors: [unclosed\n",
                "no-artifact": "flavors: {python_function: {}}\n",
                "absolute": yaml.safe_dump({"flavors": {"python_function": {"artifacts": {"checkpoint": {
                    "path": str(weights)}}}}}),
                "dotdot": yaml.safe_dump({"flavors": {"python_function": {"artifacts": {"checkpoint": {
                    "path": "../../../../../../../../" + str(weights).lstrip("/")}}}}})}
    runs = {}
    for kind, text in mlmodels.items():
        run = client.create_run(exp).info.run_id
        folder = d / f"mlmodel-{kind}"
        folder.mkdir()
        (folder / "MLmodel").write_text(text)
        client.log_artifacts(run, str(folder), "model")
        client.set_terminated(run)
        runs[kind] = f"runs:/{run}/model"
    return {"uri": uri, "runs": runs}


def _store(f):
    return ["--tracking-uri", f["store"]["uri"]]


# (case id, argv from the files, what the one line must say)
CASES = [
    # configs: binary, not UTF-8, a folder, not a mapping, refused keys, values that cannot work
    ("train-binary-config", lambda f: ["train", f"{f['dir']}/binary.yaml"], "binary.yaml"),
    ("train-latin1-config", lambda f: ["train", f"{f['dir']}/latin1.yaml"], "not a text file in UTF-8"),
    ("train-folder-config", lambda f: ["train", f["folder"]], "is a folder"),
    ("submit-folder-spec", lambda f: ["submit", f["folder"], "--storage-path", f"{f['dir']}/q"], "is a folder"),
    ("train-list-config", lambda f: ["train", f"{f['dir']}/list.yaml"], "must be a mapping"),
    ("train-tracking-uri-in-config", lambda f: ["train", f["cfg_tracking"]], "tracking_uri is not read from a config"),
    ("train-crop-100000", lambda f: ["train", f["cfg"], "--set", "data.crop_size=100000"], "data.crop_size"),
    ("train-lr-inf", lambda f: ["train", f["cfg"], "--set", "optim.lr=.inf"], "optim.lr"),
    ("train-lr-nan", lambda f: ["train", f["cfg"], "--set", "optim.lr=.nan"], "optim.lr"),
    ("train-batch-huge", lambda f: ["train", f["cfg"], "--set", "data.batch_size=100000000"], "data.batch_size"),
    ("train-frames-zero", lambda f: ["train", f["cfg"], "--set", "data.segments=0"], "data.segments"),
    ("train-frames-not-int", lambda f: ["train", f["cfg"], "--set", "data.segments=eight"], "data.segments"),
    ("train-bad-override-yaml", lambda f: ["train", f["cfg"], "--set", "optim.lr=[unclosed"], "not valid YAML"),
    ("submit-priority-huge", lambda f: ["submit", f"{f['dir']}/job.yaml", "--priority", "10000000",
                                        "--storage-path", f"{f['dir']}/q"], "priority"),
    # manifests given to train (before Ray starts) and to data inspect
    ("train-binary-manifest", lambda f: ["train", f["cfg_bad_manifest"]], "bin.csv"),
    ("train-folder-manifest", lambda f: ["train", f["cfg_folder_manifest"]], "a-folder"),
    ("train-manifest-no-rows", lambda f: ["train", f["cfg_no_rows"]], "nolabels.csv"),
    ("inspect-latin1-manifest", lambda f: ["data", "inspect", f"{f['dir']}/latin1.csv", "--no-check"], "latin1.csv"),
    ("inspect-num-frames-not-int", lambda f: ["data", "inspect", f"{f['dir']}/frames.csv", "--no-check"],
     "num_frames 'ten'"),
    # resuming from a crafted or malformed checkpoint: refused once, before Ray starts
    ("train-resume-crafted", lambda f: ["train", f["cfg_resume-crafted"]], "refused to load"),
    ("train-resume-malformed", lambda f: ["train", f["cfg_resume-malformed"]], "cannot resume from"),
    # model files: crafted, safe-to-load but malformed, absurd sizes
    ("predict-crafted", lambda f: ["predict", f["crafted"], "x.mp4"], "refused to load"),
    ("predict-model-int", lambda f: ["predict", f"{f['dir']}/model-int.pt", "x.mp4"], "not a usable checkpoint"),
    ("predict-classes-none", lambda f: ["predict", f"{f['dir']}/classes-none.pt", "x.mp4"], "classes"),
    ("predict-huge-num-classes", lambda f: ["predict", f"{f['dir']}/huge-classes.pt", "x.mp4"], "num_classes"),
    ("predict-a-list", lambda f: ["predict", f"{f['dir']}/a-list.pt", "x.mp4"], "not a RubiksNet checkpoint"),
    ("predict-size-negative", lambda f: ["predict", f["crafted"], "x.mp4", "--size", "-5"], "--size"),
    ("export-out-folder", lambda f: ["export", f["crafted"], "--format", "onnx", "--out", f["folder"]], "is a folder"),
    ("profile-size-zero", lambda f: ["profile", "rubiksnet-tiny", "--size", "0"], "--size"),
    ("profile-frames-zero", lambda f: ["profile", "rubiksnet-tiny", "--frames", "0"], "--frames"),
    # crafted MLmodels: malformed, or naming a weights file outside the downloaded model folder
    *[(f"predict-mlmodel-{kind}", (lambda kind: lambda f: ["predict", f["store"]["runs"][kind], "x.mp4", *_store(f)])(kind),
       expected) for kind, expected in (("list", "no 'checkpoint' artifact path"), ("string", "no 'checkpoint'"),
                                        ("bad-yaml", "not valid YAML"), ("no-artifact", "no 'checkpoint'"),
                                        ("absolute", "outside the model's folder"),
                                        ("dotdot", "outside the model's folder"))],
    # queue URLs: a bad port, in memory, no scheme (with a password), an unknown job, a bad state
    ("jobs-bad-port", lambda f: ["jobs", "list", "--queue-url", f"postgresql+psycopg://u:{SECRET}@127.0.0.1:99999/q"],
     "port 99999"),
    ("jobs-port-not-number", lambda f: ["jobs", "list", "--queue-url", f"postgresql+psycopg://u:{SECRET}@h:x/q"],
     "not usable"),
    ("submit-sqlite-memory", lambda f: ["submit", f"{f['dir']}/job.yaml", "--queue-url", "sqlite://"], "in-memory"),
    ("jobs-schemeless-url", lambda f: ["jobs", "list", "--queue-url", f"rubiks:{SECRET}@db.example:5432/rubiks"],
     "rubiks:***@db.example"),
    ("jobs-unknown-id", lambda f: ["jobs", "status", "rubiks-train-nope", "--storage-path", f"{f['dir']}/q"],
     "no job 'rubiks-train-nope'"),
    # services that cannot be reached: one line, credentials masked, within seconds
    ("submit-ray-unreachable", lambda f: ["submit", f"{f['dir']}/job.yaml", "--storage-path", f"{f['dir']}/q",
                                          "--address", f"http://user:{SECRET}@127.0.0.1:9"], "user:***@127.0.0.1:9"),
    ("submit-gcs-address", lambda f: ["submit", f"{f['dir']}/job.yaml", "--storage-path", f"{f['dir']}/q",
                                      "--address", f"ray://user:{SECRET}@127.0.0.1:10001"], "GCS address"),
    ("pareto-mlflow-unreachable", lambda f: ["pareto", "--tracking-uri", f"http://user:{SECRET}@127.0.0.1:9"],
     "cannot reach the MLflow server at http://user:***@127.0.0.1:9"),
    ("predict-mlflow-unreachable", lambda f: ["predict", "runs:/abc/model", "x.mp4", "--tracking-uri",
                                              f"https://user:{SECRET}@127.0.0.1:9"], "user:***@127.0.0.1:9"),
]


@pytest.mark.parametrize("case, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_one_line_and_exit_2(case, argv, expected, files, capsys):
    code = main(argv(files))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rubiks ") and expected in lines[0], err
    assert "Traceback" not in err and SECRET not in err and out == ""
    assert not os.path.exists(files["marker"])  # no crafted payload ran
    if case.startswith("submit"):  # nothing was queued
        queue = os.path.join(files["dir"], "q", "queue.db")
        if os.path.exists(queue):
            assert main(["jobs", "list", "--json", "--storage-path", os.path.join(files["dir"], "q")]) == 0
            assert json.loads(capsys.readouterr().out) == []


def test_argparse_refuses_values_outside_the_choices(files, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["jobs", "list", "--state", "bogus", "--storage-path", f"{files['dir']}/q"])
    assert exit_.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err


def test_a_label_is_a_class_of_its_own_not_a_range(files, capsys):
    """One row labelled 99999999999 and no classes.txt: one class (the label present), not 10^11."""
    assert main(["data", "inspect", f"{files['dir']}/huge-label.csv", "--no-check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == 1 and report["counts_per_class"] == {"99999999999": 1}


def test_files_the_queue_and_tracking_create_are_private(files):
    """The SQLite queue (every job's configs) and MLflow store the commands create: readable by their owner only."""
    for path in (os.path.join(files["dir"], "q", "queue.db"), files["store"]["uri"].removeprefix("sqlite:///")):
        assert os.stat(path).st_mode & 0o777 == 0o600, path
