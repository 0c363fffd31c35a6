"""resjax train: a tiny network on a tiny image folder, sharded, resumed after SIGKILL, stopped on NaN."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from resjax.train import backend, loop, records

def params(workdir):
    return loop.load_checkpoint(workdir)["params"]


def assert_trees_close(a, b, **tol):
    import jax

    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, **tol)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, folder, train):
    workdir = tmp_path_factory.mktemp("reference")
    out = train(workdir, folder)
    assert out.returncode == 0, out.stderr
    return workdir


def test_tiny_run_learns_and_writes_its_record(reference):
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["test_accuracy"] == 1.0  # two separable classes
    assert summary["test_accuracy"] == summary["test_accuracy_single_view"]  # eval_flip is off
    assert 0.5 <= summary["test_accuracy_flip"] <= 1.0
    assert summary["seconds"] < summary["wall_seconds"] < 600  # the command: imports, data and compiles too
    assert 0 < summary["startup_seconds"] < summary["wall_seconds"] - summary["seconds"]
    phases = summary["phases"]
    assert list(phases) == ["imports_seconds", "listing_seconds", "backend_seconds", "setup_seconds", "data_seconds",
                            "state_seconds", "first_call_seconds"]  # the first two the CLI's
    assert min(phases.values()) > 0 and phases["first_call_seconds"] < summary["seconds"]
    # started in a thread before the trainer's imports: the trainer only waits for what is left of it
    assert 0 < summary["backend_start_seconds"] < phases["imports_seconds"] + phases["listing_seconds"] + phases["backend_seconds"]
    assert 0 < summary["compile_seconds"] < summary["wall_seconds"]
    assert summary["host"]["cores"] == os.cpu_count() and summary["host"]["device_kind"] == "cpu"
    assert abs(sum(phases.values()) - phases["first_call_seconds"] - summary["startup_seconds"]) < 1e-6
    rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "images_per_s"} <= rows[0].keys()
    assert any("test_accuracy" in r for r in rows)
    assert (reference / "curves.png").stat().st_size > 1000
    assert any((reference / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(int(p.name) for p in (reference / "checkpoints").iterdir() if p.name.isdigit())[-1] == 20


def test_sharded_over_four_devices_equals_one_device(tmp_path, folder, reference, train):
    out = train(tmp_path, folder, devices=4)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["devices"] == 4
    assert_trees_close(params(tmp_path), params(reference), rtol=2e-4, atol=2e-5)
    laid = tmp_path / "laid"  # the state in the layout XLA chooses, over the same four devices
    out = train(laid, folder, "state_layout=auto", devices=4)
    assert out.returncode == 0, out.stderr
    assert json.loads((laid / "config.json").read_text())["config"]["state_layout"] == "auto"
    assert_trees_close(params(laid), params(tmp_path), rtol=1e-5, atol=1e-6)


def test_config_splits_the_cpu_into_virtual_devices_unless_xla_flags_chose(tmp_path, folder, reference, train):
    out = train(tmp_path, folder, "cpu_devices=2", devices=None)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["devices"] == 2
    assert_trees_close(params(tmp_path), params(reference), rtol=2e-4, atol=2e-5)


def test_sigkill_then_resume_ends_with_the_same_parameters(tmp_path, folder, reference, train):
    proc = train(tmp_path, folder, "checkpoint_every=2", wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "checkpoints" / "6").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "checkpoints" / "6").exists(), proc.stderr.read()
    out = train(tmp_path, folder, "checkpoint_every=2")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["resumed_from"] >= 6
    assert_trees_close(params(tmp_path), params(reference), rtol=0, atol=0)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, folder, train):
    out = train(tmp_path, folder, "learning_rate=1e30", "checkpoint_every=1", "log_every=1")
    assert out.returncode == 3
    assert "non-finite" in out.stderr and "last good checkpoint" in out.stderr
    state = loop.load_checkpoint(tmp_path)
    import jax

    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state["params"]))


def test_missing_data_is_a_clear_error(tmp_path, train):
    out = train(tmp_path, tmp_path / "nowhere")
    assert out.returncode == 2 and "expected a directory, .tar or .tar.gz" in out.stderr


def test_two_processes_with_two_devices_each_equal_one_process(tmp_path, folder, reference, train):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [
        train(tmp_path, folder, devices=2, wait=False,
              flags=("--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)))
        for i in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["devices"] == 4 and summary["processes"] == 2
    assert_trees_close(params(tmp_path), params(reference), rtol=2e-4, atol=2e-5)


def test_embedded_digits_default_trains_without_any_download(tmp_path):
    cmd = [sys.executable, "-m", "resjax.cli", "train", "--config", "digits", "--quiet", "--workdir", str(tmp_path),
           "--set", "steps=250", "eval_every=250", "lr_boundaries=[200]"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["test_accuracy"] > 0.9


def test_summary_reuses_the_last_evaluation_and_a_finished_run_reports_without_writing(tmp_path, folder, monkeypatch):
    from resjax.train import config

    cfg = config.load("tiny").override([f"data={folder}", "num_classes=2", "steps=4", "eval_every=2", "checkpoint_every=4"])
    train_set, test_set = loop.load_splits(cfg)
    calls = []
    evaluate = loop.Trainer.evaluate
    monkeypatch.setattr(loop.Trainer, "evaluate", lambda self, state: calls.append(1) or evaluate(self, state))
    summary = loop.Trainer(cfg, tmp_path, train_set, test_set, progress=False).run()
    assert len(calls) == 2  # steps 2 and 4; the summary takes step 4's
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert summary["test_accuracy"] == [r for r in rows if "test_accuracy" in r][-1]["test_accuracy"]
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = loop.Trainer(cfg, tmp_path, train_set, test_set, progress=False).run()  # already at the end
    assert again["already_complete"] and len(calls) == 2  # reported from summary.json, not evaluated again
    assert again["test_accuracy"] == summary["test_accuracy"]
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if not p.name.startswith("lock")}
    assert after == {k: v for k, v in before.items() if not k.startswith("lock")}  # nothing rewritten


def test_several_steps_per_call_train_as_single_steps_do(tmp_path, folder):
    from resjax.train import config
    from resjax.train.workdir import WorkdirError

    base = config.load("tiny").override([f"data={folder}", "num_classes=2", "steps=8", "log_every=4", "eval_every=8",
                                         "checkpoint_every=4"])
    decoded, undecoded = loop.load_splits(base), loop.load_splits(base, decode=False)
    assert isinstance(undecoded[0], records.Records) and not isinstance(decoded[0], records.Records)
    train_set, test_set = decoded
    finals = {}
    for k, data in ((1, decoded), (4, undecoded)):  # also: Records decoded by the trainer train the same
        trainer = loop.Trainer(base.override([f"steps_per_call={k}"]), tmp_path / str(k), *data, progress=False)
        summary = trainer.run()
        assert summary["steps"] == 8
        finals[k] = trainer.final_state["params"]
    assert_trees_close(finals[4], finals[1], rtol=1e-5, atol=1e-6)
    rows = [json.loads(line) for line in (tmp_path / "4" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [4, 8]
    with pytest.raises(WorkdirError, match="not a multiple of steps_per_call=8"):  # its checkpoint is at 4
        loop.Trainer(base.override(["steps=16", "steps_per_call=8", "log_every=8", "checkpoint_every=8",
                                    "eval_every=16"]), tmp_path / "4", train_set, test_set, progress=False,
                     allow_config_change=True).check_resume(4)


def test_regularisers_train_alike_on_one_and_four_devices_and_the_average_stays_on_resume(tmp_path, folder, train):
    one, four = tmp_path / "one", tmp_path / "four"
    regularisers = ("ema_decay=0.9", "mixup=0.4", "model.drop_path=0.3")
    for workdir, devices in ((one, 1), (four, 4)):
        out = train(workdir, folder, *regularisers, devices=devices)
        assert out.returncode == 0, out.stderr
    saved = loop.load_checkpoint(one)
    assert_trees_close(saved["ema"], loop.load_checkpoint(four)["ema"], rtol=2e-4, atol=2e-5)  # same draws
    assert_trees_close(saved["params"], params(four), rtol=2e-4, atol=2e-5)
    summary = json.loads((one / "summary.json").read_text())
    for key in ("test_accuracy_single_view", "test_accuracy_flip", "test_loss_single_view"):
        assert 0 <= summary[f"{key}_no_ema"] and key in summary
    assert summary["test_loss_single_view"] != summary["test_loss_single_view_no_ema"]  # two parameter sets
    out = train(one, folder, "ema_decay=0", "mixup=0.4", "model.drop_path=0.3", "steps=30",
                flags=("--allow-config-change",))
    assert out.returncode == 2 and "ema_decay=0.9" in out.stderr and "cannot be dropped" in out.stderr


def test_progressive_resizing_compiles_a_step_per_side_and_resumes_mid_phase_as_uninterrupted(tmp_path, folder):
    import shutil

    from resjax.train import config

    base = config.load("tiny").override([f"data={folder}", "num_classes=2", "steps=8", "log_every=2", "eval_every=2",
                                         "eval_from=5", "checkpoint_every=2", "keep_checkpoints=10"])
    train_set, test_set = loop.load_splits(base)
    small = base.override(["progressive_resizing=[[4, 4]]"])
    whole = loop.Trainer(small, tmp_path / "whole", train_set, test_set, progress=False)
    summary = whole.run()
    assert set(summary["compiles"]) == {"train_4", "train", "evaluate"}
    assert summary["compile_seconds"] == sum(c["seconds"] for c in summary["compiles"].values())
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "test_accuracy" in r] == [6, 8]  # every 2 steps from step 5 on
    plain = loop.Trainer(base, tmp_path / "plain", train_set, test_set, progress=False)
    plain.run()
    with pytest.raises(AssertionError):  # the 4 x 4 images changed the training
        assert_trees_close(plain.final_state["params"], whole.final_state["params"], rtol=1e-3)
    resumed = tmp_path / "resumed"  # the run as a kill at step 2 (inside the small phase) leaves it
    shutil.copytree(tmp_path / "whole", resumed)
    (resumed / "summary.json").unlink()
    for late in (4, 6, 8):
        shutil.rmtree(resumed / "checkpoints" / str(late))
    again = loop.Trainer(small, resumed, train_set, test_set, progress=False)
    assert again.run()["resumed_from"] == 2
    assert_trees_close(again.final_state["params"], whole.final_state["params"], rtol=0, atol=0)


def test_kernels_laid_out_output_channels_major_train_evaluate_and_resume_as_the_row_major_ones(tmp_path, folder):
    # state_layout="ohwi" goes the way "auto" does once XLA has chosen (its compile's formats
    # become the state's), with the choice a GPU would make, we expect; XLA's CPU backend
    # itself chooses row-major, and honours an explicit layout
    import shutil

    import jax

    from resjax.train import config

    base = config.load("tiny").override([f"data={folder}", "num_classes=2", "steps=8", "log_every=2", "eval_every=4",
                                         "checkpoint_every=4", "keep_checkpoints=10", "ema_decay=0.9",
                                         "progressive_resizing=[[2, 4]]"])  # the 4-pixel step chooses; the rest follow
    train_set, test_set = loop.load_splits(base)
    plain = loop.Trainer(base, tmp_path / "plain", train_set, test_set, progress=False)
    expected = plain.run()
    ohwi = base.override(["state_layout=ohwi"])
    laid = loop.Trainer(ohwi, tmp_path / "laid", train_set, test_set, progress=False)
    summary = laid.run()
    def orders(state, ndim):
        return {a.format.layout.major_to_minor for a in jax.tree.leaves(state) if a.ndim == ndim}

    kernels = [a for a in jax.tree.leaves(laid.final_state) if a.ndim == 4]  # parameters, momenta, average
    assert len(kernels) > 4 and orders(laid.final_state, 4) == {(3, 0, 1, 2)}
    assert all(a.format.layout.major_to_minor == tuple(range(a.ndim))  # the rest row-major
               for a in jax.tree.leaves(laid.final_state) if a.ndim != 4)
    assert_trees_close(laid.final_state, plain.final_state, rtol=1e-5, atol=1e-6)  # the same training
    for key in ("test_accuracy_single_view", "test_accuracy_flip_no_ema"):  # the average and the raw parameters
        assert summary[key] == expected[key]
    assert summary["test_loss_single_view"] == pytest.approx(expected["test_loss_single_view"], rel=1e-5)
    assert_trees_close(loop.load_checkpoint(tmp_path / "laid"), loop.load_checkpoint(tmp_path / "plain"), rtol=1e-5,
                       atol=1e-6)  # saved as any checkpoint is
    resumed = tmp_path / "resumed"  # killed after the checkpoint at step 4
    shutil.copytree(tmp_path / "laid", resumed)
    (resumed / "summary.json").unlink()
    shutil.rmtree(resumed / "checkpoints" / "8")
    again = loop.Trainer(ohwi, resumed, train_set, test_set, progress=False)
    assert again.run()["resumed_from"] == 4
    assert_trees_close(again.final_state, laid.final_state, rtol=0, atol=0)
    assert orders(again.final_state, 4) == {(3, 0, 1, 2)}  # the restored checkpoint laid out again


def test_output_major_puts_a_kernels_output_channels_after_its_stacking_axis_and_leaves_the_rest():
    leaf = lambda ndim: np.zeros((1,) * ndim)
    assert loop.output_major(leaf(4)) == (3, 0, 1, 2)  # (H, W, I, O): O, H, W, I in memory
    assert loop.output_major(leaf(5)) == (0, 4, 1, 2, 3)  # model.scan_blocks's stacked kernels: blocks first
    assert [loop.output_major(leaf(n)) for n in (0, 1, 2)] == [(), (0,), (0, 1)]


def test_scanned_blocks_train_laid_out_output_channels_major_and_resume_bitwise(tmp_path, folder):
    import shutil

    import jax

    from resjax.train import config

    cfg = config.load("tiny").override([f"data={folder}", "num_classes=2", "steps=4", "log_every=2", "eval_every=2",
                                        "checkpoint_every=2", "model.blocks=[3,3]", "model.scan_blocks=true",
                                        "model.drop_path=0.2", "state_layout=ohwi", "ema_decay=0.9"])
    train_set, test_set = loop.load_splits(cfg)
    with pytest.warns(UserWarning, match="scan_blocks=true on a CPU"):  # slow here: a GPU's lever
        whole = loop.Trainer(cfg, tmp_path / "whole", train_set, test_set, progress=False)
    summary = whole.run()
    assert 0 <= summary["test_accuracy"] <= 1 and np.isfinite(summary["test_loss"])
    stacked = [a for a in jax.tree.leaves(whole.final_state) if a.ndim == 5]  # parameters, momenta, average
    assert len(stacked) == 12 and {a.shape[0] for a in stacked} == {2}  # 2 stages x 2 convolutions x 3
    assert {a.format.layout.major_to_minor for a in stacked} == {(0, 4, 1, 2, 3)}
    resumed = tmp_path / "resumed"  # killed after the checkpoint at step 2
    shutil.copytree(tmp_path / "whole", resumed)
    (resumed / "summary.json").unlink()
    shutil.rmtree(resumed / "checkpoints" / "4")
    with pytest.warns(UserWarning, match="scan_blocks"):
        again = loop.Trainer(cfg, resumed, train_set, test_set, progress=False)
    assert again.run()["resumed_from"] == 2
    assert_trees_close(again.final_state, whole.final_state, rtol=0, atol=0)


def test_the_loop_trains_the_first_side_while_the_later_steps_compile(tmp_path, folder, monkeypatch):
    from resjax.train import config

    cfg = config.load("tiny").override([f"data={folder}", "num_classes=2", "steps=8", "eval_every=2", "eval_from=5",
                                        "checkpoint_every=8", "progressive_resizing=[[4, 4]]"])
    compile_step = loop.Trainer._compile

    def slow_full_size(self, key, count):  # compile_order: 4, None (step 4), "evaluate" (after step 6)
        if key is None:
            time.sleep(5)
        return compile_step(self, key, count)

    monkeypatch.setattr(loop.Trainer, "_compile", slow_full_size)
    summary = loop.Trainer(cfg, tmp_path, *loop.load_splits(cfg), progress=False).run()
    waited = summary["compiles"]["train"]["waited"]
    assert waited > 1.0 and summary["seconds"] > waited  # the loop reached step 4 before the full-size step compiled


def test_steps_compile_in_the_order_the_run_first_calls_them():
    from resjax.train import config

    cfg = config.load("cpu").override(["steps=2200", "progressive_resizing=[[1000,16],[1600,24]]", "eval_every=200",
                                       "eval_from=1600"])
    assert loop.compile_order(cfg, 0) == [16, 24, "evaluate", None]  # evaluated after step 1,600, before training it
    assert loop.compile_order(cfg, 1000) == [24, "evaluate", None]  # a resumed run compiles no side it is past
    assert loop.compile_order(cfg, 1800) == [None, "evaluate"]
    assert loop.compile_order(cfg, 2200) == ["evaluate"]  # resumed at the end: only its evaluation is left
    early = cfg.override(["eval_from=0", "progressive_resizing=[[1000,16],[1600,16]]"])
    assert loop.compile_order(early, 0) == [16, "evaluate", None]  # the first evaluation, after step 200
    assert loop.compile_order(early, 1300) == [16, "evaluate", None]  # the next, after step 1,400
    assert [loop.compile_name(k) for k in (16, None, "evaluate")] == ["train_16", "train", "evaluate"]


def test_progressive_resizing_sides_the_data_or_network_cannot_take_are_refused(folder):
    from resjax.train import config

    base = config.load("tiny").override([f"data={folder}", "num_classes=2"])
    classes, labels = ["dark", "light"], (None, None)
    with pytest.raises(ValueError, match="16 x 16 training images, larger than the 8 x 8 images"):
        loop.validate(base.override(["progressive_resizing=[[4, 16]]"]), classes, labels, (8, 8, 3))
    with pytest.raises(ValueError, match="the network does not take 3 x 3 images"):
        loop.validate(base.override(["progressive_resizing=[[4, 3]]"]), classes, labels, (8, 8, 3))


def test_host_description_names_the_processor_and_its_vector_extensions(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma\n\n"
                       "processor\t: 1\nmodel name\t: other\nflags\t\t: avx512f\n")
    host = loop.host_description(str(cpuinfo))
    assert (host["processor"], host["simd"]) == ("AMD EPYC", ["avx2"])  # the first processor's lines
    assert "simd" not in loop.host_description(str(tmp_path / "absent"))  # no /proc/cpuinfo: what platform says


def test_the_host_initialises_at_a_lower_llvm_level_with_bitwise_the_default_compiles_state(tmp_path, folder):
    import jax

    from resjax.train import config

    cfg = config.load("tiny").override([f"data={folder}", "num_classes=2", "ema_decay=0.9",
                                        'model={"stem":[3,4,1],"widths":[8],"blocks":[1],"strides":[1],'
                                        '"init_scheme":"fixup","conv_bias":true}'])
    trainer = loop.Trainer(cfg, tmp_path, *loop.load_splits(cfg), progress=False)
    fast = loop.on_host(trainer._init, 3)  # HOST_INIT_OPTIONS
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        # XLA's default LLVM level (3 in DebugOptions), whatever XLA_FLAGS says (the suite's is 0)
        default = jax.device_get(jax.jit(trainer._init).lower(jax.random.key(3)).compile(
            {"xla_backend_optimization_level": 3})(jax.random.key(3)))
    assert jax.tree.structure(fast) == jax.tree.structure(default) and len(jax.tree.leaves(fast)) >= 10
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(default)):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)


def test_the_training_set_is_one_buffer_that_every_cpu_device_shares():
    # 4 virtual devices need a fresh process; the array starts one byte off alignment
    code = """
import numpy as np, jax
from resjax.train import loop
images = np.arange(1 + 6 * 8 * 8 * 3, dtype=np.uint8)[1:].reshape(6, 8, 8, 3)
expected = images.copy()
rep = jax.sharding.NamedSharding(loop.make_mesh(), jax.sharding.PartitionSpec())
def buffers(a):
    return len(a.addressable_shards), len({s.data.unsafe_buffer_pointer() for s in a.addressable_shards})
shared, copied = loop.replicate(images, rep), jax.device_put(images, rep)
images[...] = 0  # the caller's array: the devices keep a copy of their own
print(*buffers(shared), *buffers(copied), np.array_equal(np.asarray(shared), expected))
"""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["4", "1", "4", "4", "True"]  # one buffer for 4 devices; a plain device_put: 4


def test_a_configurations_xla_flags_reach_xla_and_are_recorded(tmp_path, folder, train):
    dump = tmp_path / "dump"
    out = train(tmp_path / "run", folder, "steps=2", "eval_every=2", "checkpoint_every=2", "log_every=1",
                f'xla_flags=["--xla_dump_to={dump}"]')
    assert out.returncode == 0, out.stderr[-2000:]
    assert any(p.name.endswith(".txt") for p in dump.iterdir())  # XLA dumped the run's modules where told
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert config["xla_flags"] == [f"--xla_dump_to={dump}"]


def test_xla_flags_are_refused_once_the_backend_has_started(monkeypatch):
    import jax

    jax.devices()  # the backend starts, and XLA has read XLA_FLAGS
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_autotune_level=1")
    backend.add_xla_flags(("--xla_gpu_autotune_level=1",))  # already there: nothing to add, nothing refused
    with pytest.raises(ValueError, match="already started its backend, so XLA would ignore --xla_dump_to=x"):
        backend.add_xla_flags(("--xla_gpu_autotune_level=1", "--xla_dump_to=x"))
    assert os.environ["XLA_FLAGS"] == "--xla_gpu_autotune_level=1"
