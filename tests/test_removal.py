"""Attacks remove a watermark that verifies, and leave alone what they do not remove: one pair per
attack category and per adaptive attack, through the whole pipeline (`wrt.pipeline.run`: source →
key → embedding → attack → evaluation of the key on the surrogate).

The pairs are cells that the committed Table V reproduction (docs/results/table5_restricted/
robustness.md) or the SoK marks ✗ (removed) or ✓ (robust) with a wide margin. The runs use a small
dedicated budget (conftest.REMOVAL_BUDGET: budget=smoke with a 4-epoch source model, three embedding
epochs, attacks at their paper epochs) and share one store, so each model trains once.

Success is the SoK's (Eq. 5/6): surrogate wm acc < θ and stealing loss ≤ 0.05. θ is each scheme's
decision threshold as the analysis computes it here, the binomial bound at p = 0.05
(docs/results/table5_restricted/thresholds.md; wrt.stats.binomial_threshold). Margins were measured on one
CPU (an Intel Xeon with AMX, where cpu_bf16=auto trains in bf16; other CPUs train in fp32) and are
stated per test.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from wrt.pipeline import run

from conftest import CONFIG_DIR, REMOVAL_BUDGET, WRT_RUN, run_tool
from test_pipeline import last_line_json

RULE = 0.05          # the stealing-loss rule: a removal may cost at most 5 points of test accuracy
# binomial bounds (wrt.stats.binomial_threshold): 100 random bits, 100 labels of 10 classes
THETA = {"uchida": 0.59, "deepsigns": 0.59, "noise": 0.16, "dawn": 0.2}
UCHIDA = ["scheme=uchida", "scheme.lam=10"]  # λ = 10: Table V's uchida config against the cheap attacks


@pytest.fixture
def attack_run(removal_store, tmp_path, fmnist_full):
    """One run at REMOVAL_BUDGET in the shared store; checks that the marked model verifies."""

    def _run(*overrides: str) -> dict:
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            cfg = compose("config", overrides=[*REMOVAL_BUDGET, f"results_dir={tmp_path}", f"store_dir={removal_store}",
                                               "progress=false", *overrides])
        result, _ = run(cfg)
        assert result["status"] == "ok", result.get("error")
        assert result["marked"]["wm_acc"] >= THETA[result["scheme"]["name"]], "the watermark did not embed"
        return result
    return _run


def success(result: dict) -> bool:
    return result["surrogate"]["wm_acc"] < THETA[result["scheme"]["name"]] and result["stealing_loss"] <= RULE


def test_input_smoothing_removes_a_noise_trigger_but_not_a_weight_watermark(attack_run):
    """Input preprocessing. Table V has no ✗ for it on Fashion-MNIST (nor in the SoK but for frontier
    stitching); noise's trigger is Gaussian pixel noise (σ = 0.4), which a 3×3 median filter takes out.
    uchida (✓ in Table V: 1.00) lives in the weights, which preprocessing never touches.
    Measured: noise 1.00 → 0.00 (0.16 under θ); the filter costs 2.8 points of accuracy (fp32) and
    3.7–4.7 (bf16, 1 thread), at the rule's edge (0.05), so the loss is bounded at 0.1 here, not at the
    rule. uchida stays 1.00 (θ 0.59)."""
    removed = attack_run("scheme=noise", "attack=input_smoothing", "attack.kernel=median")
    assert removed["surrogate"]["wm_acc"] < THETA["noise"] and removed["stealing_loss"] < 0.1
    kept = attack_run(*UCHIDA, "attack=input_smoothing", "attack.kernel=median")
    assert kept["surrogate"]["wm_acc"] >= THETA["uchida"] and not success(kept)


def test_weight_shifting_removes_uchida_and_feature_permutation_leaves_a_trigger_set(attack_run):
    """Model modification, and two adaptive attacks. Table V: uchida × weight shifting ✗ (0.00).
    Feature permutation keeps the model's function, so a trigger set (noise) keeps its accuracy:
    the negative case. (It does remove uchida on conv2's mean filter: permuting conv1's filters
    permutes that carrier's input channels, docs/schemes.md.)
    Measured (fp32, 2 threads, Intel Xeon with AMX): weight shifting 1.00 → 0.00 (0.59 under θ) at 0.1
    points of loss; noise keeps 1.00 at no loss."""
    shifted = attack_run(*UCHIDA, "attack=weight_shifting")
    assert success(shifted)
    permuted = attack_run("scheme=noise", "attack=feature_permutation")
    assert permuted["surrogate"]["wm_acc"] >= THETA["noise"] and not success(permuted)
    assert abs(permuted["stealing_loss"]) < 1e-6  # the function is unchanged


def test_feature_permutation_removes_deepsigns(attack_run):
    """The adaptive attack the SoK designed against DeepSigns (SoK Table V ✗): DeepSigns reads the
    activations of fc1's units in their order, which the permutation shuffles; the function is
    unchanged (loss 0). θ = 0.59 (100 bits). Measured: marked 0.90–0.92 (0.31 over θ), surrogate
    0.47–0.52 (0.07 under θ)."""
    result = attack_run("scheme=deepsigns", "attack=feature_permutation")
    assert success(result) and abs(result["stealing_loss"]) < 1e-6


def test_retraining_removes_uchida_but_not_from_five_percent_of_the_data(attack_run):
    """Model extraction. Table V: uchida × retraining ✗ (0.48): a model trained anew on the marked
    model's answers has none of its bits. With 5 % of the attacker's data (50 images) the same attack
    leaves a surrogate far below the marked model's accuracy: no success. Measured: 1.00 → 0.51 (0.08
    under θ = 0.59, chance for 100 bits) for 0.5 points of accuracy (fp32); 3.7–4.3 points with 9-bit
    keys in bf16, at the rule's edge, so the loss is bounded at 0.1 here; from 5 %: loss 0.50 (0.45
    over the rule)."""
    removed = attack_run(*UCHIDA, "attack=retraining")
    assert removed["surrogate"]["wm_acc"] < THETA["uchida"] and removed["stealing_loss"] < 0.1
    starved = attack_run(*UCHIDA, "attack=retraining", "attacker_data.fraction=0.05")
    assert starved["stealing_loss"] > RULE and not success(starved)


def test_smooth_retraining_removes_dawn(attack_run):
    """The adaptive attack against DAWN (SoK Table V ✗): DAWN answers a keyed 1 % of queries falsely,
    and a surrogate trained on answers averaged over affine variations of each query does not learn
    those false answers. Measured: DAWN's key 1.00 → 0.00 with bf16, 0.125 with fp32 (0.075 under θ).
    Its stealing loss (0.003–0.025 here, 0.044 with a 2-epoch source) was over the rule in the restricted
    table5 reproduction, where the cell is ✓, so only the key and a working surrogate are asserted."""
    result = attack_run("scheme=dawn", "attack=smooth_retraining")
    assert result["surrogate"]["wm_acc"] < THETA["dawn"] and result["surrogate"]["test_acc"] > 0.5


def test_a_marked_model_verifies_and_weight_shifting_removes_the_watermark(removal_store, tmp_path, fmnist_full):
    """End to end through `wrt-run` at the removal budget (conftest.REMOVAL_BUDGET): uchida with λ = 10
    verifies (θ = 0.59, the binomial bound for 100 bits at p = 0.05, docs/schemes.md) and weight shifting
    (Eq. 7, then fine-tuning) removes it. Measured in-process (Intel Xeon with AMX, fp32, 2 threads):
    marked 1.00 (0.41 over θ), surrogate 0.00 (0.59 under θ), stealing loss 0.001; with 9-bit keys in
    bf16 the loss was 0.016–0.039 (the thread count changes the models), so the loss is bounded at 0.1,
    not at the 0.05 rule
    (the tests above assert the rule where its margin is wide)."""
    proc = run_tool([WRT_RUN, *REMOVAL_BUDGET, "scheme=uchida", "scheme.lam=10", "attack=weight_shifting",
                     f"results_dir={tmp_path}/results", f"store_dir={removal_store}", "progress=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = last_line_json(proc)
    assert result["marked"]["wm_acc"] >= THETA["uchida"]  # the watermark verifies on the marked model
    assert result["surrogate"]["wm_acc"] < THETA["uchida"] and result["stealing_loss"] < 0.1  # and is removed
