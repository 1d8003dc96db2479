"""The measurement scripts under scripts/ that summarise finished sweeps."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import ROOT, load_script
from fixtures.analysis_runs import run_record, write, write_sweep
from wrt.models import SmallCNN


def test_sweep_cost_sums_stage_seconds_and_reports_corrupt_files(tmp_path):
    write_sweep(tmp_path)
    runs = sorted((tmp_path / "runs").glob("*.json"))
    (tmp_path / "runs" / "broken.json").write_text("{not json")
    out = tmp_path / "cost.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_cost.py"), str(tmp_path), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary["runs"] == len(runs) and [s.split(":")[0] for s in summary["skipped"]] == ["broken.json"]
    # each fixture run spends 17.2 s in its stages, with one thread
    assert summary["core_hours"] == pytest.approx(len(runs) * 17.2 / 3600)
    assert summary["by_stage"]["embed"] == pytest.approx(len(runs) * 10.0 / 3600)
    assert proc.stdout.splitlines()[-1].split()[:2] == ["total", str(len(runs))]


def test_sweep_cost_gives_core_hours_per_stage_per_attack_and_names_the_cpus(tmp_path):
    """Two CPUs, one and two threads, an active scheme's extraction: each stage's seconds × threads, per attack
    over its marked and null runs, per CPU, and `other` for a total above the named stages."""
    def run(name, attack_name, params, cpu, threads, role="marked", **timing):
        record = run_record(run_name=name, scheme="adi", scheme_params={"size": 50}, attack=attack_name,
                            attack_params=params, seed=0, role=role)
        record.update(cpu=cpu, cpu_threads=threads)
        record["timing_s"] = {"data": 0.0, "source": 0.0, "keygen": 0.0, "embed": 0.0, "evaluate": 0.0,
                              "attack": 0.0, **timing}
        write(tmp_path, record)

    run("null0", "none", {}, "AMD EPYC 9654", 1, role="null", source=3600, embed=1800, evaluate=360, total=5800)
    run("tl0", "transfer_learning", {"epochs": 5}, "Intel Xeon", 2, attack=900, evaluate=180, total=1080)
    run("ws0", "weight_pruning", {"rate": 0.5}, "Intel Xeon", 1, extract=720, attack=36, total=756)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_cost.py"), str(tmp_path),
                           "--out", str(tmp_path / "cost.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "cost.json").read_text())
    assert summary["cpus"] == ["AMD EPYC 9654", "Intel Xeon"]
    assert summary["by_stage"] == pytest.approx({"data": 0.0, "source": 1.0, "keygen": 0.0, "embed": 0.5,
                                                 "evaluate": 0.1 + 0.1, "extract": 0.2, "attack": 0.5 + 0.01,
                                                 "other": (5800 - 5760) / 3600})
    assert summary["by_attack"]["transfer_learning"]["core_hours"] == pytest.approx(2 * 1080 / 3600)
    assert summary["by_attack"]["weight_pruning"]["extract"] == pytest.approx(0.2)
    assert {cpu: g["runs"] for cpu, g in summary["by_cpu"].items()} == {"AMD EPYC 9654": 1, "Intel Xeon": 2}
    assert summary["by_cpu"]["Intel Xeon"]["core_hours"] == pytest.approx(0.6 + 0.21)
    assert "  Intel Xeon: 2 runs, 0.810 core-h" in proc.stdout.splitlines()
    assert proc.stdout.splitlines()[-1].split()[:2] == ["total", "3"]


def test_sweep_cost_names_a_folder_without_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_cost.py"), str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "results_dir=" in proc.stderr and "nowhere" in proc.stderr


def test_sweep_cost_counts_a_cpu_runs_process_seconds_where_recorded(tmp_path):
    """A CPU run with `cpu_s` costs its CPU seconds (a paused or crowded run's wall time overstates it); a run
    without them, or on a GPU, costs wall seconds × threads."""
    def run(name, device, threads, wall, cpu=None):
        record = run_record(run_name=name, scheme="adi", scheme_params={"size": 50}, attack="weight_pruning",
                            attack_params={"rate": 0.5}, seed=0)
        record.update(device=device, cpu_threads=threads)
        record["timing_s"] = {"attack": wall, "total": wall}
        if cpu is not None:
            record["cpu_s"] = {"attack": cpu, "total": cpu}
        write(tmp_path, record)

    run("paused", "cpu", 1, wall=3600, cpu=900)
    run("older", "cpu", 2, wall=900)
    run("gpu", "cuda", None, wall=360, cpu=3600)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_cost.py"), str(tmp_path),
                           "--out", str(tmp_path / "cost.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "cost.json").read_text())
    assert summary["core_hours"] == pytest.approx(0.25 + 0.5 + 0.1)
    assert summary["counted_by"] == {"cpu_s": 1, "wall × threads": 2}
    assert "counted by: cpu_s 1 runs, wall × threads 2 runs" in proc.stdout

def test_deepmarks_null_rules_separate_the_key_from_the_layers_weight_sum(monkeypatch):
    """scripts/deepmarks_null.py: a uniform projection scores two unrelated models by their carriers' weight
    sums (≈ 1 against each other when both sums are positive, 0 against a signature when negative), a
    zero-mean projection against a code does not."""
    null_rules = load_script("deepmarks_null", monkeypatch)
    torch.manual_seed(0)
    models = [SmallCNN(num_classes=10, in_channels=1, mean=[0.5], std=[0.5]) for _ in range(2)]
    code = 2 * torch.randint(0, 2, (null_rules.KEY_BITS,)).float() - 1

    def scores(shift: float) -> dict:
        with torch.no_grad():
            for model in models:
                for conv in ("conv1", "conv2"):
                    weight = getattr(model.features, conv)[0].weight
                    weight.sub_(weight.mean()).add_(shift)
        return null_rules.rule_scores(*models, code, torch.Generator().manual_seed(1))

    positive, negative = scores(0.05), scores(-0.05)
    assert len(positive) == len(null_rules.CARRIER_LAYERS) * len(null_rules.PROJECTIONS) * len(null_rules.REFERENCES)
    for carrier in null_rules.CARRIER_LAYERS:
        assert positive[(carrier, "uniform", "key model")] > 0.95
        assert negative[(carrier, "uniform", "signature")] == 0.0
        assert negative[(carrier, "uniform", "key model")] > 0.95  # two negative sums agree too
        assert positive[(carrier, "normal", "code")] < 0.5


def test_noise_null_keys_use_one_mask_or_noise_per_image(monkeypatch):
    """scripts/noise_null.py: a key's images are drawn from the source class's pool; one mask adds the same
    noise to every image, the toolbox's rule a different noise to each."""
    noise_null = load_script("noise_null", monkeypatch)
    pools = {0: torch.full((50, 1, 4, 4), 128, dtype=torch.uint8), 1: torch.zeros((50, 1, 4, 4), dtype=torch.uint8)}
    one_mask = noise_null.key_images(pools, 0, 0.1, False, 10, torch.Generator().manual_seed(0))
    per_image = noise_null.key_images(pools, 0, 0.1, True, 10, torch.Generator().manual_seed(0))
    assert one_mask.shape == per_image.shape == (10, 1, 4, 4)
    assert torch.equal(one_mask[0], one_mask[9]) and not torch.equal(per_image[0], per_image[9])
    assert abs(float(one_mask.mean()) - 128 / 255) < 0.1 and one_mask.min() >= 0 and one_mask.max() <= 1


def test_key_transfer_reports_the_target_class_per_true_class(monkeypatch):
    """scripts/key_transfer.py: per true class, the mean softmax probability of the target class and the
    share of images answered with it."""
    transfer = load_script("key_transfer", monkeypatch)
    logits = torch.tensor([[0.0, 5.0], [5.0, 0.0], [0.0, 5.0], [0.0, 5.0]])  # answers 1, 0, 1, 1
    labels = torch.tensor([0, 0, 1, 1])
    report = transfer.per_class(logits, labels, 1, ["a", "b"])
    assert report["a"]["top1_target"] == 0.5 and report["b"]["top1_target"] == 1.0
    assert 0.49 < report["a"]["p_target"] < 0.51 and report["b"]["p_target"] > 0.99
    assert transfer.target_share(logits, 1) == 0.75


def test_nc_pairs_check_refines_the_ten_smallest_pairs_and_unlearns_on_the_source_class(monkeypatch):
    """scripts/nc_pairs_check.py (the SoK toolbox's partial Neural Cleanse): a trigger for each of the 90 ordered
    pairs on the source class's images, the 10 smallest by |m·p|₁ searched again for 4 + 8 epochs and the smallest
    of those kept (here a refinement reverses their order); the unlearning data adds m·p to the source class's
    images, clipped, with their own label. The reverse-engineering is a stand-in whose norms are set per pair."""
    pairs = load_script("nc_pairs_check", monkeypatch)
    first = {(s, t): 10.0 * s + t for s in range(10) for t in range(10) if s != t}  # smallest: 0→1 … 0→9, 1→0
    calls = []

    def reverse_engineer(ctx, net, images, target, *, epochs, lam):
        source = int(images[0, 0, 0, 0])  # the stand-in's images carry their class in one pixel
        assert bool((images[:, 0, 0, 0] == source).all())  # each search sees its source class only
        calls.append((source, target, epochs))
        norm = first[source, target] if epochs == 4 else 100.0 - first[source, target]
        trigger = pairs.Trigger(None, (1, 10, 10))
        with torch.no_grad():
            trigger.mask_logit.fill_(torch.logit(torch.tensor(norm / 100)))
            trigger.pattern_logit.fill_(30.0)  # pattern ≈ 1: |m·p|₁ ≈ Σm = norm
        return trigger

    monkeypatch.setattr(pairs, "reverse_engineer", reverse_engineer)
    labels = torch.arange(10).repeat_interleave(3)
    images = labels.float().view(-1, 1, 1, 1).expand(-1, 1, 10, 10).clone()
    source, target, trigger, norms = pairs.smallest_pair_trigger(None, SimpleNamespace(num_classes=10), images,
                                                                 labels, epochs=4, lam=0.01)
    refined = [(s, t) for s, t, epochs in calls if epochs == 12]
    assert len(norms) == 90 and len(calls) == 100
    assert sorted(refined) == sorted([(0, t) for t in range(1, 10)] + [(1, 0)])
    assert (source, target) == (1, 0) and pairs.trigger_norm(trigger) == pytest.approx(90, abs=0.01)

    uint8_images = torch.full((4, 1, 10, 10), 200, dtype=torch.uint8)
    x, y = pairs.unlearning_set(uint8_images, torch.tensor([1, 0, 1, 2]), 1, trigger)
    assert x.shape == (6, 1, 10, 10) and y.tolist() == [1, 0, 1, 2, 1, 1]
    assert torch.allclose(x[:4], torch.full((4, 1, 10, 10), 200 / 255))
    assert torch.allclose(x[4:], torch.ones(2, 1, 10, 10))  # 200/255 + 0.9 · 1, clipped


def test_seed_swap_names_the_seed_a_split_follows_and_finds_the_campaigns_run(monkeypatch, tmp_path):
    """scripts/seed_swap.py: over the grid (marked model's seed × attack's seed) of removals, a split follows the
    marked model when each model seed's row agrees, the attacker's randomness when each column does; the campaign's
    run of a diagonal combination is the one matching the scheme and attack configs (search blocks aside) and the
    seed, with its CPU (reused only when it is this CPU's)."""
    swap = load_script("seed_swap", monkeypatch)
    assert swap.split_follows({(0, 0): True, (0, 1): True, (1, 0): False, (1, 1): False}) == "the marked model"
    assert swap.split_follows({(0, 0): True, (0, 1): False, (1, 0): True, (1, 1): False}) == \
        "the attacker's randomness"
    assert swap.split_follows({(0, 0): True, (0, 1): False, (1, 0): False, (1, 1): False}) == \
        "both (neither seed alone)"
    assert swap.split_follows({(0, 0): False, (0, 1): False, (1, 0): False, (1, 1): False}) == "no split"

    scheme, attack = {"name": "adi", "lr": 0.001}, {"name": "retraining", "search": {"lr": [0.1, 1]}}
    for name, seed, lr, wm in [("a", 1, 0.01, 0.8), ("b", 1, 0.001, 0.54), ("c", 0, 0.001, 0.11)]:
        record = run_record(run_name=name, scheme="adi", scheme_params={}, attack="retraining", attack_params={},
                            seed=seed, surrogate_wm=wm)
        record.update(cpu="a CPU", precision="fp32", config={"scheme": {**scheme, "lr": lr},
                                                             "attack": {"name": "retraining"}})
        (tmp_path / f"marked_adi_retraining_x_s{seed}_{name}.json").write_text(json.dumps(record))
    found = swap.campaign_result(tmp_path, scheme, attack, 1)
    assert (found["wm_acc"], found["cpu"]) == (0.54, "a CPU")
    assert found["from"] == "campaign run marked_adi_retraining_x_s1_b"
    assert swap.campaign_result(tmp_path, scheme, attack, 2) is None
