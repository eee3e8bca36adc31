"""The clip source a run gets (the only place that asks about the frame cache), the metric names
the MLflow UI, the sweeps and the deployment tests read, and the typed config as the workers get it."""
import pickle

import pytest

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
