"""Checkpoints in the release's format: strict loading, our extras alongside, clear errors."""
import json
import os

import pytest
import torch

from rubiks_service.models import rubiksnet
from rubiks_service.models.checkpoint import CheckpointError, load_release_checkpoint, save_checkpoint

from tests.helpers.reference import SHAPES_FILE


def test_round_trip_with_extras(tmp_path):
    model = rubiksnet("tiny", num_classes=12, num_frames=4, variant="rs-q")
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model, epoch=3, config={"lr": 0.1})
    loaded, ckpt = load_release_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["tier"] == "tiny" and loaded.cfg.variant == "rs-q"
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("key,tier,variant", [("tiny/rubiks3d", "tiny", "rubiks3d"), ("large/rubiks3d-aq", "large", "rubiks3d-aq")])
def test_strict_load_of_a_release_shaped_checkpoint(tmp_path, key, tier, variant):
    """A checkpoint written from the release's key list (not from our model) loads strictly."""
    if not os.path.exists(SHAPES_FILE):
        pytest.skip("reference shapes not available")
    with open(SHAPES_FILE) as f:
        shapes = json.load(f)[key]
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.tensor(5) if not shape and k.endswith("num_batches_tracked") else torch.randn(shape, generator=gen))
             for k, shape in shapes.items()}
    path = tmp_path / "release.pth"
    torch.save({"tier": tier, "num_classes": 174, "num_frames": 8, "variant": variant, "model": state}, path)
    model, _ = load_release_checkpoint(path)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k].float(), v.float()) for k, v in state.items())


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": {}}, bad)
    with pytest.raises(CheckpointError, match="needs keys"):
        load_release_checkpoint(bad)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_release_checkpoint(garbage)


def test_a_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    import pickle

    from rubiks_service.models.checkpoint import read_checkpoint_file
    from tests.crafted import _RunsCode, write_crafted_checkpoint

    marker = tmp_path / "pwned"
    crafted = write_crafted_checkpoint(tmp_path / "crafted.pt", marker)
    raw = tmp_path / "raw.pkl"  # a bare pickle (not torch's zip) is refused as well
    raw.write_bytes(pickle.dumps(_RunsCode(str(marker)), protocol=2))
    for path in (crafted, raw):
        with pytest.raises(CheckpointError, match="refused to load") as err:
            load_release_checkpoint(path)
        assert "\n" not in str(err.value) and "posix.system" in str(err.value)
        with pytest.raises(CheckpointError, match="refused to load"):
            read_checkpoint_file(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint_file(tmp_path / "missing.pt")
