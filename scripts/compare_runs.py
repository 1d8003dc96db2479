"""Compare the run JSONs of two results folders: are the numbers the same?

Used to check that a refactor leaves results unchanged (issue #18's invariant): run the same
sweep on the old and the new code into two folders, then

    python scripts/compare_runs.py OLD_RESULTS NEW_RESULTS [--out compare.json]

Runs are matched by role, scheme, attack, dataset, model, budget and seed (run names hash the
config and may change when a config gains a key). Every field is compared except those that
differ between two identical runs: timings, memory, dates, versions, cache flags, the config
echo and the run name. Prints one line per differing run and ends with
`identical <k>/<n> runs` (exit 1 when a run differs or is missing on one side).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IGNORED = {"timing_s", "cpu_s", "memory", "created", "versions", "cached", "train_time_s", "embed_time_s",
           "attack_time_ratio", "config", "run_name", "traceback", "cpu"}


def identity(run: dict) -> tuple:
    return (run.get("role"), run["scheme"]["name"], run["attack"]["name"], run.get("dataset"),
            run.get("model"), run.get("budget"), run.get("seed"))


def load(folder: Path) -> dict[tuple, dict]:
    runs = {}
    for path in sorted((folder / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        runs[identity(run)] = run
    return runs


def differences(a, b, where: str = "") -> list[str]:
    """Dotted paths at which `a` and `b` differ, ignoring the volatile fields."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            if key in IGNORED:
                continue
            path = f"{where}.{key}" if where else key
            if key not in a or key not in b:
                found.append(f"{path} (only in {'new' if key in b else 'old'})")
            else:
                found += differences(a[key], b[key], path)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} → {b!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--out", type=Path, help="write the comparison as JSON here")
    args = parser.parse_args()
    old, new = load(args.old), load(args.new)
    report = {}
    for run_id in sorted(set(old) | set(new), key=str):
        if run_id not in old or run_id not in new:
            report[str(run_id)] = [f"missing in {'old' if run_id not in old else 'new'}"]
        elif found := differences(old[run_id], new[run_id]):
            report[str(run_id)] = found
    for run_id, found in report.items():
        print(f"{run_id}: {'; '.join(found[:6])}{' …' if len(found) > 6 else ''}")
    total = len(set(old) | set(new))
    print(f"identical {total - len(report)}/{total} runs")
    if args.out:
        args.out.write_text(json.dumps({"identical": total - len(report), "runs": total,
                                        "differences": report}, indent=1))
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main())
