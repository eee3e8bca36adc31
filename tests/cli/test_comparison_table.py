"""The sweep's printed comparison: RS-AQ's realised budget beside the budget asked for (a budget loss
that does not bind must be visible), nothing in that column for points without attention shifts."""
from rubiks_service.cli.training import print_comparison


def _point(label, variant, seed, top1, realised=None):
    point = {"label": label, "point": label, "seed": str(seed), "kind": "rubiksnet", "model": "rubiksnet-nano",
             "1clip_top1": top1, "gmacs": 0.0112, "mparams": 0.05, "run_id": f"{label}-{seed}",
             "settings": {"variant": variant, **({"budget": "0.25"} if variant == "rs-aq" else {})}}
    if realised is not None:
        point["realised_budget"] = realised
    return point


def test_the_realised_budget_is_printed_beside_the_budget(capsys):
    points = [_point("aq", "rs-aq", s, t, r) for s, t, r in ((0, 0.8, 0.5), (1, 0.82, 0.6))]
    points += [_point("rs", "rs", s, t) for s, t in ((0, 0.7), (1, 0.75))]
    print_comparison(points, [])
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("label"))
    assert header.split()[:7] == ["label", "kind", "model", "variant", "budget", "realised", "n"]
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("aq ", "rs "))}
    assert rows["aq"][4:6] == ["0.25", "0.550"]  # B asked for, and the mean realised over the seeds
    assert rows["rs"][4] == "2"  # no budget, no realised share: the next column is n
