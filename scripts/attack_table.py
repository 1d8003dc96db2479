"""Render the measured columns of docs/attacks.md from run JSONs.

    .venv/bin/python scripts/attack_table.py results/attacks [--schemes adi uchida] [--budget default]

Prints a Markdown table: one row per attack (in the order given by --attacks, default: every
attack found), with its category, parameters, the attack's runtime relative to training the
source model from scratch (`attack_time_ratio`, mean over schemes) and, per scheme, the
surrogate's test accuracy and watermark accuracy next to the marked model's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(results: Path, budget: str) -> dict[tuple[str, str], dict]:
    runs = {}
    for path in sorted((results / "runs").glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("role") == "marked" and r.get("budget") == budget:
            runs[(r["scheme"]["name"], r["attack"]["name"])] = r
    return runs


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def params(p: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items()) or "–"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--schemes", nargs="+", default=["adi", "uchida"])
    parser.add_argument("--attacks", nargs="*")
    parser.add_argument("--budget", default="default")
    args = parser.parse_args(argv)
    runs = load(args.results, args.budget)
    attacks = args.attacks or sorted({a for _, a in runs})
    head = ["attack", "category", "parameters", "runtime / source training"]
    for s in args.schemes:
        head += [f"{s} test acc (%)", f"{s} wm acc (%)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    marked = ["marked model", "–", "–", "–"]
    for s in args.schemes:
        r = next((r for (sch, _), r in runs.items() if sch == s and r["status"] == "ok"), None)
        marked += [pct(r and r["marked"]["test_acc"]), pct(r and r["marked"]["wm_acc"])]
    lines.append("| " + " | ".join(marked) + " |")
    for a in attacks:
        rs = [runs.get((s, a)) for s in args.schemes]
        any_r = next((r for r in rs if r), None)
        if any_r is None:
            continue
        ratios = [r["attack_time_ratio"] for r in rs if r and r["status"] == "ok"]
        row = [a, any_r["attack"]["category"] or "–", params(any_r["attack"]["params"]),
               f"{sum(ratios) / len(ratios):.3f}" if ratios else "–"]
        for r in rs:
            if r is None:
                row += ["not run", "not run"]
            elif r["status"] != "ok":
                row += [f"failed: {r['error'][:60]}", "–"]
            else:
                row += [pct(r["surrogate"]["test_acc"]), pct(r["surrogate"]["wm_acc"])]
        lines.append("| " + " | ".join(row) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
