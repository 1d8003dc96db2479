"""Hardening (issue 19): planted links, unusable output folders and out-of-range settings are
one-line errors before any training, and a fuzz test of `wrt-run`'s run-level settings."""

from __future__ import annotations

import copy
import random

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from conftest import CONFIG_DIR
from wrt.pipeline import check_run_config, new_record, run, run_name, run_path, source_spec
from wrt.store import Store
from wrt.validation import InvalidParameter


def one_line_error(proc) -> str:
    """The single `wrt-run: error:` line of a run rejected with exit status 2."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrt-run: error: "), proc.stderr
    return lines[0]


def test_a_planted_lock_link_fails_the_run_and_leaves_its_target_alone(compose_cfg, tmp_path, fmnist_full):
    cfg = compose_cfg("budget=smoke", "attack=none")
    lock = Store(cfg.store_dir).path("source", source_spec(cfg, cfg.seed)).with_suffix(".lock")
    victim = tmp_path / "victim.txt"
    victim.write_text("another user's file")
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    result, _ = run(cfg)
    assert result["status"] == "failed" and result["failed_stage"] == "source"
    assert result["error"].startswith(f"LinkedEntry: {lock} is a symbolic link") and "\n" not in result["error"]
    assert victim.read_text() == "another user's file"


@pytest.mark.parametrize("case", ["runs is a file", "results_dir is a file", "results_dir=/proc/x",
                                  "store_dir is a file"])
def test_an_unusable_output_folder_is_a_one_line_error_before_training(wrt_run, tmp_path, case):
    (tmp_path / "results").mkdir()
    (tmp_path / "file").write_text("")
    overrides = {"runs is a file": [],
                 "results_dir is a file": [f"results_dir={tmp_path}/file"],
                 "results_dir=/proc/x": ["results_dir=/proc/x"],
                 "store_dir is a file": [f"store_dir={tmp_path}/file"]}[case]
    if case == "runs is a file":
        (tmp_path / "results" / "runs").write_text("")
    line = one_line_error(wrt_run("budget=smoke", *overrides))
    assert "must be a writable folder" in line
    assert not (tmp_path / "store" / "source").exists(), "nothing was trained"


def test_device_cuda_without_a_gpu_is_rejected_before_loading_data(compose_cfg, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(InvalidParameter, match=f"device='{device}' .*no CUDA GPU is available"):
            check_run_config(compose_cfg(f"device={device}"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    check_run_config(compose_cfg("device=cuda:1"))
    with pytest.raises(InvalidParameter, match="device='cuda:2' .* N < 2"):
        check_run_config(compose_cfg("device=cuda:2"))


@pytest.mark.parametrize("overrides, message", [
    ([f"seed={2**64}"], f"seed={2**64}"),
    (["seed=4294967296"], "seed=4294967296"),
    ([f"split_seed={2**64}"], f"split_seed={2**64}"),
    (["seed=4294967295", "null_seed_offset=1"], "null_seed_offset=1"),
    (["null_seed_offset=" + "9" * 30], "null_seed_offset=" + "9" * 30),
])
def test_seeds_outside_torchs_range_are_rejected(compose_cfg, overrides, message):
    with pytest.raises(InvalidParameter, match=message):
        check_run_config(compose_cfg(*overrides))
    check_run_config(compose_cfg("seed=4294967294"))  # the largest seed with its null model's seed


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "abc", "true", "1001", "1000000"])
def test_null_keys_must_be_a_positive_integer(compose_cfg, value):
    with pytest.raises(InvalidParameter, match=r"null_keys=.* is not allowed: must be an integer in \[1, 1000\]"):
        check_run_config(compose_cfg(f"null_keys={value}"))


def test_a_null_run_with_a_huge_seed_fails_before_training(wrt_run, tmp_path):
    line = one_line_error(wrt_run("budget=smoke", "role=null", "seed=18446744073709551615"))
    assert "seed=18446744073709551615 is not allowed" in line
    assert not (tmp_path / "store" / "source").exists()


# ---- fuzz: run-level settings ---------------------------------------------------------------

KEYS = ["seed", "split_seed", "null_seed_offset", "checkpoint_every", "device", "force", "progress", "role",
        "budget.max_train", "budget.max_test", "results_dir", "store_dir", "attacker_data",
        "attacker_data.fraction", "attacker_data.count", "attacker_data.labels", "attacker_data.domain"]
VALUES = ["abc", "''", "' '", "-1", "0", "1", "2", "1.5", "-0.0", "true", "false", "null", "1e400", "nan",
          "-inf", str(2**32), str(2**63), str(2**64), "-" + str(2**64), "9" * 400, "[1,2]", "[]", "[null]",
          "{a:1}", "cuda", "cuda:99", "cuda:", "cpu", "marked", "out", "queried", "ground_truth", "x/../y",
          "/proc/x", "\\x00"]


def fuzz_cases() -> list[list[str]]:
    singles = [[f"{key}={value}"] for key in KEYS for value in VALUES]
    rng = random.Random(19)
    pairs = [[f"{key}={rng.choice(VALUES)}" for key in rng.sample(KEYS, 2)] for _ in range(150)]
    return singles + pairs


def test_fuzz_run_settings_give_one_line_errors_or_pass(tmp_path, monkeypatch):
    """Every bad value of a run-level setting is rejected by `check_run_config` with one line
    naming the setting (exit status 2 in `wrt-run`); a value it lets through must carry the run
    up to the point where data is loaded. Hydra's own merge errors (a list over a mapping) are
    Hydra's and left out."""
    monkeypatch.chdir(tmp_path)  # relative results_dir / store_dir values land here
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        base = compose("config", overrides=[f"results_dir={tmp_path}/results", f"store_dir={tmp_path}/store",
                                            "progress=false"])
    parser = OverridesParser.create()
    outcomes = {"rejected": 0, "accepted": 0, "hydra": 0}
    for overrides in fuzz_cases():
        cfg = copy.deepcopy(base)
        try:
            for override in parser.parse_overrides(overrides):
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        except Exception:  # noqa: BLE001 - Hydra rejects these itself, as wrt-run does
            outcomes["hydra"] += 1
            continue
        try:
            check_run_config(cfg)
        except InvalidParameter as e:
            message = str(e)
            assert "\n" not in message and " is not allowed: must be " in message, (overrides, message)
            assert message.split("=", 1)[0] in KEYS, (overrides, message)  # names the setting
            outcomes["rejected"] += 1
            continue
        except Exception as e:  # anything else would be a traceback in wrt-run
            pytest.fail(f"{overrides}: {type(e).__name__}: {e}")
        run_name(cfg), run_path(cfg), new_record(cfg)  # what runs before the data loads must work
        outcomes["accepted"] += 1
    assert outcomes["rejected"] > 400 and outcomes["accepted"] > 50, outcomes


@pytest.mark.parametrize("override", ["seed=[1,2]", "attacker_data=5",
                                      "results_dir=null"])
def test_fuzzed_settings_through_the_cli(wrt_run, override):
    assert override.split("=")[0] in one_line_error(wrt_run(override))
