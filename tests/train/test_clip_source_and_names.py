"""The clip source a run gets (the only place that asks about the frame cache), the metric names
the MLflow UI, the sweeps and the deployment tests read, and the typed config as the workers get it."""
import pickle

import pytest
import torch

from rubiks_service.data.clip_spec import ClipMode
from rubiks_service.train import metric_names as names
from rubiks_service.train.clip_source import CachedFrames, DecodedClips, clip_source
from rubiks_service.train.config import TrainConfig
from rubiks_service.train.metrics import AccuracyCounter


def _cfg(**data) -> TrainConfig:
    return TrainConfig.model_validate({"seed": 3, "eval_protocols": ["1clip", "2clip"],
                                       "data": {"train_manifest": "t.csv", "val_manifest": "v.csv", **data}})


def test_clip_source_is_chosen_once_and_says_what_the_workers_evaluate():
    decoded, cached = clip_source(_cfg()), clip_source(_cfg(cache_frames=True))
    assert isinstance(decoded, DecodedClips) and isinstance(cached, CachedFrames)
    assert decoded.worker_protocols() == [] and cached.worker_protocols() == [ClipMode.ONE_CLIP, ClipMode.TWO_CLIP]
    only_two = CachedFrames(_cfg(cache_frames=True).model_copy(update={"eval_protocols": ["2clip"]}))
    assert only_two.worker_protocols() == ["1clip", "2clip"]  # the last validation is the 1-clip protocol
    with pytest.raises(ValueError, match="decoded clips serve train and 1clip, not 2clip"):
        decoded.batches(None, ClipMode.TWO_CLIP, 0)


def test_metric_names_keep_their_logged_spellings():
    assert (names.VAL_TOP1, names.ONE_CLIP_TOP1, names.TWO_CLIP_TOP1) == ("val_top1", "1clip_top1", "2clip_top1")
    assert (names.GMACS, names.MPARAMS, names.LATENCY_MS, names.EPOCH) == ("gmacs", "mparams", "latency_ms", "epoch")
    counts = AccuracyCounter(2).result(ClipMode.TWO_CLIP)
    assert set(counts) == {"2clip_top1", "2clip_top5", "2clip_mean_class", "2clip_clips"}
    assert names.of_scope({**counts, "val_top1": 1.0, "gmacs": 2.0}, "2clip") == counts
    with pytest.raises(ValueError, match="top3"):
        names.accuracy_name("val", "top3")


def test_the_config_object_travels_to_the_workers():
    """Ray sends `train_loop_config` with cloudpickle: the TrainConfig arrives whole, no dict re-validated."""
    ray_pickle = pytest.importorskip("ray.cloudpickle")
    cfg = _cfg(cache_frames=True)
    for dumps, loads in ((ray_pickle.dumps, ray_pickle.loads), (pickle.dumps, pickle.loads)):
        again = loads(dumps({"train": cfg, "classes": ["a", "b"]}))["train"]
        assert isinstance(again, TrainConfig) and again == cfg and again.data.cache_frames


def test_frames_held_in_the_worker_are_read_once_and_sampled_the_same_whatever_the_delivery_order(ray_cluster):
    """`data.hold_in_worker`: the shard's rows kept after the first pass, in path order, so two deliveries
    of the same rows in other orders and blocks give the same batches; epochs are seeded permutations."""
    import numpy as np
    import ray.data

    rng = np.random.default_rng(0)
    rows = [{"frames": rng.integers(0, 255, (10, 20, 20, 3), dtype=np.uint8), "label": i % 3, "path": f"v{i:02d}.mp4",
             "valid": True} for i in range(11)]
    cfg = _cfg(cache_frames=True, hold_in_worker=True, segments=4, crop_size=16, batch_size=4)

    def epochs(order, blocks):
        source = CachedFrames(cfg)
        shard = ray.data.from_items([rows[i] for i in order], override_num_blocks=blocks)
        first = list(source.batches(shard, ClipMode.TRAIN, 0))
        later = list(source.batches(None, ClipMode.TRAIN, 1))  # held: the shard is not read again
        val = list(source.batches(shard, ClipMode.ONE_CLIP, 0))
        return first, later, val

    a, b = epochs(range(11), 1), epochs(rng.permutation(11), 4)
    for got, want in zip(a, b):
        assert len(got) == len(want) == 3  # 11 rows in batches of 4
        for x, y in zip(got, want):
            assert torch.equal(x["clip"], y["clip"]) and torch.equal(x["label"], y["label"])
    assert not torch.equal(a[0][0]["label"], a[1][0]["label"]) or not torch.equal(a[0][0]["clip"], a[1][0]["clip"])
    assert a[2][0]["label"].tolist() == [0, 1, 2, 0]  # validation in path order
    assert tuple(a[0][0]["clip"].shape) == (4, 1, 4, 16, 16, 3)
    with pytest.raises(ValueError, match="hold_in_worker"):
        _cfg(hold_in_worker=True)
