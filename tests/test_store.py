"""The artifact store: round trip, cache hits, atomicity, safe loading, links, foreign files and
leftovers of killed writes."""

from __future__ import annotations

import pytest
import torch

from wrt.models import LeNet, SmallCNN
from wrt.store import CorruptArtifact, LinkedEntry, Store, load_state, load_tensors, save_tensors


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


def make(value: float):
    return lambda: ({"w": torch.full((3,), value)}, {})


@pytest.mark.parametrize("entry", ["lock", "artifact", "checkpoint"])
def test_a_planted_link_is_refused_and_its_target_untouched(tmp_path, entry):
    store, spec = Store(tmp_path / "store"), {"a": 1}
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file")
    path = {"lock": store.path("source", spec).with_suffix(".lock"), "artifact": store.path("source", spec),
            "checkpoint": store.checkpoint_path("source", spec)}[entry]
    path.parent.mkdir(parents=True)
    path.symlink_to(victim)
    with pytest.raises(LinkedEntry) as err:
        store.get_or_create("source", spec, make(1.0))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(LinkedEntry):  # force recomputes files, but never writes through a link
        Store(tmp_path / "store", force=True).get_or_create("source", spec, make(1.0))
    assert victim.read_text() == "someone else's file" and path.is_symlink()


def test_an_artifact_of_another_spec_is_refused(tmp_path):
    store = Store(tmp_path)
    mine, other = {"model": "lenet", "seed": 0}, {"model": "lenet", "seed": 1}
    store.get_or_create("source", mine, make(0.0))
    store.get_or_create("source", other, make(1.0))
    path = store.path("source", mine)
    path.write_bytes(store.path("source", other).read_bytes())  # a well-formed file of another config
    with pytest.raises(CorruptArtifact) as err:
        store.get_or_create("source", mine, make(0.0))
    message = str(err.value)
    assert str(path) in message and "another config" in message and "force=true" in message
    assert "\n" not in message
    tensors, meta, cached = Store(tmp_path, force=True).get_or_create("source", mine, make(0.0))
    assert not cached and tensors["w"].tolist() == [0.0] * 3 and meta["spec"] == mine
    assert store.get_or_create("source", mine, make(0.0))[2], "the recomputed file is trusted again"


def test_an_artifact_without_a_spec_is_refused(tmp_path):
    store, spec = Store(tmp_path), {"a": 1}
    save_tensors(store.path("source", spec), {"w": torch.ones(3)}, {"train_time_s": 1.0})
    with pytest.raises(CorruptArtifact, match="records no spec.*force=true"):
        store.get_or_create("source", spec, make(1.0))


def test_checkpoint_is_deleted_only_after_the_artifact_is_saved(tmp_path, monkeypatch):
    store, spec = Store(tmp_path), {"a": 1}
    checkpoint = store.checkpoint_path("source", spec)

    def train():
        checkpoint.write_bytes(b"training progress")
        return {"w": torch.ones(3)}, {}

    def killed_while_saving(path, tensors, meta):
        raise KeyboardInterrupt

    monkeypatch.setattr("wrt.store.save_tensors", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        store.get_or_create("source", spec, train)
    assert checkpoint.read_bytes() == b"training progress", "a kill while saving keeps the checkpoint"
    monkeypatch.undo()
    store.get_or_create("source", spec, train)
    assert store.path("source", spec).exists() and not checkpoint.exists()


def test_temporaries_of_killed_writes_are_removed(tmp_path):
    store, spec = Store(tmp_path), {"a": 1}
    path = store.path("source", spec)
    path.parent.mkdir(parents=True)
    leftovers = [path.parent / f".{path.name}.k1ll3d.tmp", path.parent / f".{path.stem}.ckpt.x9.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"")
    unrelated = path.parent / ".0123456789abcdef0123.pt.busy.tmp"  # another artifact's write in flight
    unrelated.write_bytes(b"")
    store.get_or_create("source", spec, make(1.0))
    assert not any(leftover.exists() for leftover in leftovers) and unrelated.exists()
    leftovers[0].write_bytes(b"")
    assert store.get_or_create("source", spec, make(1.0))[2] and not leftovers[0].exists()
