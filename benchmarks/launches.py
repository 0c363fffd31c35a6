"""What a compiled step launches, counted from its optimised HLO text.

Used by benchmarks/train_step.py (each row's ``hlo_ops``) and benchmarks/step_report.py
(resjax's step against the plain-JAX peer's, whose HLO gpu.sh has XLA dump): on a GPU
each counted instruction is a kernel, a cuDNN call or a copy, so a step that trails its
peer at a small batch, where launches rather than arithmetic can bound it, shows here
what it launches in addition. Reads text only: no JAX needed.

Run: python benchmarks/launches.py [--json FILE] HLO_TEXT...   (the counts of each file by
its batch size, as gpu.sh does with the peer's dumped HLO)
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re

NOT_LAUNCHED = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast", "opt-barrier"}  # no kernel
DESCEND = ("while", "call", "async-start")  # their computations launch kernels too: counted


def hlo_ops(text: str) -> dict[str, int]:
    """What a compiled step launches, from its optimised HLO text: the instructions of the
    entry computation, of its loops' bodies (a scanned step's) and of the computations it
    calls or runs asynchronously (CUDA graphs: XLA's command buffers), counted by opcode,
    fusions by kind (``fusion/kLoop``; a custom fusion by its backend kind, e.g.
    ``fusion/__cudnn$fusion``) and custom calls by target (``custom-call/__cudnn$convForward``).
    Most common first; instructions that launch no kernel (NOT_LAUNCHED) left out."""
    computations, name = {}, None
    for line in text.splitlines():
        head = re.match(r"(ENTRY )?%(\S+) .*\{$", line)
        if head:
            name = "ENTRY" if head.group(1) else head.group(2)
            computations[name] = []
        elif line == "}":
            name = None
        elif name:
            computations[name].append(line)
    counts, todo = collections.Counter(), ["ENTRY"]  # HLO has no recursion: each call site counts
    while todo:
        lines = computations.get(todo.pop(), [])
        for line in lines:
            op = re.search(r" = .*?([a-z][a-z0-9-]*)\(", line)
            if not op:
                continue
            op, detail = op.group(1), None
            if op in NOT_LAUNCHED:
                continue
            if op == "fusion":  # an unexpected line costs its detail, never the measurement
                detail = re.search(r'"kind":"(__[^"]+)"', line) or re.search(r"kind=(k\w+)", line)
            elif op == "custom-call":
                detail = re.search(r'custom_call_target="([^"]+)"', line)
            counts[f"{op}/{detail.group(1)}" if detail else op] += 1
            todo += re.findall(r"(?:body|to_apply|calls)=%([\w.-]+)", line) if op in DESCEND else []
    return dict(counts.most_common())


def batch_of(text: str, image: str = "32,32,3") -> int | None:
    """The batch size of a step whose entry computation takes (B, H, W, C) images of the
    given shape ("32,32,3": CIFAR), or None where no such parameter is found."""
    entry = next((line for line in text.splitlines() if line.startswith("ENTRY")), "")
    found = re.search(rf"\[(\d+),{image}\]", entry)
    return int(found.group(1)) if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hlo", nargs="+", type=pathlib.Path, help="optimised HLO text files, one step each")
    parser.add_argument("--json", type=pathlib.Path, help="write {batch: counts} (or {file name: counts}) here")
    args = parser.parse_args()
    counts = {}
    for path in args.hlo:
        text = path.read_text()
        ops, batch = hlo_ops(text), batch_of(text)
        counts[str(batch or path.name)] = ops
        print(f"{path.name}: batch {batch}, {sum(ops.values())} launches: "
              + ", ".join(f"{n} {op}" for op, n in list(ops.items())[:6]))
    if args.json:
        args.json.write_text(json.dumps(counts, indent=1))


if __name__ == "__main__":
    main()
