"""Fuzzing the analyzer's input: every field of a valid run JSON is mutated (types, ranges, sizes, nesting).
Each bad file is skipped with one warning naming it; the analysis then ends with exit 0, or with exit 2 and
one line — never a traceback (issue #19, item 9)."""

import contextlib
import copy
import io
import json
import random
from pathlib import Path

import pandas as pd
import pytest
from conftest import WRT_ANALYZE, run_tool
from fixtures.analysis_runs import FORGING, run_record, write_sweep

from wrt.analysis.load import load_runs
from wrt.analysis.report import Options, main_with
from wrt.analysis.tables import INCOMPLETE, MARKED_ROW

REPO = Path(__file__).resolve().parents[1]
MISSING = object()
DEEP = "[" * 200_000 + "]" * 200_000      # 200,000 levels of nesting
BIG_INT = "9" * 5_000                     # beyond Python's 4,300-digit limit for int()
RAW = {"@deep@": DEEP, "@bigint@": BIG_INT}
MUTANTS = [None, True, -1, 2, 1e300, "", "x" * 20_000, [], [1, [2]], {"a": {"b": 1}}, MISSING]
RAW_FIELDS = ["seed", "scheme.params", "attack.data.domain", "marked.embed_time_s", "surrogate.wm_acc"]


def base_records() -> list[dict]:
    removal = run_record(run_name="base", scheme="adi", scheme_params={"size": 50}, attack="weight_pruning",
                         attack_params={"rate": 0.5}, seed=0,
                         data={"fraction": 1.0, "count": None, "labels": "protocol", "domain": "in", "images": 10})
    removal["scheme"]["ablated"] = ["size"]
    removal["marked"]["embed_time_s"] = 10.0
    forging = run_record(run_name="base_forging", scheme="adi", scheme_params={"size": 50}, attack="forging",
                         attack_params={"attempts": 200}, seed=0, result=FORGING["adi"][1][0])
    return [removal, forging]


def fields(record: dict, prefix: str = "") -> list[str]:
    """Every dotted field of the record, objects too (`config` only down to the budget's sizes)."""
    out = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        out.append(name)
        if isinstance(value, dict) and (name != "config"):
            out += fields(value, f"{name}.")
    return out + (["config.budget.max_train"] if not prefix else [])


def mutate(record: dict, field: str, value) -> dict:
    record = copy.deepcopy(record)
    *parents, last = field.split(".")
    node = record
    for key in parents:
        node = node[key]
    if value is MISSING:
        node.pop(last, None)
    else:
        node[last] = value
    return record


def mutants() -> list[tuple[str, dict]]:
    """(description, record) for every field × mutant; raw placeholders become deep nesting or huge integers."""
    out = []
    for b, base in enumerate(base_records()):
        for field in fields(base):
            values = MUTANTS + (list(RAW) if field in RAW_FIELDS and b == 0 else [])
            for value in values:
                shown = "missing" if value is MISSING else repr(value)[:20]
                out.append((f"{base['run_name']}: {field} = {shown}", mutate(base, field, value)))
    return out


def write_mutants(folder: Path) -> dict[Path, str]:
    """One file per mutant, with its own run_name (unless the run_name is what was mutated)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, (description, record) in enumerate(mutants()):
        if record.get("run_name") in ("base", "base_forging"):
            record["run_name"] = f"{record['run_name']}_{i}"
        text = json.dumps(record)
        for placeholder, raw in RAW.items():
            text = text.replace(json.dumps(placeholder), raw)
        path = folder / f"mutant_{i}.json"
        path.write_text(text, encoding="utf-8")
        written[path] = description
    return written


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """The mutants, loaded once: which were skipped (with their warnings) and which were accepted."""
    results = tmp_path_factory.mktemp("fuzz")
    written = write_mutants(results / "runs")
    warnings = []
    loaded = load_runs(results, warn=warnings.append)
    skipped = {Path(p) for p, _ in loaded.skipped}
    return written, warnings, loaded, skipped


def test_every_mutant_is_loaded_or_skipped_with_one_warning(fuzzed):
    written, warnings, loaded, skipped = fuzzed
    accepted = set(map(Path, loaded.runs["path"]))
    assert accepted | skipped == set(written) and not accepted & skipped
    for path in skipped:
        naming = [w for w in warnings if f"{path}:" in w or f"{path}," in w or w.endswith(str(path))]
        assert len(naming) == 1, (written[path], naming)
    assert len(skipped) > len(written) // 2
    # the bad values of issue #19 are among the skipped ones
    by_description = {d: p for p, d in written.items()}
    for description in ["base: seed = '@bigint@'", "base: scheme.params = '@deep@'", "base: attack.category = ''",
                        "base: attack.data.domain = []", "base: attack.data.labels = -1",
                        "base: marked.embed_time_s = []", "base: source.train_time_s = ''",
                        "base: embedding_loss = 1e+300", "base: scheme.key_size = -1",
                        "base: stealing_loss = 2", "base: timing_s.attack = -1"]:
        assert by_description[description] in skipped, description


def _analyze(results: Path) -> tuple[int, list[str]]:
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        status = main_with(Options(results_dir=str(results)))
    return status, stderr.getvalue().splitlines()


def _copy(files, folder: Path) -> None:
    for path in files:
        (folder / path.name).write_bytes(path.read_bytes())


def test_bad_files_beside_a_sweep_give_exit_0_and_one_warning_each(fuzzed, tmp_path):
    written, _, _, skipped = fuzzed
    write_sweep(tmp_path, seeds=(0,))
    _copy(skipped, tmp_path / "runs")
    status, lines = _analyze(tmp_path)
    assert status == 0, lines[-3:]
    assert sorted(line.removeprefix("warning: skipped ").split(": ")[0] for line in lines
                  if line.startswith("warning: skipped /")) == sorted(str(tmp_path / "runs" / p.name) for p in skipped)
    assert lines[-1] == f"warning: skipped {len(skipped)} of {len(skipped) + 27} JSON files under {tmp_path}"


def test_accepted_mutants_beside_a_sweep_give_exit_0_or_one_line(fuzzed, tmp_path):
    written, _, loaded, skipped = fuzzed
    write_sweep(tmp_path, seeds=(0,))
    _copy(set(written) - skipped, tmp_path / "runs")
    status, lines = _analyze(tmp_path)
    errors = [line for line in lines if not line.startswith("warning: ")]
    assert (status, errors) == (0, []) or (status == 2 and len(errors) == 1 and errors[0].startswith(
        "wrt-analyze: error: ")), lines
    assert status == 0  # these mutants change values the schema allows: the analysis completes
    assert (tmp_path / "analysis" / "report.html").is_file()


def test_cli_on_the_issue_files_bad_folders_and_only_failed_runs(tmp_path):
    """The command line, end to end: bad single files are warnings; a file as results_dir, a folder without
    runs and a folder of failed runs are one line and exit 2."""
    write_sweep(tmp_path / "r", seeds=(0,))
    base = base_records()[0]
    bad = {"category": mutate(base, "attack.category", "bogus"), "domain": mutate(base, "attack.data.domain", ["in"]),
           "labels": mutate(base, "attack.data.labels", 3), "embed": mutate(base, "marked.embed_time_s", [1]),
           "train": mutate(base, "source.train_time_s", "10"), "key": mutate(base, "scheme.key_size", -100)}
    for name, record in bad.items():
        (tmp_path / "r" / "runs" / f"{name}.json").write_text(json.dumps({**record, "run_name": name}))
    (tmp_path / "r" / "runs" / "bigint.json").write_text(json.dumps(base).replace('"seed": 0', f'"seed": {BIG_INT}'))
    (tmp_path / "r" / "runs" / "deep.json").write_text(json.dumps(base)[:-1] + f', "x": {DEEP}}}')
    failed = {**base, "status": "failed", "error": "RuntimeError: boom", "failed_stage": "attack"}
    (tmp_path / "failed" / "runs").mkdir(parents=True)
    (tmp_path / "failed" / "runs" / "f.json").write_text(json.dumps(failed))

    def cli(results_dir):
        return run_tool([WRT_ANALYZE, f"results_dir={results_dir}"], REPO)

    done = cli(tmp_path / "r")
    assert done.returncode == 0, done.stderr
    assert len(done.stderr.splitlines()) == len(bad) + 3 and "Traceback" not in done.stderr
    assert done.stdout.splitlines()[-1] == str(tmp_path / "r" / "analysis" / "report.html")
    for results_dir, message in [(tmp_path / "r" / "runs" / "deep.json", "does not exist or is not a directory"),
                                 (tmp_path / "failed", "all 1 run(s) failed")]:
        done = cli(results_dir)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith("wrt-analyze: error: ") and message in done.stderr


def _cell_of(path: Path) -> tuple[str, str]:
    """(scheme, attack) of a write_sweep file, `uchida1_weight_pruning0.9_s0` → (uchida, weight_pruning)."""
    scheme = "adi" if path.stem.startswith("adi") else "uchida"
    return scheme, path.stem[len(scheme) + 2:].rsplit("_s", 1)[0].rstrip("0123456789.")


def test_duplicates_mixed_numerics_and_incomplete_grids(tmp_path):
    """Random sweeps with renamed copies (same or other numbers, or other numerics), deleted runs and a corrupt
    manifest: each copy is counted once with one warning naming it (a copy with other numerics is another
    setting, analysed on its own or, without θ, skipped with one line), a cell that lost a run is `inc`, every other cell keeps its mark, and
    the analysis ends with exit 0."""
    baseline = tmp_path / "baseline"
    write_sweep(baseline)
    assert _analyze(baseline)[0] == 0
    marks = pd.read_csv(baseline / "analysis" / "robustness.csv").set_index("attack")
    rng = random.Random(25)
    for case in range(3):
        results = tmp_path / f"case{case}"
        write_sweep(results)
        files = sorted(p for p in (results / "runs").glob("*.json")
                       if p.stem.startswith(("adi", "uchida")) and "_none" not in p.stem and "failed" not in p.stem)
        cells = {}  # (scheme, attack) -> its files; one deletion per cell, so its configs still appear
        for path in files:
            cells.setdefault(_cell_of(path), []).append(path)
        deleted = [rng.choice(cell) for cell in rng.sample(sorted(cells.values()), 2)]
        copies = rng.sample([p for p in files if p not in deleted], 3)
        kinds = {}
        for i, path in enumerate(copies):
            record = json.loads(path.read_text())
            record["run_name"] = f"zz_copy{i}"  # sorts after the original: the original is kept
            kinds[f"zz_copy{i}"] = kind = rng.choice(["same", "other numbers", "other numerics"])
            if kind == "other numbers":
                record["surrogate"]["wm_acc"] = round(rng.random(), 3)
            elif kind == "other numerics":
                record.update(precision="bf16", cpu_threads=1)
            (results / "runs" / f"zz_copy{i}.json").write_text(json.dumps(record))
        for path in deleted:
            path.unlink()
        (results / "manifests").mkdir()
        (results / "manifests" / "broken.json").write_text('{"runs": [{"run_name": 3}]}')
        status, lines = _analyze(results)
        assert status == 0, lines[-3:]
        for name, kind in kinds.items():
            naming = [line for line in lines if f"{name}.json" in line]
            assert len(naming) == (kind != "other numerics"), (kind, naming)
        assert len([line for line in lines if "no θ" in line]) <= 1
        assert len([line for line in lines if "broken.json" in line]) == 1
        table = pd.read_csv(results / "analysis" / "robustness.csv")
        main = "fashion_mnist@cpu-unknown" if "other numerics" in kinds.values() else "fashion_mnist"
        assert set(table["setting"]) - {main} <= {"fashion_mnist@cpu-bf16-1t"}  # the copies of other numerics
        table = table[table["setting"] == main].set_index("attack")
        lost = {_cell_of(p) for p in deleted}
        for attack in marks.index.drop(MARKED_ROW):
            for scheme in ("adi", "uchida"):
                expected = INCOMPLETE if (scheme, attack) in lost else marks.loc[attack, scheme]
                assert table.loc[attack, scheme] == expected, (case, attack, scheme, deleted, kinds)
