"""What the scripts that replay the Table V campaign's stored models share (deepmarks_null, noise_null,
key_transfer, permutation_check, nc_pairs_check, seed_swap): the campaign's setup (budget=demo, fp32, the store in
$WRT_STORE), its source and marked models from the store (never trained here; seed_swap trains the missing ones
itself), the command line, the summary of a null distribution of watermark accuracies, and writing a check's
result."""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from wrt import CONFIG_DIR
from wrt.config import build
from wrt.pipeline import Run, load_data, source_spec
from wrt.schemes.base import Key
from wrt.stats import empirical_threshold, normal_threshold
from wrt.store import atomic_write_json


def arguments(doc: str, out: str, seeds_help: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help=seeds_help)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--out", default=out)
    return parser.parse_args()


def campaign_run(scheme: str, attack: str = "none", overrides: tuple[str, ...] = ()) -> Run:
    """A run of `scheme` against `attack` with the campaign's numerics, whose store holds the campaign's models;
    `overrides` (e.g. `scheme.lam=0.01`) pick another of its configurations."""
    store = os.environ.get("WRT_STORE", "/var/tmp/wrt-store")
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"scheme={scheme}", f"attack={attack}", "budget=demo", "precision=fp32",
                                           f"store_dir={store}", "progress=false", *overrides])
    return Run(cfg, load_data(cfg), build(cfg.scheme), build(cfg.attack))


def stored_source(run: Run, seed: int) -> torch.nn.Module:
    """The unmarked source model of `seed` from the store; exits with one line when it is not there."""
    if not run.store.path("source", source_spec(run.cfg, seed)).exists():
        raise SystemExit(f"the source model of seed {seed} is not in {run.cfg.store_dir} (run experiment=thresholds "
                         f"scheme={run.cfg.scheme.name} with budget=demo precision=fp32 first)")
    return run.source_model(seed)[0]


def stored_marked(run: Run, source: torch.nn.Module, key: Key) -> torch.nn.Module:
    """The marked model of the run's seed and scheme config (`source` with `key` embedded) from the store; exits
    with one line when it is not there."""
    if not run.store.path("marked", run.embed_spec()).exists():
        raise SystemExit(f"the marked {run.cfg.scheme.name} model of seed {run.cfg.seed} is not in {run.cfg.store_dir} "
                         f"(run the campaign's {run.cfg.scheme.name} block first)")
    return run.embed(copy.deepcopy(source), key)[0]


def stored_models(run: Run, seed: int) -> tuple[torch.nn.Module, Key, torch.nn.Module]:
    """The source model of `seed`, its key and the marked model of the run's scheme config, all from the store."""
    run.cfg.seed = seed
    source = stored_source(run, seed)
    key = run.key(source)
    return source, key, stored_marked(run, source, key)


def null_summary(values: list[float], p: float = 0.05) -> dict:
    """Mean, share of zeros and θ (the analyzer's normal fit and empirical quantile) of null scores."""
    return {"mean": float(torch.tensor(values).mean()), "zero_share": sum(v == 0 for v in values) / len(values),
            "theta_normal": normal_threshold(values, p), "theta_empirical": empirical_threshold(values, p)}


def write_check(result: dict, path: str) -> None:
    """Write a check's result atomically (making its folder) and print where."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target, result)
    print(target)
