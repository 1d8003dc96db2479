"""Shared fixtures: real Fashion-MNIST subsets, composed configs, a small trainer."""

from __future__ import annotations

import os
from functools import partial
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from wrt.data import DatasetUnavailable
from wrt.data.sources import fashion_mnist
from wrt.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(ROOT / "configs")
WRT_RUN = str(Path(sys.executable).with_name("wrt-run"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_sessionstart(session) -> None:
    """First line of every test session (also with -q): the CPU the suite runs on, since float
    results, and so the margins of learned-behaviour tests, depend on it."""
    from wrt import hardware

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(hardware.summary())


@pytest.fixture(scope="session")
def fmnist_full():
    try:
        return fashion_mnist()
    except DatasetUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def fmnist(fmnist_full):
    """A seeded 6,000 / 1,000 subset of Fashion-MNIST."""
    return fmnist_full.subset(6000, 1000, seed=0)


@pytest.fixture
def trainer():
    return Trainer(epochs=2, batch_size=128, progress=False, seed=0)


@pytest.fixture
def compose_cfg(tmp_path):
    """Compose the real config with overrides, results and store inside tmp_path."""

    def _compose(*overrides: str):
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            return compose("config", overrides=[f"results_dir={tmp_path}/results",
                                                f"store_dir={tmp_path}/store", "progress=false",
                                                *overrides])
    return _compose


@pytest.fixture
def wrt_run(tmp_path):
    """Run `wrt-run` in a subprocess with results and store inside tmp_path."""

    def _run(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
        flags = [o for o in overrides if o.startswith("-")]
        args = [WRT_RUN, *flags, f"results_dir={tmp_path}/results", f"store_dir={tmp_path}/store",
                "progress=false", *(o for o in overrides if not o.startswith("-"))]
        return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path,
                              env={**os.environ, **(env or {})}, timeout=300)
    return _run


@pytest.fixture(scope="session")
def fmnist_source(fmnist):
    """A SmallCNN trained for 2 epochs on the defender's part of the 6,000-image subset
    (about 80 % test accuracy); copy it before changing it."""
    from wrt.models import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(mean=fmnist.mean, std=fmnist.std)
    trainer = Trainer(epochs=2, batch_size=128, progress=False, seed=0,
                      optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True))
    images, labels = fmnist.defender()
    trainer.fit(model, images, labels, scale_epochs=False)
    return model.eval()
