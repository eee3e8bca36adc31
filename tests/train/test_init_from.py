"""model.init_from without Ray: what loads, inflation of a 2D model, the head, freezing, the backbone
learning rate and the one-line refusals of `rubiks train`."""
import os

import pytest
import torch
from torch import nn

from rubiks_service.cli import main as cli_main
from rubiks_service.models import build_model
from rubiks_service.models.checkpoint import checkpoint_dict
from rubiks_service.models.inflate import SHIFT_3D_SUFFIX, inflate_model, inflate_state_dict, rubiksnet2d
from rubiks_service.ops.attention_shift import attention_shift_layers, convert_attention_shifts
from rubiks_service.train.config import ConfigError, load_config, validate
from rubiks_service.train.init_from import InitFromError, load_init_weights, read_init_checkpoint
from rubiks_service.train.model_factory import build_from_config, init_weights
from rubiks_service.train.optimization import make_optimizer, set_learning_rates

from tests.helpers.training import training_config, write_yaml

CLASSES = ["red", "blue"]


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine terms (fresh BN is the identity) and spatial shifts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _pretrained_2d(tmp_path, classes=None, seed=0):
    model = _randomise(rubiksnet2d("nano", num_classes=len(classes or CLASSES)), seed)
    path = str(tmp_path / f"nano2d-{seed}.pt")
    torch.save(checkpoint_dict(model, classes=list(classes or CLASSES)), path)
    return model, path


def _cfg(colour_data, tmp_path, **model):
    tree = training_config(colour_data, str(tmp_path / "runs"))
    tree["model"].update(model)
    return validate(tree)


def test_inflated_model_with_zero_temporal_shifts_gives_the_2d_logits_on_a_repeated_frame(tmp_path, colour_data):
    model_2d, path = _pretrained_2d(tmp_path)
    frame = torch.randn(2, 1, 3, 24, 24)
    with torch.no_grad():
        expected = model_2d(frame)
        inflated = inflate_model(model_2d, num_frames=4, temporal_init="zeros").eval()
        assert torch.allclose(inflated(frame.expand(-1, 4, -1, -1, -1).contiguous()), expected, atol=1e-5)
    # the same through a training config's model.init_from
    cfg = _cfg(colour_data, tmp_path, init_from=path, inflate_temporal="zeros")
    model = build_from_config(cfg, len(CLASSES))
    report = init_weights(model, cfg, read_init_checkpoint(path), CLASSES)
    assert len(report.inflated) == 5 and not report.skipped and report.reinitialised == []
    with torch.no_grad():
        got = model.eval()(frame.expand(-1, 4, -1, -1, -1).contiguous())
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    # a clip that moves is not the frame average once the temporal rows are not zero
    cfg_tsm = _cfg(colour_data, tmp_path, init_from=path, inflate_temporal="tsm")
    model_tsm = build_from_config(cfg_tsm, len(CLASSES))
    init_weights(model_tsm, cfg_tsm, read_init_checkpoint(path), CLASSES)
    with torch.no_grad():
        assert not torch.allclose(model_tsm.eval()(frame.expand(-1, 4, -1, -1, -1).contiguous()), expected, atol=1e-4)


@pytest.mark.parametrize("rule", ["zeros", "tsm", "uniform"])
def test_inflation_copies_spatial_rows_and_initialises_the_temporal_row_by_rule(rule):
    state = _randomise(rubiksnet2d("nano", num_classes=2)).state_dict()
    inflated, keys = inflate_state_dict(state, rule)
    assert len(keys) == 5 and all(k.endswith(SHIFT_3D_SUFFIX) for k in keys)
    for key in keys:
        shift = inflated[key]
        spatial = state[key.replace(SHIFT_3D_SUFFIX, ".as3.spatial.shift")]
        assert shift.shape == (3, spatial.shape[1]) and torch.equal(shift[1:], spatial)
        temporal = shift[0]
        if rule == "zeros":
            assert torch.all(temporal == 0)
        elif rule == "tsm":
            fold = temporal.numel() // 8
            assert torch.all(temporal[:fold] == 1) and torch.all(temporal[fold:2 * fold] == -1)
        else:
            assert temporal.abs().max() <= 1 and temporal.std() > 0.1


def test_head_is_reinitialised_when_classes_differ_and_loaded_when_they_match(tmp_path, colour_data):
    source = _randomise(build_model("rubiksnet-nano", num_classes=2, num_frames=4))
    path = str(tmp_path / "nano.pt")
    torch.save(checkpoint_dict(source, classes=CLASSES), path)
    same = build_model("rubiksnet-nano", num_classes=2, num_frames=4)
    report = load_init_weights(same, read_init_checkpoint(path), model_name="rubiksnet-nano", classes=CLASSES)
    assert report.reinitialised == [] and not report.skipped
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), source.state_dict().values()))

    renamed = build_model("rubiksnet-nano", num_classes=2, num_frames=4)
    fresh_head = renamed.new_fc.weight.detach().clone()
    report = load_init_weights(renamed, read_init_checkpoint(path), model_name="rubiksnet-nano",
                               classes=["left", "right"])
    assert sorted(report.skipped) == ["new_fc.bias", "new_fc.weight"]
    assert report.reinitialised == ["new_fc.weight", "new_fc.bias"]
    assert torch.equal(renamed.new_fc.weight, fresh_head)

    five = build_model("rubiksnet-nano", num_classes=5, num_frames=8)  # other class count and clip length
    report = load_init_weights(five, read_init_checkpoint(path), model_name="rubiksnet-nano", classes=list("abcde"))
    assert report.skipped["new_fc.weight"].startswith("shape") and len(report.loaded) == len(source.state_dict()) - 2
    line = report.line()
    assert "\n" not in line and "re-initialised 2" in line and f"loaded {len(report.loaded)}" in line


def test_bad_checkpoints_are_refused_with_one_line(tmp_path):
    model = build_model("rubiksnet-nano", num_classes=2, num_frames=4)
    with pytest.raises(InitFromError, match="not found"):
        read_init_checkpoint(str(tmp_path / "none.pt"))
    tsm = str(tmp_path / "tsm.pt")
    torch.save({"arch": "tsm-nano", "num_frames": 4, "model": build_model("tsm-nano", num_classes=2).state_dict()}, tsm)
    with pytest.raises(InitFromError, match="tsm-nano checkpoint cannot start a rubiksnet-nano"):
        load_init_weights(model, read_init_checkpoint(tsm), model_name="rubiksnet-nano")
    alien = str(tmp_path / "alien.pt")
    torch.save({"model": {"encoder.weight": torch.zeros(3, 3)}}, alien)
    with pytest.raises(InitFromError, match="nothing in common"):
        load_init_weights(model, read_init_checkpoint(alien), model_name="rubiksnet-nano")
    crafted = str(tmp_path / "crafted.pt")
    torch.save({"model": {}, "hook": nn.Identity()}, crafted)  # needs code to unpickle
    with pytest.raises(InitFromError, match="refused"):
        read_init_checkpoint(crafted)


def test_frozen_stages_keep_weights_and_statistics_and_the_backbone_learns_slower(tmp_path, colour_data):
    _, path = _pretrained_2d(tmp_path)
    cfg = _cfg(colour_data, tmp_path, init_from=path, freeze_stages=3)
    cfg = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"backbone_lr_mult": 0.1})})
    model = build_from_config(cfg, 2)
    report = init_weights(model, cfg, read_init_checkpoint(path), CLASSES)
    frozen_prefixes = ("backbone.conv1.", "backbone.layer0.", "backbone.layer1.")
    assert report.frozen and all(n.startswith(frozen_prefixes) for n in report.frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = make_optimizer(model, cfg)
    set_learning_rates(optimizer, cfg, 0)
    optimized = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in optimized for n, p in model.named_parameters() if n in report.frozen)
    lrs = {(g["part"], g["name"]): g["lr"] for g in optimizer.param_groups}
    assert lrs[("head", "decay")] == pytest.approx(cfg.optim.lr)
    assert lrs[("backbone", "decay")] == pytest.approx(cfg.optim.lr * 0.1)
    model.train()
    loss = model(torch.randn(2, 4, 3, 24, 24)).sum()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    for key, value in before.items():
        if key.startswith(frozen_prefixes):  # weights and BN statistics
            assert torch.equal(after[key], value), key
    assert not torch.equal(after["backbone.layer2.0.bn1.running_mean"], before["backbone.layer2.0.bn1.running_mean"])
    assert not torch.equal(after["new_fc.weight"], before["new_fc.weight"])


def test_config_checks_and_relative_paths(tmp_path, colour_data):
    tree = training_config(colour_data, str(tmp_path / "runs"))
    for model, optim, match in (({"freeze_stages": 2}, {}, "needs model.init_from"),
                                ({}, {"backbone_lr_mult": 0.1}, "needs model.init_from"),
                                ({"init_from": "x.pt", "freeze_stages": 6, "name": "tsm-nano"}, {}, "5 stages"),
                                ({"init_from": "x.pt", "inflate_temporal": "grid"}, {}, "inflate_temporal")):
        bad = {**tree, "model": {**tree["model"], **model}, "optim": {**tree["optim"], **optim}}
        with pytest.raises(ConfigError, match=match):
            validate(bad)
    (tmp_path / "cfg").mkdir()
    tree["model"]["init_from"] = "../pre.pt"
    cfg = load_config(write_yaml(tmp_path / "cfg" / "ft.yaml", tree))
    assert cfg.model.init_from == str(tmp_path / "pre.pt")
    tree["model"]["init_from"] = "models:/motion@best"
    assert load_config(write_yaml(tmp_path / "cfg" / "ft.yaml", tree)).model.init_from == "models:/motion@best"


@pytest.mark.parametrize("case", ["missing", "architecture", "nothing", "scheme"])
def test_rubiks_train_refuses_a_bad_init_from_in_one_line_before_ray(case, tmp_path, colour_data, capsys):
    paths = {"missing": str(tmp_path / "missing.pt"), "architecture": str(tmp_path / "tsm.pt"),
             "nothing": str(tmp_path / "alien.pt"), "scheme": "s3://bucket/model.pt"}
    torch.save({"arch": "tsm-nano", "num_frames": 4, "model": build_model("tsm-nano", num_classes=2).state_dict()},
               paths["architecture"])
    torch.save({"model": {"encoder.weight": torch.zeros(3, 3)}}, paths["nothing"])
    tree = training_config(colour_data, str(tmp_path / "runs"))
    tree["model"]["init_from"] = paths[case]
    code = cli_main(["train", write_yaml(tmp_path / "ft.yaml", tree)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("rubiks train: init_from"), err


def test_shipped_configs_and_a_sweep_whose_base_starts_from_a_model(tmp_path, colour_data):
    from rubiks_service.tune.space import load_space

    from tests.helpers.reference import REPO_ROOT

    pre = load_config(os.path.join(REPO_ROOT, "configs", "motion-pretrain2d.yaml"))
    assert not pre.model.temporal_shift and pre.data.segments == 1
    ft = load_config(os.path.join(REPO_ROOT, "configs", "motion-finetune.yaml"), ["model.init_from=runs:/abc/model"])
    assert ft.model.init_from == "runs:/abc/model" and ft.optim.backbone_lr_mult < 1
    tree = training_config(colour_data, str(tmp_path / "runs"))
    tree["model"]["init_from"] = "models:/colours@best-accuracy"
    write_yaml(tmp_path / "base.yaml", tree)
    space = {"name": "ft", "base": "base.yaml", "search": {"model.freeze_stages": {"grid": [0, 2]}}}
    loaded = load_space(write_yaml(tmp_path / "space.yaml", space))
    trials = [loaded.trial_config(p["set"]) for p in loaded.space.grid_points()]
    assert [t.model.init_from for t in trials] == ["models:/colours@best-accuracy"] * 2
    space["search"]["model.freeze_stages"] = {"grid": [0, 9]}
    with pytest.raises(ConfigError, match="freeze_stages"):
        load_space(write_yaml(tmp_path / "space.yaml", space))


def test_an_rs_checkpoint_starts_rs_aq_in_its_layout_and_computes_the_same_without_temporal_shifts(
        tmp_path, colour_data):
    """RS -> RS-AQ (the paper's way to train RS-AQ): every 1x1 and spatial shift lands under RS-AQ's keys;
    with RS's temporal shifts at zero and RS-AQ's attention on the zero shift, both compute the same."""
    rs = _randomise(build_model("rubiksnet-nano", num_classes=2, num_frames=4, variant="rs"))
    with torch.no_grad():
        for name, p in rs.named_parameters():
            if name.endswith(SHIFT_3D_SUFFIX):
                p.uniform_(-1.0, 1.0)
                p[0].zero_()  # no temporal shift: the one part RS-AQ cannot take over
    path = str(tmp_path / "rs.pt")
    torch.save(checkpoint_dict(rs, classes=CLASSES), path)
    cfg = _cfg(colour_data, tmp_path, name="rubiksnet-nano", variant="rs-aq", init_from=path)
    aq = build_from_config(cfg, len(CLASSES))
    report = init_weights(aq, cfg, read_init_checkpoint(path), CLASSES)
    assert len(report.from_rs) == 10 and not report.skipped
    assert sorted({k.rsplit(".", 1)[-1] for k in report.reinitialised}) == ["T", "weight"]
    assert all(".conv2.0." in k for k in report.reinitialised)  # only the attention starts fresh
    assert "RS tensors in RS-AQ's layout" in report.line()
    for layer in attention_shift_layers(aq):
        with torch.no_grad():
            layer.weight.zero_()
            layer.weight[:, layer.max_shift] = 1.0  # all attention on the zero shift
    convert_attention_shifts(aq)
    clip = torch.randn(2, 4, 3, 24, 24)
    with torch.no_grad():
        assert torch.allclose(aq.eval()(clip), rs(clip), atol=1e-5)
