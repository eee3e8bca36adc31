"""The command line as a whole: every group's commands are there, building the parser imports no
torch, and a bad config is one line on stderr and exit 2 whatever the working directory."""
import subprocess
import sys

import pytest

from rubiks_service.cli import GROUPS, build_parser, main
from tests.helpers.training import write_yaml

COMMANDS = {"info", "profile", "train", "sweep", "pareto", "eval", "predict", "export", "ui", "submit", "jobs",
            "serve", "data"}


def _rubiks(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rubiks_service.cli", *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_every_group_adds_its_commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == COMMANDS and all(callable(group.add_parsers) for group in GROUPS)


def test_building_the_parser_imports_no_torch():
    code = ("import sys; from rubiks_service.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_bad_config_is_one_line_and_exit_2_from_any_folder(tmp_path):
    config = write_yaml(tmp_path / "bad.yaml", {"data": {"train_manifest": "t.csv", "val_manifest": "v.csv"},
                                                "model": {"name": "tsm-nano", "variant": "rs-aq"}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for argv in (["train", config], ["train", config, "--set", "model.variant=rs", "--set", "optim.lr=-1"],
                 ["train", "missing.yaml"], ["sweep", "missing.yaml"]):
        proc = _rubiks(*argv, cwd=str(elsewhere))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"rubiks {argv[0]}: "), proc.stderr
        assert proc.stdout == ""
    assert "model.variant" in _rubiks("train", config).stderr


@pytest.mark.parametrize("argv", [["profile", "tiny", "--variant", "rs-zz"], ["export", "x.pt", "--format", "gif",
                                                                              "--out", "y"]])
def test_choices_come_from_their_owners(argv, capsys):
    """Choices read when a value is checked (the models' tuples): a bad one is argparse's exit 2."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_help_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["profile", "--help"])
    assert "rs, rs-q, rs-aq" in capsys.readouterr().out
