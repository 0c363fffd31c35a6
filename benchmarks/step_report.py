"""Side-by-side step throughput: resjax against the plain-JAX and PyTorch peers, and the ceiling.

Reads what benchmarks/gpu.sh measured in one run on one device: ceiling.json
(benchmarks/ceiling.py), train_step.json (benchmarks/train_step.py) and, when the peers
ran, peer_step.json (../shared/bench/peer_step.py) and peer_launches.json (what the JAX
peer's compiled step launches, benchmarks/launches.py); writes step_benchmark.json with,
per batch size, every images/s, each resjax/peer ratio (keys ending in ``_ratio``), the
fraction of the bf16 matrix-multiply ceiling and, where both steps' HLO was counted, the
launches of each and what resjax launches in addition, by kind; prints them as a table.
Rows measured with the state laid out by XLA (train_step.py --state-layout auto) get keys
ending in _auto_layout, with its kernels output channels major (ohwi) _ohwi_layout; rows
that failed are listed under "failed".

Run: python benchmarks/step_report.py DIR
"""

from __future__ import annotations

import argparse
import json
import pathlib

PEERS = {"jax": "jax_peer", "torch": "torch_peer"}
DTYPES = {"bf16": "bfloat16", "fp32": "float32"}


def launch_difference(ours: dict[str, int], theirs: dict[str, int]) -> dict[str, int]:
    """resjax's launches minus the peer's, by kind, where they differ (most first)."""
    diff = {k: ours.get(k, 0) - theirs.get(k, 0) for k in {*ours, *theirs}}
    return dict(sorted(((k, v) for k, v in diff.items() if v), key=lambda kv: -kv[1]))


def report(ceiling: dict, resjax: dict, peers: dict | None, peer_launches: dict | None = None) -> dict:
    """One entry per (batch, dtype) that resjax measured; a peer row with an error, or a
    peer that did not run, gives no ratio. ``peer_launches``: {batch: the JAX peer's
    step's launch counts} (benchmarks/launches.py), compared with resjax's single-step
    rows (``hlo_ops``)."""
    out = {"device": resjax["device"], "jax": resjax["jax"], "network": resjax["network"],
           "ceiling_tflops": ceiling["tflops"], "peers_ran": peers is not None}
    peer_rows = [r for r in (peers or {}).get("rows", []) if "img_per_s" in r]
    for row in resjax["rows"]:
        if "error" in row:  # a variant that failed (train_step.py records it and goes on)
            out.setdefault("failed", []).append(row)
            continue
        per_call = row.get("steps_per_call", 1)
        layout = row.get("state_layout", "default")
        key = (f"b{row['batch']}_{row['dtype']}" + (f"_x{per_call}" if per_call > 1 else "")
               + ("" if layout == "default" else f"_{layout}_layout"))
        entry = {"resjax_images_per_s": row["images_per_s"], "resjax_tflops": row["tflops"],
                 "gflop_per_image": row["gflop_per_image"],
                 "resjax_ceiling_fraction": row["tflops"] / ceiling["tflops"]}
        for peer in peer_rows:
            if peer["batch"] == row["batch"] and DTYPES.get(peer["dtype"]) == row["dtype"]:
                name = PEERS[peer["impl"]]
                entry[f"{name}_images_per_s"] = peer["img_per_s"]
                entry[f"resjax_vs_{name}_ratio"] = row["images_per_s"] / peer["img_per_s"]
        if layout != "default":  # how many of the state's arrays lie otherwise than row-major
            entry["relaid_layouts"] = row["relaid_layouts"]
        theirs = (peer_launches or {}).get(str(row["batch"]))
        if theirs and "hlo_ops" in row and per_call == 1:
            entry.update(resjax_launches=sum(row["hlo_ops"].values()), jax_peer_launches=sum(theirs.values()),
                         launches_beyond_jax_peer=launch_difference(row["hlo_ops"], theirs))
        out[key] = entry
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=pathlib.Path)
    args = parser.parse_args()
    read = lambda name: json.loads((args.dir / name).read_text())
    optional = lambda name: read(name) if (args.dir / name).exists() else None
    result = report(read("ceiling.json"), read("train_step.json"), optional("peer_step.json"),
                    optional("peer_launches.json"))
    (args.dir / "step_benchmark.json").write_text(json.dumps(result, indent=1))
    print(f"{result['network']} on {result['device']}, jax {result['jax']}; "
          f"bf16 matmul ceiling {result['ceiling_tflops']:.0f} TFLOP/s")
    for row in result.get("failed", []):
        print(f"  b{row['batch']}_{row['dtype']} x{row['steps_per_call']}, state layout {row['state_layout']}: "
              f"failed: {row['error']}")
    for key, e in result.items():
        if isinstance(e, dict):
            ratios = "  ".join(f"{k.removeprefix('resjax_vs_').removesuffix('_ratio')} x{v:.3f}"
                               for k, v in e.items() if k.endswith("_ratio")) or "no peer"
            print(f"  {key:>14}: resjax {e['resjax_images_per_s']:9,.0f} images/s, "
                  f"{100 * e['resjax_ceiling_fraction']:5.1f}% of the ceiling; {ratios}")
            if "relaid_layouts" in e:
                moved = e["relaid_layouts"]
                print(f"  {'':>14}  {moved['relaid']} of the state's {moved['leaves']} arrays laid out otherwise "
                      f"than row-major ({moved['relaid_bytes'] / 1e6:.1f} MB)")
            if "resjax_launches" in e:
                more = ", ".join(f"{op} {n:+d}" for op, n in list(e["launches_beyond_jax_peer"].items())[:6])
                print(f"  {'':>14}  launches per step: resjax {e['resjax_launches']}, JAX peer "
                      f"{e['jax_peer_launches']} ({more or 'the same kinds'})")


if __name__ == "__main__":
    main()
