"""Learned-shift plots (PNG files) and optimizer parameter groups."""
import torch

from rubiks_service.models import build_model, rubiksnet
from rubiks_service.models.param_groups import parameter_groups
from rubiks_service.models.shift_plots import learned_shifts, plot_shift_scatter, plot_temporal_histograms

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_written(tmp_path):
    for variant in ("rs", "rs-aq"):
        model = rubiksnet("tiny", variant=variant)
        shifts = learned_shifts(model)
        assert len(shifts) == 17 and all(s.shape[0] == 3 for _, s in shifts)
        for fn, name in ((plot_temporal_histograms, "hist"), (plot_shift_scatter, "scatter")):
            path = tmp_path / f"{variant}-{name}.png"
            fn(model, path)
            assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_parameter_groups():
    model = rubiksnet("tiny", variant="rs-aq")
    groups = {g["name"]: g for g in parameter_groups(model, lr=0.1, weight_decay=1e-4, shift_lr_mult=0.01)}
    assert groups["shift"]["lr"] == 0.1 * 0.01 and groups["shift"]["weight_decay"] == 0.0
    assert groups["no_decay"]["weight_decay"] == 0.0 and groups["decay"]["weight_decay"] == 1e-4
    n_all = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == n_all
    assert any(p is model.new_fc.bias for p in groups["no_decay"]["params"])
    assert any(p is model.backbone.layer0[0].as3.shift for p in groups["shift"]["params"])
    torch.optim.SGD(parameter_groups(build_model("tsm-r18"), lr=0.01), momentum=0.9)
