"""benchmarks/gpu.sh end to end on CPU with a tiny network (TINY=1), and its pieces:
the step report's ratios and the profile summary."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import compile_stats  # noqa: E402
import launches  # noqa: E402
import levers  # noqa: E402
import step_report  # noqa: E402
import train_step  # noqa: E402

PEER = ROOT.parent / "shared" / "bench" / "peer_step.py"
# Where ../shared is absent (a clone elsewhere), a stand-in writes the peers' JSON format.
STAND_IN = '''import argparse, json, os
a = argparse.ArgumentParser(); a.add_argument("--out"); a.add_argument("--batches"); a.add_argument("--dtypes")
for flag in ("--which", "--steps"): a.add_argument(flag)
a.add_argument("--tiny", action="store_true"); x = a.parse_args()
rows = [dict(impl="jax", dtype=x.dtypes, batch=int(b), img_per_s=1000) for b in x.batches.split(",")]
json.dump(dict(flop_per_img=1.0, rows=rows), open(os.path.join(x.out, "peer_step.json"), "w"))
'''
# the network's shape only: each configuration keeps its own options (fast's standardisation, ...)
TINY_XLA = "--xla_backend_optimization_level=0"  # what gpu.sh's TINY adds to XLA_FLAGS
TINY_NET = "model.stem=[3,4,1] model.widths=[8,16] model.blocks=[1,1] model.strides=[1,2]"
UNTUNED, STATS = "--xla_gpu_autotune_level=0", "--xla_gpu_print_compilation_stats"
FUSION = "--xla_gpu_experimental_enable_conv_fusion=true"


@pytest.fixture(scope="module")
def out(tmp_path_factory, folder):
    dest = tmp_path_factory.mktemp("gpu")
    peer = dest / "peer_step.py"
    if PEER.exists():
        shutil.copy(PEER, peer)
    else:
        peer.write_text(STAND_IN)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TINY": "1", "DATA": str(folder), "PEER_STEP": str(peer),
           "DEST": str(dest), "PYTHON": sys.executable,
           "TRAIN_SET": f"{TINY_NET} num_classes=2 steps=4 batch_size=16 eval_every=2 checkpoint_every=4 "
                        "warmup_steps=1"}
    env.pop("XLA_FLAGS", None)
    # two scripts at once, one per core of a 2-core CI machine: the training runs, then the
    # step variants (about 3 and 3.5 minutes one after the other, 2026-11-30)
    groups = [["a", "b", "g", "n", "s", "f", "l", "o", "t", "p", "q"], ["x", "y", "r", "k", "best"]]
    procs = [subprocess.Popen(["bash", str(ROOT / "benchmarks" / "gpu.sh"), *parts], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for parts in groups]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return dest, "".join(stdout for stdout, _ in outputs)


def test_part_a_measures_resjax_and_the_peers_side_by_side(out):
    dest, stdout = out
    bench = json.loads((dest / "a" / "step_benchmark.json").read_text())
    assert bench["peers_ran"] and bench["ceiling_tflops"] > 0
    for batch in (16, 32):
        entry = bench[f"b{batch}_float32"]
        assert entry["resjax_images_per_s"] > 0 and 0 < entry["resjax_ceiling_fraction"]
        assert entry["resjax_vs_jax_peer_ratio"] == pytest.approx(
            entry["resjax_images_per_s"] / entry["jax_peer_images_per_s"])
    for batch in (16, 32):  # each batch size profiled
        profile = json.loads((dest / "a" / "profile" / f"b{batch}_float32" / "profile_summary.json").read_text())
        assert profile["batch"] == batch and "note" in profile  # a CPU trace has no device events
    assert "jax_peer x" in stdout
    for key in ("b16_float32", "b32_float32_x2"):  # each also with the state laid out as XLA chooses
        entry = bench[f"{key}_auto_layout"]
        assert entry["resjax_images_per_s"] > 0 and "resjax_vs_jax_peer_ratio" in entry
        assert entry["relaid_layouts"]["leaves"] > 0 and entry["relaid_layouts"]["relaid"] == 0  # XLA CPU: row-major
    assert "otherwise than row-major" in stdout
    if PEER.exists():  # the real peer runs under XLA's dump: its step's launches beside resjax's
        peer_launches = json.loads((dest / "a" / "peer_launches.json").read_text())
        assert set(peer_launches) == {"16", "32"} and not (dest / "a" / "peer_dump").exists()
        entry = bench["b16_float32"]
        assert entry["jax_peer_launches"] == sum(peer_launches["16"].values()) > 0
        assert entry["resjax_launches"] > 0 and "launches per step: resjax" in stdout


def test_parts_a_and_b_train_the_fast_config_with_seeds_0_and_1(out):
    dest, _ = out
    results = [json.loads((dest / f"fast_seed{s}" / "result.json").read_text()) for s in (0, 1)]
    for seed, r in enumerate(results):
        assert r["exit_status"] == 0 and r["steps"] == 4
        assert 0.0 <= r["test_accuracy_single_view"] <= 1.0 and 0.0 <= r["test_accuracy_flip"] <= 1.0
        assert r["seconds"] < r["wall_seconds"] <= r["command_seconds"] + 1.0
        # step, single-view, flip-averaged, single-view of the raw parameters (fast averages them)
        assert [step for step, *_ in r["curve"]] == [2, 4] and [len(row) for row in r["curve"]] == [4, 4]
        assert 0.0 <= r["test_accuracy_single_view_no_ema"] <= 1.0
        assert 0.0 <= r["final_train_accuracy"] <= 1.0 and r["final_train_loss"] > 0
        config = json.loads((dest / f"fast_seed{seed}" / "run" / "config.json").read_text())["config"]
        assert config["seed"] == seed and config["batch_size"] == 16 and config["nesterov"]  # fast, tiny-sized
        assert (config["mixup"], config["ema_decay"], config["model"]["drop_path"]) == (0.2, 0.999, 0.2)
        assert config["model"]["weight_standardization"] is True and config["learning_rate"] == 0.4
        assert config["model"]["widths"] == [8, 16]  # the tiny shape, merged into fast's network


def test_part_p_trains_fast_with_progressive_resizing(out):
    dest, _ = out
    result = json.loads((dest / "fast_progressive_seed0" / "result.json").read_text())
    assert result["exit_status"] == 0 and result["steps"] == 4
    assert set(result["compiles"]) == {"train_4", "evaluate", "train"}  # each side's compile time, for the reading
    config = json.loads((dest / "fast_progressive_seed0" / "run" / "config.json").read_text())["config"]
    assert config["progressive_resizing"] == [[2, 4]] and config["progressive_mode"] == "resize" and config["nesterov"]


def test_part_q_trains_fast_longer_with_progressive_resizing(out):
    dest, _ = out
    result = json.loads((dest / "fast_longer_seed0" / "result.json").read_text())
    assert result["exit_status"] == 0 and result["steps"] == 6 and [row[0] for row in result["curve"]] == [2, 4, 6]
    config = json.loads((dest / "fast_longer_seed0" / "run" / "config.json").read_text())["config"]
    assert config["progressive_resizing"] == [[2, 4]] and config["mixup"] == 0.2 and config["nesterov"]


def test_part_g_trains_paper_with_logits_in_the_compute_dtype(out):
    dest, _ = out
    result = json.loads((dest / "paper_bf16_logits_seed0" / "result.json").read_text())
    assert result["exit_status"] == 0 and result["steps"] == 4
    config = json.loads((dest / "paper_bf16_logits_seed0" / "run" / "config.json").read_text())["config"]
    assert config["model"]["float32_head"] is False and not config["nesterov"] and config["learning_rate"] == 0.05


def test_part_n_trains_fast_with_batch_norm_and_no_average(out):
    dest, _ = out
    result = json.loads((dest / "fast_batchnorm_seed0" / "result.json").read_text())
    assert result["exit_status"] == 0 and result["steps"] == 4 and len(result["curve"][0]) == 3  # no _no_ema view
    config = json.loads((dest / "fast_batchnorm_seed0" / "run" / "config.json").read_text())["config"]
    assert (config["model"]["norm"], config["model"]["init_scheme"], config["ema_decay"]) == ("batch", "standard", 0.0)
    assert config["model"]["weight_standardization"] is False and config["learning_rate"] == 0.2
    assert config["mixup"] == 0.2 and config["model"]["drop_path"] == 0.2  # otherwise fast
    state = json.loads((dest / "fast_batchnorm_seed0" / "run" / "summary.json").read_text())
    assert "test_accuracy_single_view_no_ema" not in state


def test_part_s_trains_fast_with_fewer_steps(out):
    dest, _ = out
    result = json.loads((dest / "fast_6000_seed0" / "result.json").read_text())
    assert result["exit_status"] == 0 and result["steps"] == 3 and [row[0] for row in result["curve"]] == [2, 3]
    config = json.loads((dest / "fast_6000_seed0" / "run" / "config.json").read_text())["config"]
    assert config["checkpoint_every"] == 3 and config["model"]["weight_standardization"] is True  # otherwise fast
    assert (config["learning_rate"], config["mixup"], config["ema_decay"]) == (0.4, 0.2, 0.999)


def test_part_f_trains_fast_with_the_fusible_relus_under_the_convolution_fusion(out):
    dest, _ = out
    assert json.loads((dest / "fast_fused_seed0" / "result.json").read_text())["exit_status"] == 0
    config = json.loads((dest / "fast_fused_seed0" / "run" / "config.json").read_text())["config"]
    assert config["xla_flags"] == ["--xla_gpu_experimental_enable_conv_fusion=true"]  # the configuration's own
    assert config["model"]["fusible_relu"] is True and config["model"]["weight_standardization"] is True
    # none from outside but TINY's own (XLA CPU's fastest compile)
    assert json.loads((dest / "fast_6000_seed0" / "result.json").read_text())["xla_flags"] == TINY_XLA


def test_part_l_trains_fast_with_the_state_laid_out_as_xla_chooses(out):
    dest, _ = out
    assert json.loads((dest / "fast_layout_seed0" / "result.json").read_text())["exit_status"] == 0
    config = json.loads((dest / "fast_layout_seed0" / "run" / "config.json").read_text())["config"]
    assert config["state_layout"] == "auto" and config["model"]["weight_standardization"] is True  # otherwise fast


def test_part_o_trains_fast_with_its_kernels_output_channels_major(out):
    dest, _ = out
    assert json.loads((dest / "fast_ohwi_seed0" / "result.json").read_text())["exit_status"] == 0
    config = json.loads((dest / "fast_ohwi_seed0" / "run" / "config.json").read_text())["config"]
    assert config["state_layout"] == "ohwi" and config["model"]["weight_standardization"] is True  # otherwise fast


def test_part_t_trains_fast_with_xlas_autotuner_off(out):
    dest, _ = out
    result = json.loads((dest / "fast_untuned_seed0" / "result.json").read_text())
    assert result["exit_status"] == 0 and result["xla_flags"] == TINY_XLA  # the level: the configuration's own
    config = json.loads((dest / "fast_untuned_seed0" / "run" / "config.json").read_text())["config"]
    assert config["xla_flags"] == [UNTUNED] and config["state_layout"] == "default"
    assert config["model"]["weight_standardization"] is True and config["learning_rate"] == 0.4  # otherwise fast


def test_part_x_measures_the_step_under_each_variant_against_the_baseline(out):
    dest, stdout = out
    runs = json.loads((dest / "x" / "variants.json").read_text())
    fusion, layout = "--xla_gpu_experimental_enable_conv_fusion=true", "--state-layout ohwi"
    assert [(r["xla_flags"], r["model"], r["args"]) for r in runs] == [
        ("", "", ""), ("", "fusible_relu=true", ""), (fusion, "", ""), (fusion, "fusible_relu=true", ""),
        ("", "", layout), (fusion, "fusible_relu=true", layout), ("", "", "")]  # last: the spread between processes
    assert runs[0]["compile_s"]["16"] > 0
    assert runs[0]["ran"] and runs[0]["vs_baseline_ratio"] == {"16": 1.0}
    assert all(r["ran"] for r in runs)  # on CPU the GPU flags are accepted and change nothing
    for r in runs[1:]:
        assert r["vs_baseline_ratio"] == {"16": pytest.approx(r["images_per_s"]["16"] / runs[0]["images_per_s"]["16"])}
    for i, r in enumerate(runs):  # what each compiled step launches, its HLO and its profile
        assert r["hlo_ops"]["16"].get("convolution", 0) + r["hlo_ops"]["16"].get("fusion/kLoop", 0) > 0
        suffix = "_ohwi_layout" if r["args"] else ""
        assert "ENTRY" in (dest / "x" / f"hlo_{i}" / f"step_b16_float32_x1{suffix}.hlo.txt").read_text()
        summary = dest / "x" / f"profile_{i}" / f"b16_float32{suffix}" / "profile_summary.json"
        assert json.loads(summary.read_text())["batch"] == 16 and r["profile_us"] == {}  # no device events on CPU
        assert (r["relaid_layouts"]["16"]["relaid"] > 0) == bool(r["args"])  # ohwi: the kernels, the rest row-major
    assert "  launches: " in stdout
    network = json.loads((dest / "x" / "step_3.json").read_text())["network"]
    assert network.endswith("with fusible_relu=true")  # the option reached the benchmark's network
    assert "(baseline): b16" in stdout and "--xla_gpu_experimental_enable_conv_fusion=true fusible_relu=true: b16" in stdout
    assert json.loads((dest / "x" / "step_4.json").read_text())["rows"][0]["state_layout"] == "ohwi"
    assert "--state-layout ohwi: b16" in stdout and "arrays laid out otherwise than row-major" in stdout


def test_part_y_measures_what_fast_networks_options_cost_and_the_fusion_levers(out):
    dest, _ = out
    runs = json.loads((dest / "y" / "variants.json").read_text())
    assert [(r["xla_flags"], r["model"]) for r in runs] == [
        ("", ""), ("", "weight_standardization=false"), ("", "conv_bias=false"), ("", "fusible_relu=true"),
        ("--xla_gpu_experimental_enable_conv_fusion=true", "fusible_relu=true"),
        ("--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL", "")]
    assert all(r["ran"] and r["images_per_s"]["16"] > 0 for r in runs)
    assert json.loads((dest / "y" / "step_1.json").read_text())["network"].endswith("with weight_standardization=false")
    assert json.loads((dest / "y" / "step_2.json").read_text())["network"].endswith("with conv_bias=false")


def test_part_r_measures_fasts_whole_step_without_each_part_of_its_recipe(out):
    dest, _ = out
    runs = json.loads((dest / "r" / "variants.json").read_text())
    assert [(r["xla_flags"], r["model"]) for r in runs] == [
        ("", ""), ("", "ema_decay=0"), ("", "mixup=0"), ("", "grad_clip=null"), ("", "model.weight_standardization=false"),
        ("", "donate_state=false"), ("--xla_gpu_experimental_enable_conv_fusion=true", "model.fusible_relu=true"),
        ("", ""), ("", "")]
    assert [r["args"] for r in runs[-2:]] == ["--state-layout auto", "--state-layout ohwi"]
    assert not any(r["args"] for r in runs[:-2])
    ohwi = runs[-1]["relaid_layouts"]["16"]  # every kernel, its momentum and its average; the rest row-major
    assert ohwi["relaid"] >= 3 and {tuple(order) for order in ohwi["examples"].values()} == {(3, 0, 1, 2)}
    assert all(len(shape.split(",")) == 4 for shape in ohwi["examples"])
    assert all(r["ran"] and r["images_per_s"]["16"] > 0 for r in runs)
    network = json.loads((dest / "r" / "step_0.json").read_text())["network"]
    assert network.startswith("the fast config's whole training step") and "model.widths=[8,16]" in network
    hlo = [(dest / "r" / f"hlo_{i}" / "step_b16_float32_x1.hlo.txt").read_text() for i in range(len(runs) - 2)]
    launches = [sum(r["hlo_ops"]["16"].values()) for r in runs]
    assert launches[1] < launches[0]  # the parameter average's update is part of the measured step
    assert "input_output_alias" in hlo[0].split("\n", 1)[0] and "input_output_alias" not in hlo[5].split("\n", 1)[0]


def test_part_k_measures_the_compile_levers_on_fasts_whole_step(out):
    dest, stdout = out
    runs = json.loads((dest / "k" / "variants.json").read_text())
    assert [(r["xla_flags"], r["model"], r["args"]) for r in runs] == [
        (STATS, "", ""), (f"{STATS} --xla_gpu_autotune_level=1", "", ""), (f"{STATS} {UNTUNED}", "", ""),
        (f"{STATS} {FUSION}", "model.fusible_relu=true", ""), (f"{STATS} {FUSION} {UNTUNED}", "model.fusible_relu=true", ""),
        (STATS, "model.scan_blocks=true", "")]
    assert all(r["ran"] and r["compile_s"]["16"] > 0 for r in runs)  # on CPU the GPU flags are accepted
    assert all(r["compile_stats"] is None for r in runs)  # XLA logs them on a GPU only
    network = json.loads((dest / "k" / "step_0.json").read_text())["network"]
    assert network.startswith("the fast config's whole training step") and "model.widths=[8,16]" in network
    assert "model.scan_blocks=true" in json.loads((dest / "k" / "step_5.json").read_text())["network"]
    assert runs[5]["hlo_ops"]["16"]["while"] > runs[0]["hlo_ops"]["16"]["while"]  # stage 2's later blocks: a loop
    # what each would change in fast's run: 7,000 steps of 512, here at the tiny step's rate
    assert runs[0]["over_fast_seconds"] == {"batch": 16, "compile": 0.0, "steps": 0.0}
    for r in runs[1:]:
        moved = r["over_fast_seconds"]
        assert moved["compile"] == pytest.approx(r["compile_s"]["16"] - runs[0]["compile_s"]["16"])
        rates = r["images_per_s"]["16"], runs[0]["images_per_s"]["16"]
        assert moved["steps"] == pytest.approx(7000 * 512 * (1 / rates[0] - 1 / rates[1]))
    assert f"{STATS} {UNTUNED}, over fast's 7,000 steps of 512 at b16's rate: compile " in stdout


def test_part_best_trains_fast_with_the_variant_part_k_chose(out):
    dest, stdout = out
    runs = json.loads((dest / "k" / "variants.json").read_text())
    choice = json.loads((dest / "fast_best_seed0" / "choice.json").read_text())
    chosen = levers.choose(runs, 7000, 512, head=10.6, margin=2.0)  # from k's figures, whatever they were
    assert choice["chosen"] == chosen and choice["overrides"] == levers.overrides(runs[chosen])
    result = json.loads((dest / "fast_best_seed0" / "result.json").read_text())
    assert result["exit_status"] == 0 and result["test_accuracy_single_view"] is not None
    config = json.loads((dest / "fast_best_seed0" / "run" / "config.json").read_text())["config"]
    assert config["xla_flags"] == [f for f in runs[chosen]["xla_flags"].split() if f != STATS]
    for field in runs[chosen]["model"].split():  # model.NAME=true
        assert config["model"][field.split("=")[0].removeprefix("model.")] is True
    assert re.search(r"train \S+/fast_best_seed0: resjax train --config fast --set seed=0 .*"
                     + re.escape(" ".join(choice["overrides"])) + "$", stdout, re.M)


def k_run(flags="", model="", args="", rate=1000.0, compile_s=30.0) -> dict:
    """A row of part k's variants.json, at batch 512."""
    return {"xla_flags": flags, "model": model, "args": args, "ran": True, "images_per_s": {"512": rate},
            "compile_s": {"512": compile_s}}


def test_levers_chooses_the_variant_that_shortens_the_command_and_counts_no_compile_saving_beyond_the_wait():
    # a run of 1,000 steps of 512: at 1,000 images/s the steps take 512 s
    fused = k_run(f"{STATS} {FUSION}", "model.fusible_relu=true", rate=1024.0)  # 12 s faster steps
    untuned = k_run(f"{STATS} {UNTUNED}", rate=1000.0 * 512 / 532, compile_s=5.0)  # 20 s slower steps
    base = k_run(STATS)
    # the baseline's wait is 30 - 10 = 20 s: level 0's 25-s shorter compile saves only those 20
    assert levers.projected([base, fused, untuned], 1000, 512, head=10.0) == pytest.approx([0.0, -12.0, 0.0])
    assert levers.choose([base, fused, untuned], 1000, 512, head=10.0, margin=2.0) == 1
    assert levers.overrides(fused) == [f'xla_flags=["{FUSION}"]', "model.fusible_relu=true"]
    # with the whole compile waited for, level 0 would win: -25 + 20
    assert levers.projected([base, untuned], 1000, 512, head=0.0)[1] == pytest.approx(-5.0)
    # a saving within the margin keeps the baseline, which needs no override
    assert levers.choose([base, k_run(STATS, rate=1001.0)], 1000, 512, head=10.0, margin=2.0) == 0
    assert levers.overrides(base) == []
    assert levers.overrides(k_run("", "", "--state-layout ohwi")) == ["state_layout=ohwi"]
    with pytest.raises(ValueError, match="--steps-per-call 8"):
        levers.overrides(k_run("", "", "--steps-per-call 8"))
    failed = {**k_run(UNTUNED), "ran": False, "images_per_s": {}, "compile_s": {}}  # a variant that did not run
    assert levers.projected([base, failed], 1000, 512, head=10.0) == [0.0, None]


def test_levers_cli_prints_the_overrides_and_refuses_what_it_cannot_read(tmp_path):
    runs = [k_run(STATS), k_run(f"{STATS} {FUSION} {UNTUNED}", "model.fusible_relu=true", rate=1100.0, compile_s=12.0)]
    (tmp_path / "variants.json").write_text(json.dumps(runs))
    cli = [sys.executable, str(ROOT / "benchmarks" / "levers.py")]
    proc = subprocess.run([*cli, str(tmp_path / "variants.json"), "--json", str(tmp_path / "choice.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f'xla_flags=["{FUSION}","{UNTUNED}"] model.fusible_relu=true\n'
    assert "* --xla_gpu_print_compilation_stats --xla_gpu_experimental" in proc.stderr
    choice = json.loads((tmp_path / "choice.json").read_text())
    # fast: 7,000 steps of 512; 1,100 against 1,000 images/s, and the 19.4-s wait down to 1.4 s
    assert choice["chosen"] == 1 and choice["projected_seconds"][1] == pytest.approx(
        7000 * 512 * (1 / 1100 - 1 / 1000) - 18.0)
    proc = subprocess.run([*cli, str(tmp_path / "missing.json")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("levers.py: no choice from ") and not proc.stdout
    (tmp_path / "empty.json").write_text(json.dumps([{**runs[0], "ran": False, "images_per_s": {}}]))
    proc = subprocess.run([*cli, str(tmp_path / "empty.json")], capture_output=True, text=True)
    assert proc.returncode == 2 and "the baseline (the first variant) did not run" in proc.stderr


def test_compile_stats_reads_xlas_pass_times_from_a_log_and_splits_the_compile(tmp_path):
    # as XLA logs them under --xla_gpu_print_compilation_stats (compilation_stats.cc), two
    # modules, with other log lines between
    log = """I1208 10:00:00.1 1 compilation_stats.cc:120] Total runtime (ms) of HLO passes: 250.5
I1208 10:00:00.1 1 compilation_stats.cc:121] Pass name, num runs, time (ms)
I1208 10:00:00.1 1 compilation_stats.cc:124] algebraic-simplifier, 12, 200.5
I1208 10:00:00.1 1 compilation_stats.cc:124] fusion, 2, 50
I1208 10:00:01.0 1 gpu_compiler.cc:1] something else, 3, 4 apples
I1208 10:00:09.0 1 compilation_stats.cc:120] Total runtime (ms) of HLO passes: 21000
I1208 10:00:09.0 1 compilation_stats.cc:121] Pass name, num runs, time (ms)
I1208 10:00:09.0 1 compilation_stats.cc:124] conv-algorithm-picker, 1, 15000
I1208 10:00:09.0 1 compilation_stats.cc:124] gemm-fusion-autotuner, 1, 1000.5
I1208 10:00:09.0 1 compilation_stats.cc:124] priority-fusion, 3, 4999.5
"""
    blocks = compile_stats.pass_stats(log)
    assert [b["total_ms"] for b in blocks] == [250.5, 21000.0]
    assert blocks[0]["passes"] == [["algebraic-simplifier", 12, 200.5], ["fusion", 2, 50.0]]
    step = compile_stats.largest(log)
    assert step["total_ms"] == 21000.0 and step["autotuning_ms"] == 16000.5  # the picker and the autotuner
    line = compile_stats.describe(step, 30.0, top=2)
    assert line == ("HLO passes 21.0 s of the compile's 30.0 s (the rest, 9.0 s, code generation and the like); "
                    "autotuning 16.0 s; longest: conv-algorithm-picker 15.0 s, priority-fusion 5.0 s")
    assert compile_stats.largest("no statistics here") is None
    (tmp_path / "step.log").write_text(log)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compile_stats.py"), str(tmp_path / "step.log"),
                           "--compile-seconds", "30"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("HLO passes 21.0 s of the compile's 30.0 s")


def test_an_unknown_part_is_refused():
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "z"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown part z" in proc.stderr
    parts = re.findall(r"^    (\w+)\) ", (ROOT / "benchmarks" / "gpu.sh").read_text(), re.M)
    assert len(parts) > 10 and set(parts) <= set(proc.stderr.split())  # the message names every part


def test_report_takes_no_ratio_from_a_failed_or_missing_peer():
    ceiling = {"tflops": 100.0}
    resjax = {"device": "d", "jax": "j", "network": "n",
              "rows": [{"batch": 128, "dtype": "bfloat16", "images_per_s": 30.0, "tflops": 50.0, "gflop_per_image": 1.0}]}
    peers = {"rows": [{"impl": "jax", "dtype": "bf16", "batch": 128, "img_per_s": 20},
                      {"impl": "torch", "dtype": "bf16", "batch": 128, "error": "RuntimeError()"}]}
    entry = step_report.report(ceiling, resjax, peers)["b128_bfloat16"]
    assert entry["resjax_vs_jax_peer_ratio"] == 1.5 and entry["resjax_ceiling_fraction"] == 0.5
    assert not any("torch" in k for k in entry)
    alone = step_report.report(ceiling, resjax, None)
    assert not alone["peers_ran"] and not any(k.endswith("_ratio") for k in alone["b128_bfloat16"])


def test_the_report_keeps_rows_with_the_state_laid_out_by_xla_apart():
    row = {"batch": 128, "dtype": "bfloat16", "images_per_s": 30.0, "tflops": 50.0, "gflop_per_image": 1.0}
    moved = {"leaves": 3, "relaid": 2, "relaid_bytes": 64, "examples": {"(3, 3, 4, 8)": [0, 3, 2, 1]}}
    resjax = {"device": "d", "jax": "j", "network": "n",
              "rows": [{**row, "state_layout": "default"}, {**row, "images_per_s": 33.0, "state_layout": "auto",
                                                            "relaid_layouts": moved}]}
    peers = {"rows": [{"impl": "jax", "dtype": "bf16", "batch": 128, "img_per_s": 30}]}
    out = step_report.report({"tflops": 100.0}, resjax, peers)
    assert out["b128_bfloat16"]["resjax_vs_jax_peer_ratio"] == 1.0 and "relaid_layouts" not in out["b128_bfloat16"]
    auto = out["b128_bfloat16_auto_layout"]
    assert auto["resjax_vs_jax_peer_ratio"] == pytest.approx(1.1) and auto["relaid_layouts"] == moved


def test_a_failed_state_layout_costs_no_other_row(monkeypatch, tmp_path, capsys):
    real = train_step.build

    def build(*args):  # as if XLA refused the layout it chose (a GPU call must keep the default rows)
        if args[-1] == "auto":
            raise RuntimeError("Unexpected XLA layout override")
        return real(*args)

    monkeypatch.setattr(train_step, "build", build)
    out = tmp_path / "step.json"
    monkeypatch.setattr(sys, "argv", ["train_step.py", "--config", "tiny", "--steps", "1", "--batches", "16", "--dtypes",
                                      "float32", "--state-layout", "default", "auto", "--json", str(out)])
    train_step.main()
    rows = json.loads(out.read_text())["rows"]
    assert [r["state_layout"] for r in rows] == ["default", "auto"] and rows[0]["images_per_s"] > 0
    assert rows[1]["error"] == "RuntimeError: Unexpected XLA layout override" and "images_per_s" not in rows[1]
    assert "laid out by XLA: failed: RuntimeError" in capsys.readouterr().out
    report = step_report.report({"tflops": 1.0}, json.loads(out.read_text()), None)
    assert "b16_float32" in report and "b16_float32_auto_layout" not in report and report["failed"] == [rows[1]]


def test_relaid_layouts_counts_the_state_arrays_a_format_lays_out_otherwise():
    import jax
    import numpy as np
    from jax.experimental.layout import Format, Layout

    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    state = {"kernel": jax.device_put(np.zeros((3, 3, 4, 8), np.float32)), "bias": jax.device_put(np.zeros(8))}
    same = jax.tree.map(lambda a: a.format, state)
    assert train_step.relaid_layouts(state, same) == {"leaves": 2, "relaid": 0, "relaid_bytes": 0, "examples": {}}
    # as a GPU would keep a kernel: output channels major (XLA CPU honours an explicit layout too)
    moved = {**same, "kernel": Format(Layout(major_to_minor=(3, 0, 1, 2)), device)}
    out = train_step.relaid_layouts(state, moved)
    assert (out["relaid"], out["relaid_bytes"], out["examples"]) == (1, 3 * 3 * 4 * 8 * 4, {"(3, 3, 4, 8)": (3, 0, 1, 2)})
    placed = jax.device_put(state, moved)  # what build() does with the compiled step's formats
    assert placed["kernel"].format.layout.major_to_minor == (3, 0, 1, 2)
    assert train_step.relaid_layouts(placed, moved)["relaid"] == 0


def test_profile_summary_splits_device_time_by_kernel_kind_and_finds_idle_time():
    meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
            {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/host:CPU"}}]
    kernels = [("sm90_xmma_fprop_implicit_gemm", 0, 60), ("loop_select_fusion", 60, 20), ("Memcpy DtoD", 100, 10),
               ("sm90_xmma_fprop_implicit_gemm", 110, 60), ("loop_select_fusion", 170, 20), ("Memcpy DtoD", 210, 10)]
    events = meta + [{"ph": "X", "pid": 1, "name": n, "ts": t, "dur": d} for n, t, d in kernels]
    events.append({"ph": "X", "pid": 2, "name": "PjitFunction(step)", "ts": 0, "dur": 500})  # host: not counted
    s = train_step.summarise_trace({"traceEvents": events}, steps=2)
    assert s["kinds_us"] == {"convolution/matmul": 60, "XLA fusion/other": 20, "copy": 10}
    assert s["step_device_busy_us"] == 90 and s["step_device_span_us"] == 110 and s["step_idle_us"] == 20
    assert train_step.summarise_trace({"traceEvents": meta}, steps=1)["device_events"] == 0
    # a kernel on a second stream overlapping the first: busy counts it, the idle gap stays
    overlap = events + [{"ph": "X", "pid": 1, "name": "Memset", "ts": 150, "dur": 40}]
    s = train_step.summarise_trace({"traceEvents": overlap}, steps=2)
    assert s["step_device_busy_us"] == 110 and s["step_idle_us"] == 20


GPU_HLO = """HloModule jit_train_step, is_scheduled=true

%fused_select (param_0: bf16[8,4,4,16]) -> bf16[8,4,4,16] {
  %param_0 = bf16[8,4,4,16]{3,2,1,0} parameter(0)
  ROOT %max = bf16[8,4,4,16]{3,2,1,0} maximum(%param_0, %param_0)
}

%body (p: (s32[], f32[16])) -> (s32[], f32[16]) {
  %p = (s32[], f32[16]{0}) parameter(0)
  %c = s32[] constant(1)
  ROOT %custom-call.2 = (s32[], f32[16]{0}) custom-call(%p), custom_call_target="__cudnn$convForward"
}

ENTRY %main.9 (x: bf16[8,4,4,16], w: bf16[16,3,3,16]) -> bf16[8,4,4,16] {
  %x = bf16[8,4,4,16]{3,2,1,0} parameter(0), metadata={op_name="x"}
  %w = bf16[16,3,3,16]{3,2,1,0} parameter(1)
  %custom-call.1 = (bf16[8,4,4,16]{3,2,1,0}, u8[0]{0}) custom-call(%x, %w), window={size=3x3 pad=1_1x1_1}, custom_call_target="__cudnn$convBiasActivationForward", metadata={op_name="jit(train_step)/conv(x)"}
  %get-tuple-element.1 = bf16[8,4,4,16]{3,2,1,0} get-tuple-element(%custom-call.1), index=0
  %loop_select_fusion = bf16[8,4,4,16]{3,2,1,0} fusion(%get-tuple-element.1), kind=kLoop, calls=%fused_select
  %cudnn = bf16[8,4,4,16]{3,2,1,0} fusion(%x, %w), kind=kCustom, calls=%fused_select, backend_config={"fusion_backend_config":{"kind":"__cudnn$fusion"}}
  %while.1 = (s32[], f32[16]{0}) while(%t), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"4"}}
  %start = ((s32[], f32[16]{0}), (s32[], f32[16]{0}), s32[]) async-start(%t), calls=%body
  ROOT %bitcast = bf16[8,4,4,16]{3,2,1,0} bitcast(%loop_select_fusion)
}
"""


def test_hlo_ops_counts_what_a_compiled_step_launches():
    assert launches.hlo_ops(GPU_HLO) == {
        "custom-call/__cudnn$convBiasActivationForward": 1, "fusion/kLoop": 1, "fusion/__cudnn$fusion": 1,
        "while": 1, "async-start": 1, "custom-call/__cudnn$convForward": 2}  # the computations they run counted
    # (each time), no parameters or bitcasts
    assert launches.batch_of(GPU_HLO, "4,4,16") == 8 and launches.batch_of(GPU_HLO) is None


def test_report_compares_what_resjax_and_the_jax_peer_launch():
    resjax = {"device": "d", "jax": "j", "network": "n", "rows": [
        {"batch": 128, "dtype": "bfloat16", "images_per_s": 30.0, "tflops": 50.0, "gflop_per_image": 1.0,
         "hlo_ops": {"fusion/kLoop": 10, "copy": 4, "custom-call/__cudnn$convForward": 3}},
        {"batch": 128, "dtype": "bfloat16", "steps_per_call": 8, "images_per_s": 31.0, "tflops": 51.0,
         "gflop_per_image": 1.0, "hlo_ops": {"while": 1}}]}
    peer = {"128": {"fusion/kLoop": 7, "custom-call/__cudnn$convForward": 3, "fusion/kInput": 1}}
    result = step_report.report({"tflops": 100.0}, resjax, None, peer)
    entry = result["b128_bfloat16"]
    assert (entry["resjax_launches"], entry["jax_peer_launches"]) == (17, 11)
    assert entry["launches_beyond_jax_peer"] == {"copy": 4, "fusion/kLoop": 3, "fusion/kInput": -1}
    assert "resjax_launches" not in result["b128_bfloat16_x8"]  # a scanned step is not the peer's single step


def test_part_i_measures_the_imagenet34_step_and_the_pipeline_from_it(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TINY": "1", "DEST": str(tmp_path), "PYTHON": sys.executable}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "i"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    step = json.loads((tmp_path / "i" / "imagenet34_step.json").read_text())
    assert step["rows"][0]["gflop_per_image"] == pytest.approx(21.86, abs=0.01)  # 224x224, streamed step
    pipeline = json.loads((tmp_path / "i" / "input_pipeline.json").read_text())
    measured = pipeline["gpu_measured"]["b2_float32"]
    assert pipeline["gpu_measured"]["estimate"] is False and pipeline["gpu_estimate"]["estimate"] is True
    assert measured["cores_per_gpu"] == pytest.approx(
        measured["imagenet34_images_per_s"] / pipeline["per_core_train"]["images_per_s"])
    assert "MEASURED on cpu" in proc.stdout


def test_the_remote_wrapper_runs_parts_with_resjax_from_the_tree_and_packs_the_small_results(tmp_path, folder):
    import tarfile

    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TINY": "1", "DATA": str(folder), "OUT": str(tmp_path / "out"),
           "DEST": str(tmp_path / "g"), "PKG": str(tmp_path / "pkg"), "SITE": str(tmp_path / "site"),
           "PYTHON": sys.executable, "TRAIN_SET": f"{TINY_NET} num_classes=2 steps=2 batch_size=16 eval_every=2 "
                                                 "checkpoint_every=2 warmup_steps=1"}
    env.pop("XLA_FLAGS", None)
    (tmp_path / "out").mkdir()
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_remote.sh"), "b"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "pkg" / "resjax" / "train").resolve() == ROOT / "train"  # resjax.train is the tree's
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"./fast_seed1/result.json", "./fast_seed1/run/summary.json", "./fast_seed1/log.txt"} <= names
    assert not any("checkpoints" in n or "xla-cache" in n for n in names)
    assert "fast_seed1" in (tmp_path / "out" / "gpu_sh_log.txt").read_text()


def test_step_benchmark_bounds_calls_in_flight_on_a_multi_device_cpu():
    """100 queued calls over 16 virtual CPU devices ended in XLA's all-reduce rendezvous
    timing out (an abort after 40 s) before the benchmark bounded them as `resjax train` does."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--config", "tiny",
                           "--cpu-devices", "16", "--batches", "32", "--dtypes", "float32", "--steps", "100"],
                          env={**env, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on 16 x cpu" in proc.stdout and "images/s" in proc.stdout
