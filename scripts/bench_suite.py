"""Benchmark: the test suite's time as `make test` runs it, with the machine's speed measured around it.

The wall time of the suite on a shared 2-core machine drifts by 20-30 % within hours (issue #28), more than
most changes to the tests save. So this runs the suite (`pytest -n auto --dist loadfile --no-loadscope-reorder`,
with `CI=true`), records the seconds of every test file (`--junitxml`) and, before and after it, the machine's
training speed (SmallCNN on Fashion-MNIST, one thread, fp32: images/s of `Trainer.fit`, the median of several
timings). `suite_s_at_reference` rescales the wall time to a machine of `REFERENCE_IMAGES_PER_S`, so runs on
different days compare. Writes results/bench/bench_suite.json; the last line printed is the wall time.

    python scripts/bench_suite.py [pytest arguments, e.g. -k removal]
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from functools import partial
from pathlib import Path

import torch

from wrt.data.sources import fashion_mnist
from wrt.hardware import cpu_model, timed_rates
from wrt.models import SmallCNN
from wrt.store import atomic_write_json
from wrt.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_IMAGES_PER_S = 800.0  # a round number near the Intel Xeon with AMX of 2026-12-06 (720–870 that day)


def training_speed(images: int = 2000, repeats: int = 5) -> float:
    """Images per second of one epoch of SmallCNN training on `images` Fashion-MNIST images, one thread, fp32."""
    torch.set_num_threads(1)
    data = fashion_mnist().subset(images * 3 // 2, 100, seed=0)
    x, y = data.defender()
    torch.manual_seed(0)
    model = SmallCNN(mean=data.mean, std=data.std)
    trainer = Trainer(batch_size=128, progress=False, seed=0, precision="fp32",
                      optimizer=partial(torch.optim.SGD, lr=0.01, momentum=0.9))
    rates = timed_rates(lambda: trainer.fit(model, x, y, epochs=1, scale_epochs=False), len(x),
                        warmup=1, repeats=repeats, min_s=0.0, max_s=120.0, device=torch.device("cpu"))
    return statistics.median(rates)


def file_seconds(junit: Path) -> dict[str, float]:
    seconds = Counter()
    for case in ET.parse(junit).iter("testcase"):
        seconds[case.get("classname").split(".")[-1] + ".py"] += float(case.get("time") or 0)
    return dict(seconds.most_common())


def main(pytest_args: list[str]) -> None:
    before = training_speed()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "suite.xml"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "auto", "--dist", "loadfile",
                               "--no-loadscope-reorder", "-p", "no:cacheprovider", f"--junitxml={junit}", *pytest_args],
                              cwd=ROOT, env={**os.environ, "CI": "true"}, capture_output=True, text=True)
        wall = time.perf_counter() - start
        files = file_seconds(junit) if junit.exists() else {}
    after = training_speed()
    speed = statistics.mean((before, after))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    result = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "pytest_args": pytest_args, "exit_status": proc.returncode, "summary": summary,
        "wall_s": round(wall, 1), "tests_s": round(sum(files.values()), 1),
        "training_images_per_s": {"before": round(before, 1), "after": round(after, 1)},
        "suite_s_at_reference": round(wall * speed / REFERENCE_IMAGES_PER_S, 1),
        "reference_images_per_s": REFERENCE_IMAGES_PER_S,
        "files_s": {name: round(s, 1) for name, s in files.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = ROOT / "results" / "bench" / "bench_suite.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    for name, s in list(files.items())[:10]:
        print(f"{s:8.1f} s  {name}")
    print(f"{summary}\ntraining speed {before:.0f} → {after:.0f} images/s; at {REFERENCE_IMAGES_PER_S:.0f} images/s: "
          f"{result['suite_s_at_reference']:.0f} s; {out}")
    print(f"suite {wall:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
