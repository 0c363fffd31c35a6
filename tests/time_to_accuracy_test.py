"""benchmarks/time_to_accuracy.py: the first evaluation at a target, in wall time from the command's start."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import time_to_accuracy  # noqa: E402


def workdir(root: pathlib.Path, startup: float, evals: list[tuple[int, float, float]]) -> pathlib.Path:
    root.mkdir()
    (root / "summary.json").write_text(json.dumps({"startup_seconds": startup}))
    rows = [{"step": s, "loss": 1.0, "time": t - 1} for s, t, _ in evals]  # training rows carry no accuracy
    rows += [{"step": s, "time": t, "test_accuracy_flip": a, "test_accuracy_single_view": a - 0.01}
             for s, t, a in evals]
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sorted(rows, key=lambda r: r["step"])))
    return root


def test_first_crossing_counts_the_start_up_and_a_run_that_never_crosses_says_so(tmp_path, capsys):
    fast = workdir(tmp_path / "fast", 10.0, [(100, 50.0, 0.7), (200, 100.0, 0.805), (300, 150.0, 0.79)])
    slow = workdir(tmp_path / "slow", 20.0, [(100, 80.0, 0.6), (200, 160.0, 0.795)])
    time_to_accuracy.main([f"{fast}=fast", str(slow), "--png", str(tmp_path / "plot.png")])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("fast: first >= 80% at step 200, 110 s (1.8 min): 80.50%; last 79.00% at step 300, 160 s")
    assert out[1].startswith(f"{slow}: never >= 80%; last 79.50% at step 200, 180 s")
    assert (tmp_path / "plot.png").stat().st_size > 1000
    time_to_accuracy.main([str(slow), "--view", "single_view", "--target", "0.78"])
    assert "first >= 78% at step 200, 180 s (3.0 min): 78.50%" in capsys.readouterr().out


def test_unfinished_runs_and_targets_given_in_percent_are_refused(tmp_path):
    (tmp_path / "running").mkdir()
    with pytest.raises(SystemExit, match="no summary.json"):
        time_to_accuracy.main([str(tmp_path / "running")])
    with pytest.raises(SystemExit):
        time_to_accuracy.main([str(tmp_path / "running"), "--target", "80"])
