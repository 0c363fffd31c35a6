"""A workdir belongs to one run: the lock, the stored configuration, metrics trimmed on
resume, and a finished or overshot run left alone. Real processes where it matters."""

import json
import signal
import time

import pytest

from resjax.train import config, loop, workdir


def rows(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def wait_for(condition, proc, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline and not condition():
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    assert condition()


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_second_run_is_refused_naming_the_holder_and_a_killed_holders_lock_is_taken_over(tmp_path, folder, train):
    first = train(tmp_path, folder, "steps=100000", "checkpoint_every=10", wait=False)
    lock = tmp_path / "lock.0"
    wait_for(lambda: (tmp_path / "checkpoints" / "10").exists(), first)
    second = train(tmp_path, folder, "steps=100000", "checkpoint_every=10")
    assert second.returncode == 2
    line = one_line(second.stderr)
    assert f"is in use by pid {first.pid} on " in line and "(resjax train --config tiny" in line and "another --workdir" in line
    kill(first)
    assert json.loads(lock.read_text())["pid"] == first.pid  # the dead holder's record is still there
    resumed = train(tmp_path, folder, f"steps={loop.latest_step(tmp_path) + 10}", "checkpoint_every=10",
                    "--allow-config-change")
    assert resumed.returncode == 0, resumed.stderr
    assert f"took over the lock of pid {first.pid}" in resumed.stderr
    assert lock.read_text() == ""  # released at the end: the next run finds no stale record


def test_resume_with_a_changed_field_is_refused_until_allowed_and_metrics_keep_one_row_per_step(tmp_path, folder, train):
    run = train(tmp_path, folder, "checkpoint_every=2", "log_every=1", wait=False)
    wait_for(lambda: (tmp_path / "checkpoints" / "6").exists(), run)
    kill(run)
    step = loop.latest_step(tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as f:  # what a kill can leave: rows past the checkpoint, a torn line
        f.write(json.dumps({"step": step + 1, "loss": 99.0}) + "\n" + '{"step": 1')
    oldest = min(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert oldest < step  # and a kill while orbax deletes the oldest checkpoint leaves it without metadata:
    (tmp_path / "checkpoints" / str(oldest) / "_CHECKPOINT_METADATA").unlink(missing_ok=True)  # no warning line
    saved = {p: p.read_bytes() for p in (tmp_path / "metrics.jsonl", tmp_path / "config.json")}

    refused = train(tmp_path, folder, "checkpoint_every=2", "log_every=1", "batch_size=8", "learning_rate=0.01")
    assert refused.returncode == 2
    line = one_line(refused.stderr)
    assert f"holds a run at step {step}" in line and "--allow-config-change" in line
    assert "batch_size: 16 → 8" in line and "learning_rate: 0.02 → 0.01" in line and "log_every" not in line
    assert {p: p.read_bytes() for p in saved} == saved and loop.latest_step(tmp_path) == step

    allowed = train(tmp_path, folder, "checkpoint_every=2", "log_every=1", "batch_size=8", "learning_rate=0.01",
                    "--allow-config-change")
    assert allowed.returncode == 0, allowed.stderr
    losses = [r["step"] for r in rows(tmp_path) if "loss" in r]
    assert losses == list(range(1, 21))  # each logged step once, nothing from the killed run's tail
    assert all(r.get("loss") != 99.0 for r in rows(tmp_path))
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["config"]["batch_size"] == 8
    assert stored["history"] == [{"step": step, "changed": {"batch_size": [16, 8], "learning_rate": [0.02, 0.01]}}]


def test_finished_run_says_so_and_steps_below_the_checkpoint_change_nothing(tmp_path, folder, train):
    assert train(tmp_path, folder).returncode == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    again = train(tmp_path, folder)
    assert again.returncode == 0 and again.stdout.startswith("already complete: ") and "20 steps" in again.stdout
    fewer = train(tmp_path, folder, "steps=10")
    assert fewer.returncode == 2 and "steps: 20 → 10" in one_line(fewer.stderr)
    allowed = train(tmp_path, folder, "steps=10", "--allow-config-change")
    assert allowed.returncode == 2
    assert "already at step 20, beyond steps=10: nothing to do, and nothing was changed" in one_line(allowed.stderr)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert loop.latest_step(tmp_path) == 20


def test_dry_run_validates_and_writes_nothing(tmp_path, folder, train):
    out = train(tmp_path / "new", folder, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert '"num_classes": 2' in out.stdout and "dry run: would start from scratch" in out.stdout
    assert not (tmp_path / "new").exists()


def test_lock_is_exclusive_within_one_machine_and_released_on_exit(tmp_path):
    with workdir.Lock(tmp_path, command="first") as held:
        assert held.stale is None and json.loads((tmp_path / "lock.0").read_text())["command"] == "first"
        with pytest.raises(workdir.WorkdirError, match=r"in use by pid \d+ .*\(first\)"):
            workdir.Lock(tmp_path).__enter__()
        with pytest.raises(workdir.WorkdirError):
            workdir.check_free(tmp_path)
        with workdir.Lock(tmp_path, process_index=1) as other:  # another process of the same run: its own lock
            assert other.stale is None
    workdir.check_free(tmp_path)
    with workdir.Lock(tmp_path) as again:
        assert again.stale is None and again.stale_note() is None


def test_trim_metrics_keeps_rows_up_to_the_checkpoint_and_drops_torn_ones(tmp_path):
    lines = [json.dumps({"step": s, "loss": 1.0}) for s in (5, 10, 15)] + [json.dumps({"step": 10, "test_accuracy": 0.5}),
                                                                           '{"step": 2', "not json"]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert workdir.trim_metrics(tmp_path, 10) == 3
    assert [(r["step"], "loss" in r) for r in rows(tmp_path)] == [(5, True), (10, True), (10, False)]
    assert workdir.trim_metrics(tmp_path, 10) == 0 and workdir.trim_metrics(tmp_path / "none", 3) == 0


def _plain(model):
    return json.loads(json.dumps(model))


def test_reconcile_ignores_bookkeeping_and_stores_the_configuration_of_a_fresh_run(tmp_path):
    base = config.load("tiny")
    assert workdir.reconcile(tmp_path, base, None, allow_change=False) == {}
    assert json.loads((tmp_path / "config.json").read_text())["config"]["steps"] == 20
    log_more = base.override(["log_every=1", "eval_every=3", "checkpoint_every=7", "keep_checkpoints=9"])
    assert workdir.reconcile(tmp_path, log_more, 5, allow_change=False) == {}
    with pytest.raises(workdir.WorkdirError, match="seed: 0 → 1"):
        workdir.reconcile(tmp_path, base.override(["seed=1"]), 5, allow_change=False)
    model = base.override(["model.conv_bias=true"])
    with pytest.raises(workdir.WorkdirError, match="model: "):
        workdir.reconcile(tmp_path, model, 5, allow_change=False)
    assert workdir.reconcile(tmp_path, model, 5, allow_change=True) == {"model": (base_model := _plain(base.model), {**base_model, "conv_bias": True})}


def test_a_stored_configuration_from_before_a_field_existed_resumes_with_the_fields_default(tmp_path):
    base = config.load("tiny")
    workdir.reconcile(tmp_path, base, None, allow_change=False)
    record = json.loads((tmp_path / "config.json").read_text())
    del record["config"]["xla_flags"], record["config"]["donate_state"]  # as a run of 2026-11-29 stored it
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert workdir.reconcile(tmp_path, base, 5, allow_change=False, write=False) == {}
    assert workdir.reconcile(tmp_path, base.override(["donate_state=false"]), 5, allow_change=False) == {}
    with pytest.raises(workdir.WorkdirError, match=r"xla_flags: \[\] → \['--xla_gpu_autotune_level=1'\]"):
        workdir.reconcile(tmp_path, base.override(['xla_flags=["--xla_gpu_autotune_level=1"]']), 5, allow_change=False)
