"""The artifact store: round trip, cache hits, atomicity and safe loading."""

from __future__ import annotations

import pytest
import torch

from wrt.models import LeNet, SmallCNN
from wrt.store import CorruptArtifact, Store, load_state, load_tensors, save_tensors


def test_round_trip_and_cache_hit(tmp_path):
    store = Store(tmp_path)
    calls = []

    def create():
        calls.append(1)
        return {"w": torch.arange(6.0).view(2, 3)}, {"train_time_s": 1.5}

    spec = {"model": "lenet", "seed": 0}
    first, meta, cached = store.get_or_create("source", spec, create)
    second, meta2, cached2 = store.get_or_create("source", spec, create)
    assert (cached, cached2) == (False, True) and len(calls) == 1
    assert torch.equal(first["w"], second["w"]) and meta2["train_time_s"] == 1.5
    _, _, cached3 = store.get_or_create("source", {**spec, "seed": 1}, create)
    assert not cached3 and len(calls) == 2
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files are left behind"


def test_corrupt_artifact_names_file_and_fix(tmp_path):
    store = Store(tmp_path)
    spec = {"a": 1}
    store.get_or_create("source", spec, lambda: ({"w": torch.ones(100)}, {}))
    path = store.path("source", spec)
    path.write_bytes(path.read_bytes()[:50])  # truncated
    with pytest.raises(CorruptArtifact) as err:
        store.get_or_create("source", spec, lambda: ({"w": torch.ones(100)}, {}))
    message = str(err.value)
    assert str(path) in message and "force=true" in message and "\n" not in message
    tensors, _, cached = Store(tmp_path, force=True).get_or_create("source", spec, lambda: ({"w": torch.ones(3)}, {}))
    assert not cached and len(tensors["w"]) == 3


def test_loading_never_runs_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"tensors": {}, "meta": "{}", "x": Evil()}, path)
    with pytest.raises(CorruptArtifact, match="cannot read"):
        load_tensors(path)


def test_wrong_architecture_is_a_one_line_error(tmp_path):
    path = tmp_path / "m.pt"
    save_tensors(path, LeNet().state_dict(), {})
    state, _ = load_tensors(path)
    with pytest.raises(CorruptArtifact, match="does not fit SmallCNN"):
        load_state(SmallCNN(), state, path)
