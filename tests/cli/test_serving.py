"""`rubiks eval | predict | export`: a user's model file is untrusted."""


def test_eval_refuses_a_crafted_pickle_with_one_line_and_runs_nothing(tmp_path):
    import subprocess
    import sys

    from tests.crafted import write_crafted_checkpoint

    marker = tmp_path / "pwned"
    crafted = write_crafted_checkpoint(tmp_path / "checkpoint.pt", marker)
    manifest = tmp_path / "val.csv"
    manifest.write_text("path,label\nx.mp4,a\n")
    proc = subprocess.run([sys.executable, "-m", "rubiks_service.cli", "eval", crafted, "--data", str(manifest)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused to load" in lines[0] and "posix.system" in lines[0], proc.stderr
    assert proc.stdout == "" and not marker.exists()
