"""DeepMarks' decision threshold under four verification rules (issue #29, Part 3): why is θ here 0.123
where the SoK's Table IV says 0.396?

Our DeepMarks verifies as the paper and the SoK's text describe (SoK §V-D): the correlation of X·w with the
owner's ±1 code vector (v = 133 bits), ≤ 0 counted as 0, with a secret projection X ~ N(0, 1) as Uchida's, on
conv2's mean filter (288 values). The SoK's toolbox (wrt/defenses/watermark/deepmarks.py, its CIFAR-10
configs decision_threshold/ and wm_configs/deepmarks.yaml) differs in three ways:
- its projection is uniform on [0, 1) (`np.random.rand`), so every entry of X·w carries the common term ½·Σw;
- it correlates the suspect's X·w with a reference vector: the normalised X·w of the model the key was made
  for. Its threshold config makes keys for an unmarked source model; after embedding, the marked model's X·w
  is the random 0/1 signature it was fitted to (MSE);
- its carrier is layer_index 0 averaged over the output filters (27 values on CIFAR-10; our conv1's mean
  filter has 9), with keylength 100.

This script replays the null protocol of `experiment=thresholds` (the key model `seed`, the null model
`seed + 1`, 100 key draws each, seeded by `wrt.pipeline.null_key_seed`) on the campaign's unmarked demo models
in the store. It scores our own rule with the scheme's own keys (it must give the committed θ), then every
combination of carrier (conv2's or conv1's mean filter), projection (normal or uniform) and reference (the
±1 code vector, a 0/1 signature, the key model's X·w) with v = 100, so that each difference's share shows.

θ is the analyzer's normal fit at p = 0.05 (`wrt.stats.normal_threshold`). It only loads models that are in
the store; a missing one is an error, never trained. Writes a JSON file and prints a table.

    OMP_NUM_THREADS=1 WRT_STORE=/var/tmp/wrt-store PYTHONPATH=. .venv/bin/python scripts/deepmarks_null.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from null_replay import arguments, campaign_run, null_summary, stored_source

from wrt.pipeline import null_key_seed
from wrt.schemes.deepmarks import and_acc_codebook
from wrt.schemes.layers import CARRIERS, key_layer

CARRIER_LAYERS = {"conv2": "features.conv2.0", "conv1": "features.conv1.0"}
PROJECTIONS = ("normal", "uniform")
REFERENCES = ("code", "signature", "key model")
KEY_BITS = 100  # the toolbox's keylength


def cosine_clipped(a: torch.Tensor, b: torch.Tensor) -> float:
    return max(0.0, float(a @ b / (a.norm() * b.norm() + 1e-12)))


def mean_filter(model, layer: str) -> torch.Tensor:
    return CARRIERS["mean_filter"](key_layer(model, layer, torch.nn.Conv2d).weight).detach().cpu()


def rule_scores(key_model, null_model, code: torch.Tensor, generator: torch.Generator) -> dict:
    """The null model's score for one key draw under every (carrier, projection, reference)."""
    out = {}
    for carrier, layer in CARRIER_LAYERS.items():
        w_key, w_null = mean_filter(key_model, layer), mean_filter(null_model, layer)
        projections = {"normal": torch.randn(KEY_BITS, w_key.numel(), generator=generator),
                       "uniform": torch.rand(KEY_BITS, w_key.numel(), generator=generator)}
        signature = torch.randint(0, 2, (KEY_BITS,), generator=generator).float()
        for projection, x in projections.items():
            references = {"code": code, "signature": signature, "key model": x @ w_key}
            for reference, r in references.items():
                out[(carrier, projection, reference)] = cosine_clipped(x @ w_null, r)
    return out


def main() -> None:
    args = arguments(__doc__, "docs/results/table5_demo/deepmarks_null.json", "key models 0..n-1, null models 1..n")
    run = campaign_run("deepmarks")
    scheme = run.scheme
    ours, grid, sums = [], {}, {carrier: [] for carrier in CARRIER_LAYERS}
    for seed in range(args.seeds):
        key_model, null_model = stored_source(run, seed), stored_source(run, seed + 1)
        for carrier, layer in CARRIER_LAYERS.items():
            w = mean_filter(null_model, layer)
            sums[carrier].append(float(w.sum() / w.norm()))
        for draw in range(args.keys):
            key_seed = null_key_seed(seed, draw)
            key = scheme.keygen(key_model, run.data, torch.Generator().manual_seed(key_seed))
            ours.append(float(scheme.extract(null_model, key, None)))
            code = 2 * and_acc_codebook(scheme.order)[:KEY_BITS, draw % scheme.code_length(scheme.order)].float() - 1
            for rule, value in rule_scores(key_model, null_model, code,
                                           torch.Generator().manual_seed(key_seed + 1)).items():
                grid.setdefault(rule, []).append(value)
    result = {"seeds": args.seeds, "keys": args.keys,
              "null_models": f"unmarked budget=demo SmallCNNs, seeds 1..{args.seeds}",
              "ours": {"carrier": "conv2 mean filter", "v": scheme.code_length(scheme.order), **null_summary(ours)},
              "rules": [{"carrier": f"{c} mean filter", "projection": p, "reference": r, "v": KEY_BITS, **null_summary(v)}
                        for (c, p, r), v in grid.items()],
              "carrier_sum_over_norm": {f"{c} mean filter": s for c, s in sums.items()}}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'carrier':<18} {'projection':<10} {'reference':<10} {'mean':>6} {'= 0':>5} {'θ normal':>9} {'θ emp.':>7}")
    for r in [{"projection": "normal", "reference": "code (ours)", **result["ours"]}, *result["rules"]]:
        print(f"{r['carrier']:<18} {r['projection']:<10} {r['reference']:<10} {r['mean']:6.3f} {r['zero_share']:5.2f} "
              f"{r['theta_normal']:9.3f} {r['theta_empirical']:7.3f}")
    for carrier, values in result["carrier_sum_over_norm"].items():
        print(f"Σw/‖w‖ of the null models' {carrier}: {min(values):.2f} to {max(values):.2f}")


if __name__ == "__main__":
    main()
