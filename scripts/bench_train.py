"""Benchmark: wrt's training path against the plain PyTorch baseline a user would write.

Same model (SmallCNN), same data (Fashion-MNIST), same steps, same optimizer and one-cycle
schedule, measured in one run. The baseline is torchvision's FashionMNIST dataset with a per-sample `ToTensor` transform
and a `torch.utils.data.DataLoader`; wrt keeps the data as one tensor on the device, batches by
slicing, and uses channels_last (plus bf16 autocast where the device has it natively).

The same run measures the machine's limit: the attainable matmul throughput (`wrt.hardware.gemm_peak`:
fp32 and bf16 GEMMs of several sizes, after a warm-up, with the paths' thread count, the best of several
timings) and the model's FLOPs per training image (forward + backward, `torch.utils.flop_counter`),
and reports the fraction of that peak each path reaches.
Writes results/bench/bench_train_<device>.json, prints a table; the last line is `speedup <ratio>`.

    python scripts/bench_train.py [--train 20000] [--epochs 2] [--device cpu|cuda] [--workers 0] [--threads N]
"""

from __future__ import annotations

import argparse
import gzip
import platform
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from wrt.data.sources import FASHION_MNIST_SYSTEM_DIR, candidate_dirs, fashion_mnist, find_idx
from wrt.hardware import cores, cpu_flags, cpu_has_bf16, cpu_model, gemm_peak
from wrt.models import SmallCNN
from wrt.store import atomic_write_json
from wrt.train import OneCycle, Trainer

STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def torchvision_root(tmp: Path) -> Path:
    """Lay the IDX files out the way torchvision's FashionMNIST expects (raw/, uncompressed)."""
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for directory in candidate_dirs(None, "fashion-mnist") + [Path(FASHION_MNIST_SYSTEM_DIR)]:
        files = [find_idx(directory, stem) for stem in STEMS]
        if all(files):
            for stem, path in zip(STEMS, files):
                opener = gzip.open if path.suffix == ".gz" else open
                with opener(path, "rb") as src, open(raw / stem, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            return tmp
    raise SystemExit("Fashion-MNIST not found: apt-get install -y dataset-fashion-mnist")


def new_model(seed: int) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(mean=(0.2860,), std=(0.3530,))


def optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def flops_per_image(batch: int = 128) -> float:
    """FLOPs of one training step of SmallCNN (forward + backward) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    model = new_model(0)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


def baseline(root: Path, n_train: int, epochs: int, device: torch.device, workers: int, seed: int) -> dict:
    """The loop a user would write: per-sample transforms, DataLoader, default memory format."""
    train = datasets.FashionMNIST(str(root), train=True, transform=transforms.ToTensor(), download=False)
    test = datasets.FashionMNIST(str(root), train=False, transform=transforms.ToTensor(), download=False)
    train = torch.utils.data.Subset(train, range(n_train))
    loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(seed))
    model = new_model(seed).to(device)
    opt = optimizer(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: OneCycle()(step / len(loader), epochs))
    model.train()
    steps = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test, batch_size=512):
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    return {"seconds": seconds, "steps": steps, "images_per_s": steps * 128 / seconds,
            "test_acc": correct / len(test)}


def wrt_path(n_train: int, epochs: int, device: torch.device, bf16: bool, seed: int) -> dict:
    data = fashion_mnist()
    trainer = Trainer(epochs=epochs, batch_size=128, device=device, precision="bf16" if bf16 else "fp32",
                      progress=False, seed=seed,
                      schedule=OneCycle(), optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4))
    model = new_model(seed)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    history = trainer.fit(model, data.train_x[:n_train], data.train_y[:n_train], scale_epochs=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": history.steps, "images_per_s": history.steps * 128 / seconds,
            "test_acc": trainer.accuracy(model, data.test_x, data.test_y), "bf16_autocast": trainer.precision == "bf16"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20000, help="training images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads of every path and of the peak probe")
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    bf16 = device.type == "cuda" or cpu_has_bf16()
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if bf16 else {})}
    peaks = {name: gemm_peak(device, dtype) for name, dtype in dtypes.items()}  # before the paths and after: the best
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(Path(tmp))
        rows = {"baseline (DataLoader)": baseline(root, args.train, args.epochs, device, args.workers, args.seed)}
    rows["wrt (fp32, channels_last)"] = wrt_path(args.train, args.epochs, device, False, args.seed)
    if bf16:
        rows["wrt (bf16 autocast, channels_last)"] = wrt_path(args.train, args.epochs, device, True, args.seed)
    base = rows["baseline (DataLoader)"]["images_per_s"]
    for row in rows.values():
        row["speedup"] = row["images_per_s"] / base
    best = max((r for name, r in rows.items() if name.startswith("wrt")), key=lambda r: r["speedup"])
    flops = flops_per_image()
    peaks = {name: max(peaks[name], gemm_peak(device, dtype)) for name, dtype in dtypes.items()}
    for row in rows.values():  # against the peak of the precision the path computes in
        row["gflop_per_s"] = row["images_per_s"] * flops / 1e9
        row["fraction_of_peak"] = row["gflop_per_s"] / peaks["bf16" if row.get("bf16_autocast") else "fp32"]

    report = {"device": str(device), "cpu_threads": torch.get_num_threads(), "train_images": args.train,
              "epochs": args.epochs, "batch_size": 128, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "cpu": cpu_model(), "cpu_flags": cpu_flags(),
              "cores": cores(), "flops_per_train_image": flops, "gemm_peak_gflop_per_s": peaks,
              "results": rows, "speedup": best["speedup"]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_train_{device.type}.json"
    atomic_write_json(path, report)
    print(f"{cpu_model()} ({', '.join(cpu_flags())}), {torch.get_num_threads()} threads; "
          f"SmallCNN {flops / 1e6:.1f} MFLOP per training image; GEMM peak "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    print(f"{'path':36} {'seconds':>8} {'images/s':>9} {'test acc':>8} {'GFLOP/s':>8} {'of peak':>8} {'speedup':>8}")
    for name, r in rows.items():
        print(f"{name:36} {r['seconds']:8.1f} {r['images_per_s']:9.0f} {r['test_acc']:8.4f} "
              f"{r['gflop_per_s']:8.1f} {r['fraction_of_peak']:8.1%} {r['speedup']:7.2f}x")
    print(f"written {path}")
    print(f"fraction of peak {best['fraction_of_peak']:.3f}")
    print(f"speedup {best['speedup']:.2f}")


if __name__ == "__main__":
    main()
