"""What a finished sweep cost: the run JSONs' stage timings in core-hours, per stage, per attack and per CPU.

Each run records its stages' wall seconds (`timing_s`), its thread count (`cpu_threads`) and its CPU (`cpu`); a
stage that was reused from the store (a cached source or marked model) costs nothing in that run. A CPU run that
also records its process's CPU seconds per stage (`cpu_s`) is counted by them: they stay right when other work
shared the cores or the run was paused. Otherwise core-seconds are wall seconds × threads, so runs with one
thread each on two cores add up to the machine's busy time. `other` is the part of a run's `total` outside its
named stages (loading, writing the record).

    .venv/bin/python scripts/sweep_cost.py docs/results/table5_demo --out docs/results/table5_demo/cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from wrt.analysis.load import read_run, run_files, stage_seconds

STAGES = ("data", "source", "keygen", "embed", "evaluate", "extract", "attack", "other")
MEANING = {"data": "loading data", "source": "training the source model", "keygen": "key generation",
           "embed": "embedding (null runs: training the unmarked model)", "evaluate": "evaluation",
           "extract": "extracting a model from an active scheme's wrapper", "attack": "the attack",
           "other": "outside the named stages"}


def _empty() -> dict:
    return {"runs": 0, **{stage: 0.0 for stage in STAGES}}


def _hours(run: dict) -> tuple[dict, bool]:
    """Core-hours per stage of one run, and whether they come from its CPU seconds."""
    timing, from_cpu = stage_seconds(run)
    threads = run.get("cpu_threads") or 1
    seconds = {stage: timing.get(stage) or 0.0 for stage in STAGES if stage != "other"}
    seconds["other"] = max(0.0, (timing.get("total") or 0.0) - sum(seconds.values()))
    return {stage: s * threads / 3600 for stage, s in seconds.items()}, from_cpu


def _totalled(groups: dict) -> dict:
    return {key: {**group, "core_hours": sum(group[s] for s in STAGES)} for key, group in sorted(groups.items())}


def cost(results_dir: Path) -> dict:
    by_group, by_attack, by_cpu = (defaultdict(_empty) for _ in range(3))
    skipped, counted_by = [], {"cpu_s": 0, "wall × threads": 0}
    for path in run_files(results_dir):
        run = read_run(path)  # the analyzer's reader: a corrupt or incomplete file gives the reason
        if isinstance(run, str):
            skipped.append(f"{path.name}: {run}")
            continue
        attack = (run.get("attack") or {}).get("name", "none")
        hours, from_cpu = _hours(run)
        counted_by["cpu_s" if from_cpu else "wall × threads"] += 1
        for group in (by_group[f"{run['role']}/{attack}"], by_attack[attack], by_cpu[run.get("cpu") or "unknown"]):
            group["runs"] += 1
            for stage in STAGES:
                group[stage] += hours[stage]
    total = {stage: sum(g[stage] for g in by_group.values()) for stage in STAGES}
    return {"results_dir": Path(results_dir).as_posix(), "cpus": sorted(by_cpu), "unit": "core-hours",
            "runs": sum(g["runs"] for g in by_group.values()), "core_hours": sum(total.values()),
            "by_stage": total, "by_attack": _totalled(by_attack), "by_cpu": _totalled(by_cpu),
            "by_group": _totalled(by_group), "counted_by": counted_by, "skipped": skipped}


def report_lines(summary: dict) -> list[str]:
    """The printed summary: per stage, per attack (every role), per CPU, then one total line."""
    lines = ["core-hours per stage:"]
    lines += [f"  {stage:9s} {summary['by_stage'][stage]:8.3f}  {MEANING[stage]}" for stage in STAGES]
    lines.append("core-hours per attack (its marked and null runs, every stage):")
    lines += [f"  {name:45s} {g['runs']:5d} runs {g['core_hours']:8.3f} (attack stage {g['attack']:.3f})"
              for name, g in summary["by_attack"].items()]
    lines.append("runs made on:")
    lines += [f"  {cpu}: {g['runs']} runs, {g['core_hours']:.3f} core-h" for cpu, g in summary["by_cpu"].items()]
    lines.append("counted by: " + ", ".join(f"{how} {n} runs" for how, n in summary["counted_by"].items()))
    lines.append(f"{'total':45s} {summary['runs']:4d} runs {summary['core_hours']:8.3f} core-h")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout only)")
    args = parser.parse_args()
    if not (args.results_dir / "runs").is_dir():
        sys.exit(f"sweep_cost: no runs/ folder under results_dir={args.results_dir}")
    summary = cost(args.results_dir)
    print("\n".join(report_lines(summary)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
        tmp.replace(args.out)  # atomic: a killed run leaves the previous file


if __name__ == "__main__":
    main()
