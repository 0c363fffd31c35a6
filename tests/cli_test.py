"""End to end: the README's two commands, the `resjax` command, and the package layout."""

import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESJAX = [sys.executable, "-m", "resjax.cli"]

EXPECTED = {
    "claim-2.3": "falsified",
    "claim-2.3/corrected": "verified",
    "lemma-2.4": "falsified",
    "lemma-2.4/corrected": "verified",
    "ineq-2.3": "falsified",
    "ineq-2.3/corrected": "verified",
    "thm-2.2": "verified",
    "thm-2.1": "falsified",
    "thm-2.1/det>0": "verified",
    "thm-2.1/sharper": "verified",
    "thm-2.1/construction": "falsified",
    "thm-2.1/psd": "verified",
    "claim-C.1": "falsified",
    "claim-C.1/corrected": "verified",
    "claim-C.2": "verified",
    "lemma-B.1": "falsified",
    "lemma-B.1/corrected": "verified",
    "lemma-B.2": "falsified",
    "thm-3.2/construction": "falsified",
    "thm-3.2": "verified",
}


def run(args, cwd):
    return subprocess.run(RESJAX + args, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_resjax_check_quick_profile_end_to_end(tmp_path):
    out = run(["check", "--json", "report.json", "--quiet"], tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert {s["id"]: s["status"] for s in report["statements"]} == EXPECTED
    assert "falsified" in out.stdout and "verified" in out.stdout
    for s in report["statements"]:
        assert (s["witness"] is None) == (s["status"] == "verified")
        assert s["instances"] > 0
    witness = next(s["witness"] for s in report["statements"] if s["id"] == "lemma-2.4")
    replay = run(["check", "--replay", witness], tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert "lemma-2.4 is falsified" in replay.stdout


def test_unknown_statement_exits_2():
    out = run(["check", "--only", "thm-9.9"], ROOT)
    assert out.returncode == 2 and "known ids" in out.stderr


def test_importing_resjax_changes_no_global_jax_config(tmp_path):
    code = (
        "import jax; before = dict(jax.config.values)\n"
        "import resjax, resjax.linear, resjax.normal_form, resjax.expressivity, resjax.checks.registry\n"
        "import resjax.train.data\n"
        "changed = {k for k, v in jax.config.values.items() if before.get(k) != v}\n"
        "assert not changed, changed\n"
        "import importlib.util as u\n"
        "assert u.find_spec('checks') is None and u.find_spec('train') is None\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, commands
    assert "resjax check" in commands[0]
    assert commands[1].strip() in (ROOT / ".ci" / "run").read_text()


def test_readme_python_examples_run(tmp_path):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    outputs = []
    for code in blocks:
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        outputs.append(out.stdout)
    assert "det R < 0" in outputs[0]
