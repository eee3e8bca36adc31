"""Config-file plumbing: YAML reading, `--set` overrides, validation errors naming the field, and
paths taken beside the file that names them."""
import os

import pytest

from rubiks_service.config_files import (
    ConfigError,
    StrictModel,
    apply_overrides,
    beside,
    read_yaml,
    validate_as,
)


class Section(StrictModel):
    rate: float = 1.0
    steps: list[int] = []


class Tree(StrictModel):
    name: str
    section: Section = Section()


def test_read_yaml_refuses_what_is_not_a_mapping(tmp_path):
    (tmp_path / "ok.yaml").write_text("name: a\n")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(str(tmp_path / "ok.yaml")) == {"name": "a"} and read_yaml(str(tmp_path / "empty.yaml")) == {}
    for text, needle in (("a: [unclosed\n", "not valid YAML"), ("- a\n", "mapping")):
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(ConfigError, match=needle):
            read_yaml(str(tmp_path / "bad.yaml"))
    with pytest.raises(ConfigError, match="not found"):
        read_yaml(str(tmp_path / "missing.yaml"))


def test_overrides_parse_yaml_values_and_leave_the_original_alone():
    raw = {"name": "a", "section": {"rate": 1.0}}
    out = apply_overrides(raw, ["section.rate=0.5", "section.steps=[2, 4]", "extra.deep.key=on"])
    assert out == {"name": "a", "section": {"rate": 0.5, "steps": [2, 4]}, "extra": {"deep": {"key": True}}}
    assert raw == {"name": "a", "section": {"rate": 1.0}}
    assert apply_overrides(raw, {"section.rate": 2}) == {"name": "a", "section": {"rate": 2}}
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides(raw, ["section.rate"])
    with pytest.raises(ConfigError, match="'name' is not a section"):
        apply_overrides(raw, ["name.first=x"])


def test_validate_as_names_every_problem_by_its_dotted_field():
    assert validate_as(Tree, {"name": "a", "section": {"rate": 2}}, "t.yaml").section.rate == 2.0
    with pytest.raises(ConfigError) as err:
        validate_as(Tree, {"section": {"rate": "fast", "colour": "red"}}, "t.yaml")
    message = str(err.value)
    assert message.startswith("t.yaml: ") and "\n" not in message
    assert all(field in message for field in ("name:", "section.rate:", "section.colour:"))


def test_beside():
    assert beside("/a/b/c.yaml", "d/e.csv") == "/a/b/d/e.csv"
    assert beside("/a/b/c.yaml", "../e.csv") == "/a/e.csv"
    assert beside("/a/b/c.yaml", "/x/e.csv") == "/x/e.csv"
    assert beside("c.yaml", "e.csv") == os.path.join(os.getcwd(), "e.csv")
