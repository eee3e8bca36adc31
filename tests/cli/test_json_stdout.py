"""`--json`: stdout holds only the JSON (train and sweep send their Ray/Tune output to a log file, cli/run_log).
Each command's stdout is parsed; `json_stdout` is also checked at the file-descriptor level, where Ray's
processes and C libraries write."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from rubiks_service.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("json")
    (d / "k.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,abc,10,20,train\n")
    (d / "ok.csv").write_text("path,label\nx.mp4,a\ny.mp4,b\n")
    (d / "cfg.yaml").write_text(yaml.safe_dump({"data": {"train_manifest": "ok.csv", "val_manifest": "ok.csv"},
                                                "storage_path": str(d / "runs")}))
    (d / "job.yaml").write_text(yaml.safe_dump({"name": "j", "kind": "train", "config": "cfg.yaml"}))
    return d


def _json_of(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1), err  # 1: data inspect's unreadable videos
    return json.loads(out)  # fails on anything beside the JSON


def test_every_command_prints_only_json(folder, capsys):
    q = ["--storage-path", str(folder / "q")]
    assert set(_json_of(["info", "--json"], capsys)) >= {"torch", "kernels"}
    assert _json_of(["profile", "rubiksnet-nano", "--size", "32", "--frames", "4", "--json"], capsys)["macs"] > 0
    synth = _json_of(["data", "synth", str(folder / "synth"), "--train-per-class", "1", "--val-per-class", "1",
                      "--frames", "4", "--size", "16", "--json"], capsys)
    assert set(synth) >= {"train", "val"}
    assert _json_of(["data", "prepare", "kinetics", str(folder / "k.csv"), "--out", str(folder / "k-out.csv"),
                     "--json"], capsys)["rows"] == 1
    assert _json_of(["data", "inspect", synth["train"], "--json"], capsys)["videos"] >= 2
    job = _json_of(["submit", str(folder / "job.yaml"), "--json", *q], capsys)
    assert job["state"] == "queued"
    assert [j["id"] for j in _json_of(["jobs", "list", "--json", *q], capsys)] == [job["id"]]
    assert _json_of(["jobs", "status", job["id"], *q], capsys)["id"] == job["id"]
    assert _json_of(["jobs", "migrate", "--json", *q], capsys)["revision"]


def test_json_stdout_sends_everything_else_to_stderr():
    """Python prints, a child process and C-level writes to descriptor 1 land on stderr; the result alone
    on stdout."""
    code = ("import os, sys\n"
            "from rubiks_service.cli._common import json_stdout, print_json\n"
            "with json_stdout(True):\n"
            "    print('a python print')\n"
            "    os.system('echo a child process')\n"
            "    os.write(1, b'a raw write\\n')\n"
            "    print_json({'result': 1})\n"
            "print('after: stdout again')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{\n  "result": 1\n}\nafter: stdout again\n'
    for noise in ("a python print", "a child process", "a raw write"):
        assert noise in done.stderr
