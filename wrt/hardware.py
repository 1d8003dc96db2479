"""What this machine computes with: CPU model and features, cores, and whether bf16 pays off.

Float results depend on these (kernels differ between AVX2, AVX-512 and AMX, and with the thread
count), so runs record them and the artifact store keys models by precision and threads.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import cache

import torch

from wrt.validation import require

# the instruction-set extensions that select different CPU kernels in torch/oneDNN
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


@cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (empty where there is none)."""
    try:
        text = open("/proc/cpuinfo").read().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The kernel-relevant flags this CPU has (KERNEL_FLAGS order)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [f for f in KERNEL_FLAGS if f in flags]


def cores() -> int:
    """CPU cores this process may use (its affinity mask, e.g. a SLURM allocation)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


PRECISIONS = ("fp32", "bf16", "auto")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), as oneDNN's bf16 kernels need."""
    native = {"avx512_bf16", "amx_bf16"} & set(cpu_flags())
    return bool(native) and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def cpu_bf16_is_faster() -> bool:
    """Whether bf16 autocast trains faster than fp32 on this CPU: with AMX (Intel Sapphire Rapids
    and later), or AVX-512 BF16 on AMD (Zen 4 and later), measured 1.5x faster (README). Intel's
    AVX-512 BF16 without AMX (Cooper Lake, or a VM that hides AMX) measured 1.3x slower than fp32, and
    CPUs without either only emulate bf16."""
    amd_bf16 = "avx512_bf16" in cpu_flags() and _cpuinfo().get("vendor_id") == "AuthenticAMD"
    return cpu_has_bf16() and ("amx_bf16" in cpu_flags() or amd_bf16)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision training on `device` runs in, `fp32` or `bf16` (autocast), for the top-level
    `precision` setting: `fp32` and `bf16` as asked (`bf16` on a CPU without native bf16 is an
    error, not a fall-back); `auto` bf16 on CUDA and on CPUs where bf16 is the faster (`cpu_bf16_is_faster`)."""
    require(precision in PRECISIONS, "precision", precision, "fp32, bf16 or auto")
    device = torch.device(device)
    if precision == "bf16" and device.type == "cpu":
        require(cpu_has_bf16(), "precision", precision,
                f"fp32 or auto on this CPU ({cpu_model()}: no avx512_bf16 or amx_bf16)")
    if precision == "auto":
        return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_bf16_is_faster()) else "fp32"
    return precision


@contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op thread count set to `threads` (None: unchanged) inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def timed_rates(step: Callable[[], object], work: float, *, warmup: int = 2, repeats: int = 5,
                min_s: float = 0.2, max_s: float = 10.0, device: torch.device | None = None) -> list[float]:
    """The probe of scripts/bench_train.py and of the plan (wrt/plan.py): `work` units per second of
    `step()`, in up to `repeats` timings after `warmup` untimed calls (first-call allocation, oneDNN's
    kernel selection). Each timing repeats `step` for at least `min_s`; timing stops early once `max_s`
    have passed (at least one timing). The caller takes the best (a peak) or the median (a typical rate)."""
    def sync():
        if device is not None and torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    rates, begin = [], time.perf_counter()
    while len(rates) < repeats and (not rates or time.perf_counter() - begin < max_s):
        calls, start = 0, time.perf_counter()
        while not calls or time.perf_counter() - start < min_s:
            step()
            sync()
            calls += 1
        rates.append(work * calls / (time.perf_counter() - start))
    return rates


def gemm_peak(device: torch.device, dtype: torch.dtype, threads: int | None = None,
              sizes: tuple[int, ...] = (1024, 2048, 4096)) -> float:
    """Attainable matmul throughput in GFLOP/s with `threads` torch threads (None: the current
    count, which must be the measured path's): the best timing of n×n GEMMs over `sizes`, each after
    a warm-up, so that a path measured against it stays below 100 %."""
    best = 0.0
    with torch_threads(threads):
        for n in sizes:
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            rates = timed_rates(lambda: torch.mm(a, b), 2 * n ** 3 / 1e9, warmup=3, repeats=5, min_s=0.3,
                                device=torch.device(device))
            best = max(best, *rates)
    return best


def summary() -> str:
    """One line: CPU model, kernel flags, cores, torch threads and the default CPU precision."""
    return (f"cpu: {cpu_model()} | flags: {' '.join(cpu_flags()) or 'none of ' + ','.join(KERNEL_FLAGS)}"
            f" | cores {cores()} | torch threads {torch.get_num_threads()}"
            f" | precision=auto → {resolve_precision('auto', torch.device('cpu'))}")
