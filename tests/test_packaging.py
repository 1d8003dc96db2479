"""wrt as an installed package: the wheel carries the config groups (`wrt.CONFIG_DIR`) and the ablation
sweeper, and its `wrt-run` and `wrt-analyze` work from a folder that is not the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT, TINY, WRT_RUN

import wrt


def test_the_wheel_runs_from_outside_the_checkout(tmp_path, fmnist_full):
    # build from a copy, so that the build leaves no build/ or egg-info folder in the checkout; no build
    # isolation and no dependencies: nothing is downloaded
    source = tmp_path / "source"
    source.mkdir()
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    for package in ("wrt", "hydra_plugins"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("wrt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = Path(wrt.CONFIG_DIR)
    yamls = {f"wrt/configs/{p.relative_to(configs).as_posix()}" for p in configs.rglob("*.yaml")}
    assert len(yamls) > 50 and yamls <= names, sorted(yamls - names)
    assert "hydra_plugins/wrt_ablation_sweeper/ablation_sweeper.py" in names

    site, work = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the unpacked wheel first on the path

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, cwd=work, env=env, timeout=300)

    where = run(sys.executable, "-c", "import wrt; print(wrt.__file__, wrt.CONFIG_DIR)").stdout.split()
    assert Path(where[0]).is_relative_to(site) and not Path(where[0]).is_relative_to(ROOT), where
    assert Path(where[1]) == site / "wrt" / "configs"

    job = run(WRT_RUN, "--cfg", "job", "scheme=noise")
    assert job.returncode == 0 and "_target_: wrt.schemes.noise.Noise" in job.stdout, job.stderr[-2000:]
    assert run(str(Path(WRT_RUN).with_name("wrt-analyze")), "--help").returncode == 0

    smoke = run(WRT_RUN, *TINY, "scheme=none",
                "attack=none", f"results_dir={work}/results", f"store_dir={work}/store", "progress=false")
    assert smoke.returncode == 0, smoke.stderr[-2000:]
    path = Path(smoke.stdout.strip().splitlines()[-1])
    assert path.is_relative_to(work / "results" / "runs") and path.exists()
