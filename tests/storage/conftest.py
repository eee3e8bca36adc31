"""Fixtures of the object-storage tests: the session's moto S3 server (`s3_server`, tests/helpers/s3.py,
from tests/conftest.py) and a small real-mp4 dataset in its bucket."""
import csv
import os

import numpy as np
import pytest

from tests.helpers.training import COLOURS, _write_split


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process pointed at the S3 server as its user."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(scope="session")
def s3_colours(s3_server, tmp_path_factory):
    """colour_data's task at a smaller size (6 train + 3 val videos per class), uploaded under colours/ in
    the bucket with train.csv, val.csv and classes.txt: train rows relative to the manifest's prefix, val
    rows full s3:// URIs. `local` is the same data on disk."""
    root = str(tmp_path_factory.mktemp("s3-colours"))
    rng = np.random.default_rng(0)
    local = {"root": root, "train": _write_split(root, "train", 6, rng), "val": _write_split(root, "val", 3, rng)}
    uri = f"s3://{s3_server.bucket}/colours"
    with open(local["val"], newline="") as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(root, "val.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "path": f"{uri}/{r['path']}"} for r in rows)
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("\n".join(COLOURS) + "\n")
    s3_server.upload_tree(root, "colours")
    return {"prefix": uri, "train": f"{uri}/train.csv", "val": f"{uri}/val.csv", "local": local}
