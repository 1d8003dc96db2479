"""θ per configuration (SoK §VII-A, lines 1094–1099 of the paper's text): for Content, Noise, Frontier
Stitching and Blackmarks the threshold is the largest over the scheme's configurations, with that
configuration's interval; the other schemes keep one θ from the null runs of all their configurations."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.analysis_runs import run_record, write
from wrt.analysis.load import load_runs
from wrt.analysis.thresholds import MAX_OVER_CONFIGS, decision_thresholds

# per (scheme, config): the null models' key scores (6 models × 5 keys); content's square=16 scores higher
NULLS = {
    ("content", 8): np.linspace(0.0, 0.10, 30),
    ("content", 16): np.linspace(0.10, 0.40, 30),
    ("adi", 0.001): np.linspace(0.05, 0.15, 30),
    ("adi", 0.0001): np.linspace(0.10, 0.35, 30),
}
PARAM = {"content": "square", "adi": "lr"}


def null_record(scheme: str, value, model: int, scores, key_size: int = 100) -> dict:
    record = run_record(run_name=f"null_{scheme}_{value}_{model}", scheme="adi", scheme_params={}, attack="none",
                        attack_params={}, seed=model, role="null", marked_wm=float(scores[0]))
    record["scheme"] = {"name": scheme, "params": {PARAM[scheme]: value, "epochs": 5}, "ablated": [PARAM[scheme]],
                        "bits": False, "key_size": key_size}
    record["null"] = {"wm_accs": [float(x) for x in scores]}
    return record


def write_nulls(results_dir, nulls=NULLS):
    for (scheme, value), scores in nulls.items():
        for model, chunk in enumerate(np.array_split(scores, len(scores) // 5)):
            write(results_dir, null_record(scheme, value, model, chunk))


def thresholds_of(results_dir):
    return decision_thresholds(load_runs(results_dir).runs).set_index("scheme")


def test_max_over_configs_for_the_sok_schemes_and_pooled_for_the_others(tmp_path):
    assert set(MAX_OVER_CONFIGS) == {"content", "noise", "frontier_stitching", "blackmarks"}
    write_nulls(tmp_path / "all")
    table = thresholds_of(tmp_path / "all")
    for scheme, value in (("content", 8), ("content", 16), ("adi", 0.001), ("adi", 0.0001)):
        write_nulls(tmp_path / f"{scheme}{value}", {(scheme, value): NULLS[(scheme, value)]})
    alone = {key: thresholds_of(tmp_path / f"{key[0]}{key[1]}").loc[key[0]]
             for key in (("content", 8), ("content", 16), ("adi", 0.001), ("adi", 0.0001))}
    content = table.loc["content"]
    # content: the larger θ (square=16's) with that configuration's own interval and estimates
    assert alone[("content", 16)]["threshold"] > alone[("content", 8)]["threshold"]
    assert content["threshold_config"] == "content(square=16)" and content["n_configs"] == 2
    for column in ("threshold", "threshold_lo", "threshold_hi", "n_null", "n_scores", "method"):
        assert content[column] == alone[("content", 16)][column], column
    # adi: one θ from the null runs of both its configurations together, not the larger one
    adi = table.loc["adi"]
    assert adi["threshold_config"] == "pooled" and adi["n_configs"] == 2 and adi["n_null"] == 12
    write_nulls(tmp_path / "adi_pooled", {("adi", 0): np.concatenate([NULLS[("adi", 0.001)],
                                                                       NULLS[("adi", 0.0001)]])})
    pooled = thresholds_of(tmp_path / "adi_pooled").loc["adi"]
    assert adi["threshold"] == pytest.approx(pooled["threshold"])
    assert adi["threshold"] < alone[("adi", 0.0001)]["threshold"]


def test_a_configuration_without_enough_null_runs_is_left_out(tmp_path):
    nulls = {**NULLS, ("content", 4): np.full(10, 0.9)}  # 2 null models: fewer than min_null_runs (5)
    write_nulls(tmp_path, nulls)
    content = thresholds_of(tmp_path).loc["content"]
    assert content["threshold_config"] == "content(square=16)" and content["n_configs"] == 2
