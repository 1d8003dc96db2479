#!/usr/bin/env bash
# GPU check (about 5 minutes on one GPU): the training path on CUDA against the DataLoader
# baseline, the CPU path for the GPU-vs-CPU ratio, and one real run (default source model,
# one scheme, one attack) on CUDA. Prints throughputs and speedups.
#   bash scripts/gpu_check.sh            (from the repository root, after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-results/bench}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"

echo "== training throughput on CUDA (full Fashion-MNIST, 2 epochs) =="
"$PY" scripts/bench_train.py --device cuda --train 60000 --epochs 2 --out "$OUT"
echo "== training throughput on the CPU (10,000 images, 1 epoch) =="
"$PY" scripts/bench_train.py --device cpu --train 10000 --epochs 1 --out "$OUT"

echo "== one run on CUDA: default source model, adi, weight_pruning =="
STORE=$(mktemp -d)
"$PY" -m wrt.cli device=cuda scheme=adi attack=weight_pruning progress=false \
    results_dir="$OUT/gpu_run" store_dir="$STORE" | tail -1 > "$OUT/gpu_run_path.txt"
rm -rf "$STORE"

"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
cuda = json.loads((out / "bench_train_cuda.json").read_text())
cpu = json.loads((out / "bench_train_cpu.json").read_text())
best = lambda report: max(r["images_per_s"] for name, r in report["results"].items() if name.startswith("wrt"))
run = json.loads(Path((out / "gpu_run_path.txt").read_text().strip()).read_text())
print(f"run: status {run['status']}, source test acc {run['source']['test_acc']:.4f} in "
      f"{run['source']['train_time_s']:.1f} s, marked wm acc {run['marked']['wm_acc']}, "
      f"stages {run['timing_s']}, cuda peak {run['memory']['cuda_max_allocated_mb']} MB")
print(f"throughput cuda {best(cuda):.0f} img/s, cpu {best(cpu):.0f} img/s")
print(f"speedup over the DataLoader baseline on cuda {cuda['speedup']:.2f}")
print(f"gpu_vs_cpu {best(cuda) / best(cpu):.1f}")
PYEOF
