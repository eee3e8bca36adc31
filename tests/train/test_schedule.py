"""The per-epoch learning-rate shape: linear warm-up, then the step or the cosine schedule; settings
that cannot work are refused with the field's name."""
import math

import pytest

from rubiks_service.config_files import ConfigError
from rubiks_service.train.config import validate
from rubiks_service.train.optimization import lr_factor

DATA = {"train_manifest": "t.csv", "val_manifest": "v.csv"}


def _cfg(**optim):
    return validate({"data": DATA, "optim": optim})


def test_warmup_then_cosine():
    cfg = _cfg(epochs=5, schedule="cosine", warmup_epochs=1)
    factors = [lr_factor(cfg, e) for e in range(5)]
    assert factors[0] == pytest.approx(0.5)  # warm-up: (epoch + 1) / (warmup + 1)
    assert factors[1] == pytest.approx(1.0)
    assert factors[2] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert factors == sorted(factors[:2]) + sorted(factors[2:], reverse=True) and factors[-1] > 0


def test_step_schedule_is_unchanged():
    cfg = _cfg(epochs=8, lr_steps=[6], gamma=0.1)
    assert [lr_factor(cfg, e) for e in (0, 5, 6, 7)] == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1)]


@pytest.mark.parametrize("optim, needle", [
    ({"epochs": 3, "warmup_epochs": 3}, "warmup_epochs"),
    ({"epochs": 8, "schedule": "cosine", "lr_steps": [6]}, "lr_steps"),
    ({"schedule": "linear"}, "optim.schedule"),
])
def test_bad_schedules(optim, needle):
    with pytest.raises(ConfigError, match=needle):
        _cfg(**optim)
