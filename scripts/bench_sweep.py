"""Benchmark: what a sweep costs, and how much the artifact store saves.

Runs a sweep of S schemes × A attacks at budget=smoke with a fresh store (one Hydra multirun),
then counts trainings from the run JSONs: the source model must be trained once, each scheme
embedded once, and every other run must reuse the store. Reports total time, time per stage, and
the share of stage time spent on cache hits. Writes results/bench/bench_sweep.json; the last line
is `source_trainings <n> embeddings <m> runs <k>`.

    python scripts/bench_sweep.py [--schemes adi,content] [--attacks none,weight_pruning] [--budget smoke]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

STAGES = ("data", "source", "keygen", "embed", "evaluate", "attack")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default="adi,none")
    parser.add_argument("--attacks", default="none,weight_pruning")
    parser.add_argument("--budget", default="smoke")
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        command = [str(Path(sys.executable).with_name("wrt-run")), "-m", f"scheme={args.schemes}",
                   f"attack={args.attacks}", f"budget={args.budget}", f"results_dir={tmp}/results",
                   f"store_dir={tmp}/store", "progress=false"]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"the sweep failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        runs = [json.loads(p.read_text()) for p in sorted(Path(tmp, "results", "runs").glob("*.json"))]

    stage_time = defaultdict(float)
    cached_time = 0.0
    for run in runs:
        for stage in STAGES:
            stage_time[stage] += run["timing_s"].get(stage, 0.0)
        cached_time += run["timing_s"]["source"] if run["source"]["cached"] else 0.0
        cached_time += run["timing_s"]["embed"] if run["marked"]["cached"] else 0.0
    total_stage_time = sum(stage_time.values())
    report = {
        "schemes": args.schemes.split(","), "attacks": args.attacks.split(","), "budget": args.budget,
        "runs": len(runs), "failed": sum(r["status"] != "ok" for r in runs),
        "source_trainings": sum(not r["source"]["cached"] for r in runs),
        "embeddings": sum(not r["marked"]["cached"] for r in runs),
        "wall_s": wall, "run_time_s": sum(r["timing_s"]["total"] for r in runs),
        "stage_time_s": dict(stage_time), "cache_hit_time_s": cached_time,
        "cache_hit_share": cached_time / total_stage_time if total_stage_time else 0.0,
        "peak_rss_mb": max(r["memory"]["peak_rss_mb"] for r in runs),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_sweep.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"sweep: {len(report['schemes'])} schemes × {len(report['attacks'])} attacks at budget={args.budget}, "
          f"{report['runs']} runs ({report['failed']} failed) in {wall:.1f} s wall "
          f"({report['run_time_s']:.1f} s inside runs, the rest is process start-up)")
    for stage in STAGES:
        print(f"  {stage:9} {stage_time[stage]:8.2f} s  {100 * stage_time[stage] / total_stage_time:5.1f} %")
    print(f"  cache hits: {cached_time:.2f} s ({100 * report['cache_hit_share']:.1f} % of stage time)")
    print(f"written {out / 'bench_sweep.json'}")
    print(f"source_trainings {report['source_trainings']} embeddings {report['embeddings']} runs {report['runs']}")


if __name__ == "__main__":
    main()
