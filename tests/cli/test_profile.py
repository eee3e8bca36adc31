"""`rubiks profile`."""
import json

from rubiks_service.cli import main


def test_cli_json(capsys):
    assert main(["profile", "rubiksnet-tiny", "--size", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 1_898_760 and out["stages"]["layer0"]["macs"] > 0
    assert main(["profile", "rubiksnet-huge"]) == 2
