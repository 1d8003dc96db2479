"""What this machine computes with: CPU model and features, cores, and whether bf16 pays off.

Float results depend on these (kernels differ between AVX2, AVX-512 and AMX, and with the thread
count), so runs record them and the artifact store keys models by precision and threads.
"""

from __future__ import annotations

import os
import platform
from functools import cache

import torch

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


def cpu_bf16_is_faster() -> bool:
    """Whether bf16 autocast trains faster than fp32 on this CPU: with AMX (Intel Sapphire Rapids
    and later), or AVX-512 BF16 on AMD (Zen 4 and later), measured 1.5x faster (README). Intel's
    AVX-512 BF16 without AMX (Cooper Lake, or a VM that hides AMX) measured 1.3x slower than fp32, and
    CPUs without either only emulate bf16."""
    amd_bf16 = torch.cpu._is_avx512_bf16_supported() and _cpuinfo().get("vendor_id") == "AuthenticAMD"
    return torch.cpu._is_amx_tile_supported() or amd_bf16


def uses_bf16(device: torch.device, amp: bool = True, cpu_bf16: bool | str = "auto") -> bool:
    """Whether training on `device` runs under bf16 autocast: always on CUDA (with `amp`); on
    the CPU with `cpu_bf16` true, or `auto` where bf16 is the faster of the two there."""
    if not amp:
        return False
    if device.type == "cuda":
        return True
    wanted = cpu_bf16 is True or (cpu_bf16 == "auto" and cpu_bf16_is_faster())
    return device.type == "cpu" and wanted and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def summary() -> str:
    """One line: CPU model, kernel flags, cores, torch threads and the default CPU precision."""
    return (f"cpu: {cpu_model()} | flags: {' '.join(cpu_flags()) or 'none of ' + ','.join(KERNEL_FLAGS)}"
            f" | cores {cores()} | torch threads {torch.get_num_threads()}"
            f" | cpu_bf16=auto → {'bf16' if uses_bf16(torch.device('cpu')) else 'fp32'}")
