"""The run record (wrt/record.py): its documentation, its JSON and the analyzer's schema derived from it."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from wrt.analysis.load import SCHEMA, validate
from wrt.record import (AttackRecord, AttackUsage, Embedding, Evaluation, MarkedEvaluation, RunRecord, SchemeRecord,
                        SourceRecord, to_json)

DOC = Path(__file__).resolve().parents[1] / "docs" / "run_json.md"


def record_fields(cls=RunRecord, prefix: str = "") -> set[str]:
    """Every field of the record, nested records' fields with dots (`attack.data.images`)."""
    names = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        names.add(f"{prefix}{f.name}")
        for kind in (hints[f.name], *typing.get_args(hints[f.name])):
            if dataclasses.is_dataclass(kind):
                names |= record_fields(kind, f"{prefix}{f.name}.")
    return names


def documented_fields() -> set[str]:
    """The fields of the table in docs/run_json.md: each row's `names` and the {a, b?} of its type column."""
    names = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        rows = [name.rstrip("?") for name in re.findall(r"`([^`]+)`", cells[0])]
        parts = re.fullmatch(r"\{(.*)\}", cells[1])
        for row in rows:
            names.add(row)
            if parts:
                names |= {f"{row}.{part.strip().rstrip('?')}" for part in parts.group(1).split(",")}
    return names


def test_the_doc_lists_exactly_the_record_fields():
    documented, declared = documented_fields(), record_fields()
    assert documented - declared == set(), "documented but not in wrt/record.py"
    assert declared - documented == set(), "in wrt/record.py but not documented in docs/run_json.md"


def test_the_analyzer_checks_every_record_field():
    assert record_fields() <= set(SCHEMA)


def ok_record() -> RunRecord:
    return RunRecord(
        status="ok", run_name="r", dataset="fashion_mnist", model="small_cnn", budget="smoke", seed=0, role="marked",
        num_classes=10, scheme=SchemeRecord("adi", {}, [], False, 100, {}),
        attack=AttackRecord("ftal", "model_modification", {"epochs": 5}, ["lr"]),
        source=SourceRecord(0.9, False, 12.0), marked=MarkedEvaluation(0.89, 1.0, cached=False, embed_time_s=3.0,
                                                                    embedding=Embedding("early_stopping", 2.5, 260, 5)),
        surrogate=Evaluation(0.88, 0.5), embedding_loss=0.01, stealing_loss=0.01,
        attack_usage=AttackUsage(0, 100, 0), attack_time_ratio=0.1)


def test_the_json_leaves_out_absent_optional_fields_and_passes_the_schema():
    record = ok_record()
    json = to_json(record)
    assert list(json)[:6] == ["schema_version", "status", "error", "failed_stage", "run_name", "dataset"]
    assert "wm_error" not in json["surrogate"] and "transfer_samples" not in json["attack_usage"]
    assert "traceback" not in json and list(json["marked"]) == ["test_acc", "wm_acc", "cached", "embed_time_s", "embedding"]
    assert validate(json) is None
    record.marked.embedding.stopped = "budget"
    assert "marked.embedding.stopped" in validate(to_json(record))
    record.marked.embedding.stopped = "cap"
    record.surrogate.wm_acc = 1.5
    assert validate(to_json(record)) == "wrong type: surrogate.wm_acc is 1.5, expected a fraction in [0, 1]"
    record.surrogate.wm_acc = 1 + 2**-23  # a float32 cosine of a vector with itself: rounding, not a wrong value
    assert validate(to_json(record)) is None
    record.surrogate.wm_acc = -1e-3
    assert "surrogate.wm_acc is -0.001" in validate(to_json(record))
