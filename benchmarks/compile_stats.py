"""Where an XLA GPU compile goes: the HLO passes' times that XLA logs under
--xla_gpu_print_compilation_stats (with TF_CPP_MIN_LOG_LEVEL=0), read back from a log.

XLA logs, for each module it compiles, "Total runtime (ms) of HLO passes: T" and then one
"name, runs, ms" line per pass, longest first. The autotuner is one of those passes; what
the passes leave of a compile's wall time is code generation (LLVM, ptxas) and the rest.

Run: python benchmarks/compile_stats.py LOG [--compile-seconds S]
"""

import argparse
import re

TOTAL = re.compile(r"Total runtime \(ms\) of HLO passes: ([0-9.eE+-]+)")
PASS = re.compile(r"\] (\S.*), (\d+), ([0-9.eE+-]+)\s*$")  # after the log line's "file:line] "
AUTOTUNING = re.compile(r"autotun|picker", re.I)  # the passes that time candidate kernels


def pass_stats(log: str) -> list[dict]:
    """Each compile's statistics in ``log``, in order: {"total_ms", "passes": [[name, runs, ms], ...]}."""
    blocks = []
    for line in log.splitlines():
        if m := TOTAL.search(line):
            blocks.append({"total_ms": float(m.group(1)), "passes": []})
        elif blocks and (m := PASS.search(line)):
            blocks[-1]["passes"].append([m.group(1), int(m.group(2)), float(m.group(3))])
    return blocks


def largest(log: str) -> dict | None:
    """The statistics of the longest compile in ``log`` (a benchmark's step, beside small
    helpers), with its autotuning passes' sum; None where XLA logged none (not a GPU, or
    the log level hid them)."""
    blocks = pass_stats(log)
    if not blocks:
        return None
    block = max(blocks, key=lambda b: b["total_ms"])
    return {**block, "autotuning_ms": sum(ms for name, _, ms in block["passes"] if AUTOTUNING.search(name))}


def describe(stats: dict, compile_s: float | None = None, top: int = 4) -> str:
    """One line: the passes' seconds (of the compile's, where given), autotuning's, the longest passes."""
    passes = stats["total_ms"] / 1e3
    share = f" of the compile's {compile_s:.1f} s (the rest, {compile_s - passes:.1f} s, code generation and " \
            "the like)" if compile_s else ""
    longest = ", ".join(f"{name} {ms / 1e3:.1f} s" for name, _, ms in sorted(stats["passes"], key=lambda p: -p[2])[:top])
    return f"HLO passes {passes:.1f} s{share}; autotuning {stats['autotuning_ms'] / 1e3:.1f} s; longest: {longest}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log")
    parser.add_argument("--compile-seconds", type=float, help="the compile's wall time, to split it")
    args = parser.parse_args()
    with open(args.log, errors="replace") as f:
        stats = largest(f.read())
    print(describe(stats, args.compile_seconds) if stats else f"{args.log}: no compilation statistics (XLA logs "
          "them on a GPU under --xla_gpu_print_compilation_stats and TF_CPP_MIN_LOG_LEVEL=0)")


if __name__ == "__main__":
    main()
