"""Side-by-side step throughput: resjax against the plain-JAX and PyTorch peers, and the ceiling.

Reads what benchmarks/gpu.sh measured in one run on one device: ceiling.json
(benchmarks/ceiling.py), train_step.json (benchmarks/train_step.py) and, when the peers
ran, peer_step.json (../shared/bench/peer_step.py); writes step_benchmark.json with, per
batch size, every images/s, each resjax/peer ratio (keys ending in ``_ratio``) and the
fraction of the bf16 matrix-multiply ceiling; prints them as a table.

Run: python benchmarks/step_report.py DIR
"""

from __future__ import annotations

import argparse
import json
import pathlib

PEERS = {"jax": "jax_peer", "torch": "torch_peer"}
DTYPES = {"bf16": "bfloat16", "fp32": "float32"}


def report(ceiling: dict, resjax: dict, peers: dict | None) -> dict:
    """One entry per (batch, dtype) that resjax measured; a peer row with an error, or a
    peer that did not run, gives no ratio."""
    out = {"device": resjax["device"], "jax": resjax["jax"], "network": resjax["network"],
           "ceiling_tflops": ceiling["tflops"], "peers_ran": peers is not None}
    peer_rows = [r for r in (peers or {}).get("rows", []) if "img_per_s" in r]
    for row in resjax["rows"]:
        per_call = row.get("steps_per_call", 1)
        key = f"b{row['batch']}_{row['dtype']}" + (f"_x{per_call}" if per_call > 1 else "")
        entry = {"resjax_images_per_s": row["images_per_s"], "resjax_tflops": row["tflops"],
                 "gflop_per_image": row["gflop_per_image"],
                 "resjax_ceiling_fraction": row["tflops"] / ceiling["tflops"]}
        for peer in peer_rows:
            if peer["batch"] == row["batch"] and DTYPES.get(peer["dtype"]) == row["dtype"]:
                name = PEERS[peer["impl"]]
                entry[f"{name}_images_per_s"] = peer["img_per_s"]
                entry[f"resjax_vs_{name}_ratio"] = row["images_per_s"] / peer["img_per_s"]
        out[key] = entry
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=pathlib.Path)
    args = parser.parse_args()
    read = lambda name: json.loads((args.dir / name).read_text())
    peers = read("peer_step.json") if (args.dir / "peer_step.json").exists() else None
    result = report(read("ceiling.json"), read("train_step.json"), peers)
    (args.dir / "step_benchmark.json").write_text(json.dumps(result, indent=1))
    print(f"{result['network']} on {result['device']}, jax {result['jax']}; "
          f"bf16 matmul ceiling {result['ceiling_tflops']:.0f} TFLOP/s")
    for key, e in result.items():
        if isinstance(e, dict):
            ratios = "  ".join(f"{k.removeprefix('resjax_vs_').removesuffix('_ratio')} x{v:.3f}"
                               for k, v in e.items() if k.endswith("_ratio")) or "no peer"
            print(f"  {key:>14}: resjax {e['resjax_images_per_s']:9,.0f} images/s, "
                  f"{100 * e['resjax_ceiling_fraction']:5.1f}% of the ceiling; {ratios}")


if __name__ == "__main__":
    main()
