"""Shared fixtures and helpers: real Fashion-MNIST subsets, composed configs, the config groups
(`options`, `group_config`), a small trainer and an attack context (`make_ctx`)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import subprocess
import sys
from functools import cache, partial
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from wrt import CONFIG_DIR
from wrt.attacks.base import AttackContext, AttackerData
from wrt.data import DatasetUnavailable
from wrt.data.sources import fashion_mnist
from wrt.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
WRT_RUN = str(Path(sys.executable).with_name("wrt-run"))
WRT_ANALYZE = str(Path(sys.executable).with_name("wrt-analyze"))


def suite_threads(workers: int) -> int:
    """torch threads of each test process: 2 (the cores of CI's machines), or under pytest-xdist (`make test`:
    `-n auto`) the cores shared out among its workers, so that they do not oversubscribe the cores. The
    `wrt-run` processes the tests start get the same through OMP_NUM_THREADS."""
    return max(1, min(2, os.cpu_count() or 1) // workers)


WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = suite_threads(WORKERS)
torch.set_num_threads(THREADS)
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(THREADS)


def options(group: str) -> list[str]:
    """The options of a config group: the names of wrt/configs/<group>/*.yaml."""
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def group_config(group: str, name: str, *overrides: str):
    """The node of `group` that the real config composes for option `name` (with overrides)."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=[f"{group}={name}", *overrides])[group]


@cache
def scheme_kinds() -> dict[str, str]:
    """Each scheme config (but none) by where its watermark is read: `black_box` from the model's
    answers (a trigger set, or an active scheme that wraps the model), else `white_box` (from
    inside the model: weights or activations)."""
    from wrt.pipeline import build
    from wrt.schemes.base import NoWatermark, Scheme, TriggerSetScheme

    kinds = {}
    for name in options("scheme"):
        scheme = build(group_config("scheme", name))
        if not isinstance(scheme, NoWatermark):
            answers = isinstance(scheme, TriggerSetScheme) or type(scheme).wrap is not Scheme.wrap
            kinds[name] = "black_box" if answers else "white_box"
    return kinds


def scheme_options(kind: str) -> list[str]:
    """The scheme configs of one kind (`black_box` or `white_box`, see `scheme_kinds`)."""
    return [name for name, k in scheme_kinds().items() if k == kind]


@cache
def attack_options(category: str) -> list[str]:
    """The attack configs whose attack has this category (`wrt.attacks.base.CATEGORIES`)."""
    from wrt.pipeline import build

    return [name for name in options("attack") if build(group_config("attack", name)).category == category]


def load_script(name: str, monkeypatch):
    """scripts/<name>.py as a module, importing its helpers as `python scripts/<name>.py` does."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_ctx(data, trainer: Trainer | dict | None = None, *, model=None, model_seed: int | None = None,
             scheme=None, store=None, seed: int = 0, **attacker_data) -> AttackContext:
    """An attack's context on `data`. `trainer` fine-tunes and trains from scratch: a Trainer, or
    keyword arguments for a fresh one (default: one epoch at batch size 64); `model` is the source
    architecture's class (built with the data's normalisation, after `torch.manual_seed(model_seed)`
    if given); `attacker_data` holds AttackerData's fields (the attacker's data budget)."""
    if not isinstance(trainer, Trainer):
        trainer = Trainer(**{"epochs": 1, "batch_size": 64, "progress": False, "seed": 0, **(trainer or {})})

    def build_model():
        if model is None:
            return None
        if model_seed is not None:
            torch.manual_seed(model_seed)
        return model(mean=data.mean, std=data.std)
    return AttackContext(data, trainer, trainer, build_model, scheme, seed=seed, store=store,
                         attacker_data=AttackerData(**attacker_data))


def pytest_sessionstart(session) -> None:
    """First line of every test session (also with -q): the CPU the suite runs on, its kernel flags,
    threads and the precision `cpu_bf16=auto` picks; float results, and so the margins of
    learned-behaviour tests, depend on it."""
    from wrt import hardware

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    workers = getattr(session.config.option, "numprocesses", None)
    if reporter is not None:  # under xdist, the controller's line, and what each worker runs
        reporter.write_line(hardware.summary() + (f" | xdist: {workers} workers × {suite_threads(workers)} torch thread(s)"
                                                  if isinstance(workers, int) and workers > 1 else ""))


# The test files by their tests' seconds (longest first; `--junitxml` of `make test`, idle Intel Xeon with AMX,
# 2026-12-06), the order in which `make test` (`--dist loadfile --no-loadscope-reorder`: a file's tests stay on
# one worker, files are handed out in this order) gives them to its workers, so that both finish together; the
# files not named, each under 10 s, follow in collection order.
LONGEST_FIRST = ("test_schemes_blackbox.py", "test_removal.py", "test_experiments.py", "test_detection.py",
                 "test_launchers.py", "test_readme.py", "test_schemes_whitebox.py", "test_reliability.py",
                 "test_sweeps.py", "test_analysis_fuzz.py", "test_pipeline.py", "test_interrupt.py",
                 "test_analysis_integrity.py", "test_attacks_extraction.py", "test_config_groups.py",
                 "test_analysis_pipeline.py", "test_ablation_sweep.py", "test_packaging.py",
                 "test_attacks_modification.py", "test_plan.py", "test_attacker_data.py", "test_hardening.py",
                 "test_reanalysis.py", "test_extension.py", "test_attacks_preprocessing.py",
                 "test_active_schemes.py", "test_best_response.py", "test_attacks_obfuscation.py",
                 "test_report_browser.py", "test_skips.py")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order


IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> None:
    """Something a test needs is not installed (`what`: one line naming it and the fix). Under
    CI=true that fails the test; elsewhere the test skips and `pytest_terminal_summary` counts it."""
    if IN_CI:
        pytest.fail(f"CI=true and {what}", pytrace=False)
    pytest.skip(what)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """One line counting the skipped tests and naming what to install, after pytest's summaries and
    right before its own last line."""
    yield
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons = sorted({rep.longrepr[2].removeprefix("Skipped: ") for rep in skipped
                      if isinstance(rep.longrepr, tuple)})
    fixes = [r for r in reasons if "install" in r]
    terminalreporter.write_line(f"wrt: {len(skipped)} test(s) skipped" + (
        "; to run them: " + " | ".join(fixes) if fixes else ""))


@pytest.fixture(scope="session")
def fmnist_full():
    try:
        return fashion_mnist()
    except DatasetUnavailable as e:
        reason = str(e)
    missing(reason)  # outside the except block: one line, no chained traceback


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


def suite_folder(factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of the whole test session: under pytest-xdist, one for all its workers (their common
    temporary folder)."""
    root = factory.getbasetemp()
    path = (root.parent if WORKERS > 1 else root) / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def suite_probes(tmp_path_factory):
    """The sweep plans' timing probes (`wrt.plan.cached_probe`) of the whole session: they time this machine,
    not what a test checks, so every plan of the tests that use `share_probes` measures each probe once."""
    return suite_folder(tmp_path_factory, "probes")


def share_probes(store: Path, probes: Path) -> None:
    """Let `store` keep its plans' probes in the session's folder (tests/test_plan.py tests the probes)."""
    store.mkdir(parents=True, exist_ok=True)
    if not (store / "probes").exists():
        (store / "probes").symlink_to(probes, target_is_directory=True)


ENTRY_POINTS = {"wrt-run": "wrt.cli:run_main", "wrt-analyze": "wrt.analysis.cli:main"}  # pyproject's scripts


def run_tool(command: list[str], cwd: Path, env: dict | None = None, timeout: int = 300
             ) -> subprocess.CompletedProcess:
    """Run `command` (`<venv>/bin/wrt-run …` or `wrt-analyze …`) in `cwd` with `env` added, as a user would, and
    return its exit status and output. It runs in this process through the script's entry point, which saves
    the 3–5 s that a new process spends importing torch and Hydra, unless it needs a process of its own (then
    with `timeout`): a sweep that a named launcher runs (`hydra/launcher=…` without `dry_run=true`: its jobs
    report from other processes), or an environment that sets PYTHONPATH (a user's modules). Tests of
    signals, concurrency and the installed scripts themselves start processes directly."""
    tool = Path(command[0]).name
    env = env or {}
    launched = any(arg.startswith("hydra/launcher=") for arg in command) and "dry_run=true" not in command
    if tool not in ENTRY_POINTS or "PYTHONPATH" in env or launched:
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                              env={**os.environ, **env})
    module, function = ENTRY_POINTS[tool].split(":")
    entry = getattr(importlib.import_module(module), function)
    saved = os.getcwd(), dict(os.environ), sys.argv, torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    status: int | str | None = 0
    try:
        os.chdir(cwd)
        os.environ.update(env)
        sys.argv = list(command)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                entry()
            except SystemExit as e:
                status = e.code
    finally:
        os.chdir(saved[0])
        os.environ.clear()
        os.environ.update(saved[1])
        sys.argv = saved[2]
        torch.set_num_threads(saved[3])
    if isinstance(status, str):  # sys.exit("message"): Python prints it and exits 1
        err.write(status + "\n")
    code = 1 if isinstance(status, str) else status or 0
    return subprocess.CompletedProcess(command, code, out.getvalue(), err.getvalue())


@pytest.fixture
def wrt_run(tmp_path, suite_probes):
    """Run `wrt-run` (`run_tool`) with results and store inside tmp_path (the store's probes: the session's)."""
    share_probes(tmp_path / "store", suite_probes)

    def _run(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
        flags = [o for o in overrides if o.startswith("-")]
        args = [WRT_RUN, *flags, f"results_dir={tmp_path}/results", f"store_dir={tmp_path}/store",
                "progress=false", *(o for o in overrides if not o.startswith("-"))]
        return run_tool(args, tmp_path, env)
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


@pytest.fixture(scope="module")
def narrow_subset(fmnist):
    """900 Fashion-MNIST training images (the attacker's third: 300) and 300 test images."""
    return fmnist.subset(900, 300, seed=1)


@pytest.fixture(scope="module")
def narrow_victim(narrow_subset):
    """A narrow SmallCNN (~65 % test accuracy) trained on `narrow_subset`'s 600 defender images: the
    victim of the model-modification attack tests."""
    from wrt.models import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(mean=narrow_subset.mean, std=narrow_subset.std, width=8, hidden=32)
    trainer = Trainer(batch_size=64, progress=False, seed=0, channels_last=False,
                      optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True))
    trainer.fit(model, *narrow_subset.defender(), epochs=4, scale_epochs=False)
    return model.eval()


# The smallest whole run (seconds): budget=smoke on 600 training and 200 test images, for tests of what a run
# does (files, reuse, errors, sweeps, launchers), not of what it learns.
TINY = ("budget=smoke", "budget.max_train=600", "budget.max_test=200")

# A small budget at which watermarks embed and attacks can remove them (tests/test_removal.py and the
# end-to-end wrt-run test): budget=smoke with a source model of 4 epochs (about 76 % test accuracy),
# three embedding epochs and attacks at the paper's epochs (on the attacker's 1,000 images).
REMOVAL_BUDGET = ["budget=smoke", "budget.source_trainer.epochs=4", "budget.trainer.embed_max_epochs=3",
                  "budget.trainer.epoch_scale=1.0"]


@pytest.fixture(scope="session")
def removal_store(tmp_path_factory):
    """One store for every run at REMOVAL_BUDGET: the source model and each marked model train once, also
    across pytest-xdist's workers (their common temporary folder; the store's file locks make a worker wait
    for a model another one is training)."""
    return suite_folder(tmp_path_factory, "removal_store")
