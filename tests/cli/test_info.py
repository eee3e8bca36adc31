"""`rubiks info`."""
import json

from rubiks_service.cli import main


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kernels"]["cpu"] is True
