"""Nothing the suite needs is skipped silently: with the dataset hidden (`WRT_DATA_NO_SYSTEM=1`,
no `$WRT_DATA`), data tests fail under CI=true with the fix in one line, and elsewhere they skip
and the run ends with one line counting them and naming what to install (pytest's line stays last)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

# two tests that need Fashion-MNIST: one through `fmnist_full`, one through the `fmnist` subset
DATA_TESTS = ["tests/test_pipeline.py::test_smoke_run_writes_a_complete_json_and_reuses_the_source",
              "tests/test_detection.py::test_a_clean_model_flags_no_class_and_the_smallest_trigger_is_removed_without_a_detection"]
FIX = "apt-get install -y dataset-fashion-mnist"


def pytest_without_data(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "WRT_DATA")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DATA_TESTS],
                          cwd=ROOT, env={**clean, "WRT_DATA_NO_SYSTEM": "1", **env}, capture_output=True,
                          text=True, timeout=300)


def test_the_switch_hides_the_system_dataset(monkeypatch):
    from wrt.data import DatasetUnavailable
    from wrt.data.sources import FASHION_MNIST_SYSTEM_DIR, candidate_dirs, fashion_mnist

    monkeypatch.delenv("WRT_DATA", raising=False)
    assert FASHION_MNIST_SYSTEM_DIR in map(str, candidate_dirs(None, "fashion-mnist", (FASHION_MNIST_SYSTEM_DIR,)))
    monkeypatch.setenv("WRT_DATA_NO_SYSTEM", "1")
    assert candidate_dirs(None, "fashion-mnist", (FASHION_MNIST_SYSTEM_DIR,)) == []
    try:
        fashion_mnist()
    except DatasetUnavailable as e:
        assert FIX in str(e) and "\n" not in str(e)
    else:
        raise AssertionError("Fashion-MNIST was found with the system folders hidden")


def test_under_ci_a_missing_dataset_fails_with_the_fix_in_one_line():
    proc = pytest_without_data(CI="true")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert lines[-1].startswith("2 errors"), lines[-1]
    fixes = [line for line in lines if FIX in line]
    assert fixes and all("CI=true and Fashion-MNIST not found" in line for line in fixes)
    assert not any("skipped" in line for line in lines)


def test_elsewhere_the_skips_are_counted_in_one_line_before_pytests_own():
    proc = pytest_without_data()
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert lines[-1].startswith("2 skipped"), lines[-1]
    assert lines[-2].startswith("wrt: 2 test(s) skipped; to run them: Fashion-MNIST not found") and FIX in lines[-2]
