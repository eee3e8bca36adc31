"""Training-test helpers shared by every test package: an easy real-mp4 dataset, a config
writer, and a local Ray instance with the dashboard (its state API lets Tune and Train clean up
killed actors). A package's conftest imports the fixtures it wants from here."""
import csv
import os

import numpy as np
import pytest
import yaml

from rubiks_service.data.synth import write_mp4

COLOURS = {"red": (200, 40, 40), "blue": (40, 40, 200)}


def _write_split(root: str, split: str, per_class: int, rng: np.random.Generator) -> str:
    rows = []
    for label, colour in COLOURS.items():
        for i in range(per_class):
            frames = np.clip(np.array(colour)[None, None, None] + rng.normal(0, 40, (8, 32, 32, 3)), 0, 255)
            rel = f"videos/{split}/{label}_{i}.mp4"
            write_mp4(os.path.join(root, rel), frames.astype(np.uint8))
            rows.append({"path": rel, "label": label, "num_frames": 8})
    path = os.path.join(root, f"{split}.csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "num_frames"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory):
    """Two classes of noisy single-colour mp4 clips: a task a model learns in a couple of epochs."""
    root = str(tmp_path_factory.mktemp("colours"))
    rng = np.random.default_rng(0)
    train, val = _write_split(root, "train", 16, rng), _write_split(root, "val", 6, rng)
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("\n".join(COLOURS) + "\n")
    return {"root": root, "train": train, "val": val}


def training_config(colour_data, storage: str, **sections) -> dict:
    """A small training config over `colour_data`; each keyword replaces (dict: updates) a section."""
    cfg = {
        "name": "colours",
        "model": {"name": "rubiksnet-nano"},
        "optim": {"optimizer": "adamw", "lr": 0.01, "epochs": 3, "shift_lr_mult": 1.0},
        "data": {"train_manifest": colour_data["train"], "val_manifest": colour_data["val"], "segments": 4,
                 "crop_size": 24, "batch_size": 4, "flip": False},
        "scaling": {"num_workers": 1, "cpus_per_worker": 0.5},
        "storage_path": storage,
        "experiment": "tests",
        "eval_protocols": ["1clip"],
        "log_every": 1000,
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            cfg[section] = {**cfg.get(section, {}), **values}
        else:
            cfg[section] = values
    return cfg


def write_yaml(path, tree: dict) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(tree, f)
    return str(path)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=True, log_to_driver=False, configure_logging=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ctx
    ray.shutdown()
