"""End to end: the README's two commands, the `resjax` command, and the package layout."""

import ast
import json
import pathlib
import re
import subprocess
import sys

import pytest
from hypothesis import event, given, strategies as st

from resjax.train.config import TrainConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESJAX = [sys.executable, "-m", "resjax.cli"]

EXPECTED = {  # id: (target, verdict)
    "claim-2.3": ("statement", "verified"),
    "claim-2.3/proof-constant": ("proof step", "falsified"),
    "lemma-2.4": ("statement", "falsified"),
    "lemma-2.4/corrected": ("statement", "verified"),
    "ineq-2.3": ("proof step", "falsified"),
    "ineq-2.3/corrected": ("proof step", "verified"),
    "thm-2.2": ("statement", "verified"),
    "thm-2.1": ("statement", "falsified"),
    "thm-2.1/det>0": ("statement", "verified"),
    "thm-2.1/sharper": ("statement", "verified"),
    "thm-2.1/lower-bound": ("statement", "verified"),
    "thm-2.1/near-optimal": ("statement", "verified"),
    "thm-2.1/near-optimal-shallow": ("statement", "falsified"),
    "thm-2.1/construction": ("proof step", "falsified"),
    "thm-2.1/p-q/reading-extracted": ("reading", "falsified"),
    "thm-2.1/p-q/reading-factor-2-on-q": ("reading", "verified"),
    "thm-2.1/psd": ("proof step", "verified"),
    "claim-C.1/reading-rotation-blocks": ("reading", "falsified"),
    "claim-C.1/reading-any-blocks": ("reading", "verified"),
    "claim-C.1/corrected": ("statement", "verified"),
    "claim-C.2": ("statement", "verified"),
    "lemma-B.1/proof-common-bias": ("proof step", "falsified"),
    "lemma-B.1/corrected": ("statement", "verified"),
    "lemma-B.1/reading-squared": ("reading", "verified"),
    "lemma-B.1/reading-unsquared": ("reading", "falsified"),
    "lemma-B.2": ("statement", "undecided"),
    "lemma-B.2/proof": ("proof step", "falsified"),
    "thm-3.2/construction": ("proof step", "falsified"),
    "thm-3.2": ("statement", "verified"),
}


def run(args, cwd):
    return subprocess.run(RESJAX + args, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_resjax_check_quick_profile_end_to_end(tmp_path):
    out = run(["check", "--json", "report.json", "--quiet"], tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert {s["id"]: (s["target"], s["status"]) for s in report["statements"]} == EXPECTED
    assert "falsified" in out.stdout and "verified" in out.stdout
    assert "nan" not in out.stdout  # quantities a statement did not compute are left out, not printed as nan
    for s in report["statements"]:
        assert (s["witness"] is None) == (s["status"] != "falsified")  # verified and undecided have none
        assert s["instances"] > 0
    witness = next(s["witness"] for s in report["statements"] if s["id"] == "lemma-2.4")
    replay = run(["check", "--replay", witness], tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert "lemma-2.4 (printed statement) is falsified" in replay.stdout


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


def python_examples(path, cwd):
    """The standard output of each ```python block of the Markdown file ``path``, run in
    its own interpreter in ``cwd``; any block that fails fails the test."""
    outputs = []
    for code in re.findall(r"```python\n(.*?)```", path.read_text(), re.S):
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{path.name}:\n{code}\n{out.stderr}"
        outputs.append(out.stdout)
    return outputs


def test_readme_python_examples_run(tmp_path):
    outputs = python_examples(ROOT / "README.md", tmp_path)
    assert len(outputs) >= 2
    assert "det R < 0" in outputs[0]
    assert "norm='batchnorm' is not one of None, 'batch' (did you mean 'batch'?)." in outputs[-1]


def test_the_docs_python_examples_run_and_print_what_they_say(tmp_path):
    outputs = {page.name: python_examples(page, tmp_path) for page in sorted((ROOT / "docs").glob("*.md"))}
    assert sum(map(len, outputs.values())) >= 2, outputs  # a page's example moved away unnoticed fails here
    assert outputs["section4.md"] == ["[0. 0. 0.]\n"]  # fixup: each branch starts at the identity
    converged = {(init, depth): n for init, depth, n in ast.literal_eval(outputs["experiments.md"][0])}
    assert converged["identity", 2] == converged["identity", 8] == 4  # of 4 seeds: the identity always converges
    assert converged["small", 8] <= 2  # the saddle at zero stalls deep small initialisations
    assert (tmp_path / "plain_gd.png").stat().st_size > 10_000


# ----------------------------------------------------------------- bad input: one line, exit 2, before any compile


def in_process(argv):
    """(exit status, stdout, stderr) of ``resjax ARGV`` run in this process. The CPU is
    not re-split into virtual devices (this process's backend is already running)."""
    import contextlib
    import io

    from resjax import cli
    from resjax.train import backend, loop

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setattr(backend, "split_cpu", lambda count: None)
        mp.setattr(loop.Trainer, "run", lambda self: pytest.fail("bad input reached training"))
        try:
            code = cli.main(argv)
        except SystemExit as e:  # argparse
            code = e.code
    return code, out.getvalue(), err.getvalue()


def refused(argv, message):
    code, _, err = in_process(argv)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and re.search(message, lines[0]), err
    return lines[0]


TRAIN_CASES = {
    "steps=abc": r"^resjax train: invalid configuration: steps='abc': input should be a valid integer\.$",
    "checkpoint_every=0": r"checkpoint_every=0: input should be greater than or equal to 1",
    "log_every=0": r"log_every=0: input should be greater than or equal to 1",
    "batch_size=-4": r"batch_size=-4: input should be greater than or equal to 1",
    "batch_size=0": r"batch_size=0: input should be greater than or equal to 1",
    "lr_schedule=cosin": r"lr_schedule='cosin' is not one of 'piecewise', 'cosine' or 'exponential' \(did you mean 'cosine'\?\)",
    "compute_dtype=bf16": r"compute_dtype='bf16' is not one of .* \(did you mean 'bfloat16'\?\)",
    "augment=1": r"augment=1: input should be a valid boolean",
    "steps=1.5": r"steps=1.5: input should be a valid integer",
    "steps=3000000000": r"steps=3000000000: input should be less than 2147483648",
    "seed=-1": r"seed=-1: input should be greater than or equal to 0",
    "learning_rate=NaN": r"learning_rate=nan: input should be a finite number",
    "lr_boundaries=[10,5]": r"lr_boundaries=\[10, 5\] must be strictly increasing",
    "warmup_steps=20": r"warmup_steps=20 must be below steps=20",
    "model.norm=batchnorm": r"model: norm='batchnorm' is not one of None, 'batch' \(did you mean 'batch'\?\)",
    "model.head=fix": r"model: head='fix' is not one of 'fixed', 'trained' \(did you mean 'fixed'\?\)",
    "model.widths=[8]": r"model: widths, blocks and strides .* same length",
    "model.widht=[8]": r"unknown network option 'widht' \(did you mean 'widths'\?\)",
    "num_classes=0": r"num_classes=0: input should be greater than or equal to 1",
    "num_classes=3": r"num_classes=3, but the data .* has 2 classes \(dark, light\); set num_classes=2\.",
    "stepz=3": r"unknown field 'stepz' \(did you mean 'steps'\?\)",
    "model=3": r"model takes a JSON object",
    'xla_flags=["xla_dump_to=x"]': r"xla_flags.*should match pattern",
}


@pytest.mark.parametrize("assignment", sorted(TRAIN_CASES))
def test_bad_training_configuration_is_one_line_and_exit_2(assignment, folder, tmp_path):
    refused(["train", "--config", "tiny", "--workdir", str(tmp_path), "--set", f"data={folder}", "num_classes=2",
             assignment], TRAIN_CASES[assignment])


def test_bad_data_workdir_and_config_names_are_one_line_and_exit_2(folder, tmp_path):
    base = ["train", "--config", "tiny", "--workdir", str(tmp_path / "w"), "--set", "num_classes=2"]
    refused(base + [f"data={tmp_path / 'nowhere'}"], r"no data at .*nowhere: expected a directory, \.tar or \.tar\.gz")
    (tmp_path / "noise.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    refused(base + [f"data={tmp_path / 'noise.tar.gz'}"], r"cannot read .*noise\.tar\.gz .* not a tar archive")
    import tarfile

    with tarfile.open(tmp_path / "whole.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="ds")
    data = (tmp_path / "whole.tar.gz").read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "train.tar.gz").write_bytes(data[: len(data) // 2])
    refused(base + [f"data={tmp_path / 'cut'}"], r"cannot read .*train\.tar\.gz .*truncated")
    (tmp_path / "file").write_text("")
    refused(["train", "--config", "tiny", "--workdir", str(tmp_path / "file"), "--set", f"data={folder}",
             "num_classes=2"], r"--workdir .*file is a file")
    refused(["train", "--config", "tinny"], r"no configuration 'tinny' \(did you mean 'tiny'\?\)")


def test_a_batch_that_does_not_split_over_the_devices_is_refused_before_training(tmp_path, folder, train):
    out = train(tmp_path, folder, "batch_size=6", devices=4)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "batch_size=6 does not split evenly over 4 devices; use a multiple of 4 (e.g. 4)" in out.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_bad_check_arguments_are_one_line_and_exit_2(tmp_path):
    refused(["check", "--replay", str(tmp_path / "missing.json")], r"^resjax check: no witness file at")
    (tmp_path / "w.json").write_text('{"format": 2, "statement": "thm-9.9"}')
    refused(["check", "--replay", str(tmp_path / "w.json")], r"not a statement of this checker")
    refused(["check", "--json", str(tmp_path)], r"must be a file, but it is a directory")
    (tmp_path / "f").write_text("")
    refused(["check", "--witness-dir", str(tmp_path / "f")], r"must be a directory, but it is a file")


def test_command_line_defaults_help_and_version(capsys):
    from resjax import cli

    assert cli.parser().parse_args(["train"]).config == "digits"  # runs without data
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"resjax {__import__('resjax').__version__}"
    for argv, wanted in ((["--help"], "audit every statement"), (["check", "--help"], "quick: seconds per statement"),
                         (["train", "--help"], "(default: digits)")):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert wanted in " ".join(capsys.readouterr().out.split())
    for argv in (["train", "--num-processes", "0"], ["train", "--num-processes", "2", "--process-id", "2"],
                 ["train", "--coordinator", "nohost"]):
        code, _, err = in_process(argv)
        assert code == 2 and "Traceback" not in err and re.search(r"^resjax( train)?: error: ", err, re.M)


# ----------------------------------------------------------------- hypothesis: malformed --set values

VALID = {  # values --set must apply as written (for the tiny configuration on the 2-class folder)
    "num_classes": ["2"], "data": [], "train_split": ["train"], "test_split": ["test"], "augment": ["true", "false"],
    "eval_flip": ["true"], "steps": ["20", "40"], "batch_size": ["8", "16"], "learning_rate": ["0.5", "1e-3", "2"],
    "lr_schedule": ["cosine", "piecewise"], "lr_boundaries": ["[5, 10]", "[]"], "lr_decay": ["0.5"],
    "warmup_steps": ["0", "3"], "momentum": ["0", "0.5"], "nesterov": ["true"], "label_smoothing": ["0.1"],
    "weight_decay": ["0", "1e-3"], "grad_clip": ["null", "1.5"], "compute_dtype": ["float32", "auto"],
    "cpu_devices": ["null", "2"], "donate_state": ["false", "true"], "seed": ["3"], "log_every": ["1"],
    "eval_every": ["7"], "checkpoint_every": ["4"],
    "keep_checkpoints": ["1"], "model": ['{"widths": [8, 16], "blocks": [1, 1], "strides": [1, 2]}'],
    "model.norm": ["batch", "null"], "model.widths": ["[4, 16]"], "model.head": ["trained"],
    "model.conv_bias": ["true"], "model.init_scheme": ["fixup", "standard"],
}
MALFORMED = st.one_of(
    st.sampled_from(["abc", "-1", "0", "3.5", "1e3", "true", "null", "[1, 2]", "[]", "{}", "nan", "", "99999999999",
                     "[8, 16]", '{"widths": [8]}', "batchnorm", "cosin"]),
    st.text(max_size=4),
)
KEYS = st.sampled_from(sorted(VALID) + ["model.widht", "stepz"])
ASSIGNMENT = KEYS.flatmap(lambda key: st.tuples(st.just(key), st.sampled_from([True, True, False]).flatmap(
    lambda ok: st.sampled_from(VALID[key]) if ok and VALID.get(key) else MALFORMED)))


def plain(raw):
    """How the documentation says --set reads a value: JSON, else the string as written."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


@given(st.lists(ASSIGNMENT, max_size=3))
def test_any_set_is_applied_as_written_or_refused_in_one_line(folder, assignments):
    import tempfile

    items = [f"{k}={v}" for k, v in assignments]
    with tempfile.TemporaryDirectory() as workdir:
        argv = ["train", "--config", "tiny", "--dry-run", "--workdir", workdir, "--set", f"data={folder}", "num_classes=2",
                *items]
        code, out, err = in_process(argv)
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("resjax train: "), err
        event("refused")
        return
    assert code == 0, err
    event("applied")
    applied = json.loads(out[: out.index("\ndata: ")])
    for key, raw in dict(assignments).items():  # the last assignment of a key wins
        head, _, sub = key.partition(".")
        want = raw if isinstance(getattr(TrainConfig, head, None), str) and not sub else plain(raw)
        assert (applied["model"][sub] if sub else applied[head]) == want
