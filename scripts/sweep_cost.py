"""What a finished sweep cost: the run JSONs' stage timings summed per role and attack, in core-hours.

Each run records its stages' wall seconds (`timing_s`) and its thread count (`cpu_threads`); a stage that
was reused from the store (a cached source or marked model) costs nothing in that run. Core-seconds are
seconds × threads, so runs with one thread each on two cores add up to the machine's busy time.

    .venv/bin/python scripts/sweep_cost.py results/table5_demo --out docs/results/table5_demo/cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from wrt.analysis.load import read_run, run_files

STAGES = ("data", "source", "keygen", "embed", "evaluate", "extract", "attack")


def cost(results_dir: Path) -> dict:
    groups: dict[str, dict] = defaultdict(lambda: {"runs": 0, **{stage: 0.0 for stage in STAGES}})
    cpus, skipped = set(), []
    for path in run_files(results_dir):
        run = read_run(path)  # the analyzer's reader: a corrupt or incomplete file gives the reason
        if isinstance(run, str):
            skipped.append(f"{path.name}: {run}")
            continue
        threads = run.get("cpu_threads") or 1
        group = groups[f"{run['role']}/{(run.get('attack') or {}).get('name', 'none')}"]
        group["runs"] += 1
        for stage in STAGES:
            group[stage] += (run["timing_s"].get(stage) or 0.0) * threads / 3600
        cpus.add(run.get("cpu") or "unknown")
    total = {stage: sum(g[stage] for g in groups.values()) for stage in STAGES}
    return {"results_dir": str(results_dir), "cpus": sorted(cpus), "unit": "core-hours",
            "runs": sum(g["runs"] for g in groups.values()), "core_hours": sum(total.values()),
            "by_stage": total, "by_group": {k: {**v, "core_hours": sum(v[s] for s in STAGES)}
                                             for k, v in sorted(groups.items())},
            "skipped": skipped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout only)")
    args = parser.parse_args()
    if not (args.results_dir / "runs").is_dir():
        sys.exit(f"sweep_cost: no runs/ folder under results_dir={args.results_dir}")
    summary = cost(args.results_dir)
    for name, group in summary["by_group"].items():
        print(f"{name:45s} {group['runs']:4d} runs {group['core_hours']:6.2f} core-h")
    print(f"{'total':45s} {summary['runs']:4d} runs {summary['core_hours']:6.2f} core-h")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
