"""Ctrl-C during `wrt-run` (#25 finding 6): one line, exit status 130, the checkpoint kept, for a
single run and for a joblib sweep, whose workers get the signal too (the terminal sends it to the
whole process group)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import WRT_RUN

# a source training long enough to be interrupted once its first epoch's checkpoint is written
LONG = ["budget=smoke", "budget.max_train=1000", "budget.source_trainer.epochs=500", "scheme=none",
        "attack=none", "progress=false"]


def default_sigint() -> None:
    """Ctrl-C's default action in the child: a process that starts with SIGINT ignored (as pytest-xdist's
    workers do, and their children inherit) gets no KeyboardInterrupt from Python, as in a shell's
    background job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_once_checkpointed(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, list]:
    store = tmp_path / "store"
    proc = subprocess.Popen([WRT_RUN, *args, f"results_dir={tmp_path}/results", f"store_dir={store}", *LONG],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 240
    while not list(store.glob("source/*.ckpt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if proc.poll() is None and not list(store.glob("source/*.ckpt")):  # no checkpoint in time
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: every process of the group
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the interrupt did not end it: leave no training behind
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), list(store.glob("source/*.ckpt"))


@pytest.mark.parametrize("sweep", [[], ["-m", "hydra/launcher=local", "seed=0,1"]], ids=["run", "joblib_sweep"])
def test_ctrl_c_is_one_line_exit_130_and_keeps_the_checkpoint(tmp_path, sweep):
    proc, checkpoints = interrupt_once_checkpointed(tmp_path, *sweep)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 130, proc.stderr
    assert [line for line in lines if "interrupt" in line.lower()] == ["wrt-run: interrupted; rerun to resume"]
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    assert checkpoints, "the source training's checkpoint was removed"
