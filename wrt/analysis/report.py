"""Run the whole analysis: load runs, thresholds, outcomes, Nash equilibria, tables, plots, report.html.

The report is a list of sections; each comes from one function of `SECTIONS` that takes the `Analysis` (runs,
thresholds, outcomes, equilibria) and returns its sections, writing its tables and plots on the way. A new
table is one new function in that list.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

import wrt
from wrt.analysis import best_response, budget, forgery, grid, plots, reference, roc, tables
from wrt.analysis.load import ANALYSIS_DIRNAME, VERSIONS_DIRNAME, LoadedRuns, ResultsDirError, load_runs
from wrt.analysis.thresholds import METHODS, ThresholdError, decision_thresholds


@dataclass
class Options:
    results_dir: str | list[str] = "results"  # a folder, or several analysed as one (`load_runs`)
    p: float = 0.05
    theta_prime: float = 0.5
    max_stealing_loss: float = 0.05
    max_embedding_loss: float = 0.05  # a marked model that lost more is no defender strategy (n/e)
    threshold_method: str = "sok"
    min_null_runs: int = 5
    thresholds_from: str | None = None  # a setting whose θ the settings without enough null runs take
    reference: str | None = None  # sok_cifar10 | sok_imagenet | none: the SoK's Table V to compare with
    merge_numerics: bool = False  # average runs of different numerics (precision, threads) into one setting
    out_dir: str | None = None  # the folder that gets analysis/; None: the first results folder
    figures: bool = True  # false: tables, nash.json and the report without the figures (seconds faster)
    seeds: list[int] | None = None  # the game of these seeds only (role=marked runs); θ still uses every null run

    @property
    def folder_names(self) -> list:
        """`results_dir` as a list of folders, as given."""
        return [self.results_dir] if isinstance(self.results_dir, str) else self.results_dir

    @property
    def folders(self) -> list[Path]:
        return [Path(d) for d in self.folder_names]


def check_options(options: Options) -> None:
    """Raise ResultsDirError naming the first option outside what it allows."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    checks = [("p", number(options.p) and 0 < options.p < 1, "a number in (0, 1)"),
              ("theta_prime", number(options.theta_prime) and 0 < options.theta_prime < 1, "a number in (0, 1)"),
              ("max_stealing_loss", number(options.max_stealing_loss) and 0 <= options.max_stealing_loss <= 1,
               "a number in [0, 1]"),
              ("max_embedding_loss", number(options.max_embedding_loss) and 0 <= options.max_embedding_loss <= 1,
               "a number in [0, 1]"),
              ("threshold_method", options.threshold_method in METHODS, f"one of {', '.join(METHODS)}"),
              ("min_null_runs", isinstance(options.min_null_runs, int) and not isinstance(options.min_null_runs, bool)
               and options.min_null_runs >= 1, "an integer ≥ 1"),
              ("thresholds_from", options.thresholds_from is None or isinstance(options.thresholds_from, str),
               "a setting name"),
              ("reference", options.reference in (None, "none", *reference.REFERENCES),
               f"none or one of {', '.join(reference.REFERENCES)}"),
              ("results_dir", isinstance(options.results_dir, (str, list)) and len(options.results_dir) > 0
               and all(isinstance(d, str) and d for d in options.folder_names),
               "a folder or a list of folders ([mine,docs/results/table5_demo])"),
              ("out_dir", options.out_dir is None or (isinstance(options.out_dir, str) and options.out_dir != ""),
               "a folder or null"),
              ("merge_numerics", isinstance(options.merge_numerics, bool), "true or false"),
              ("figures", isinstance(options.figures, bool), "true or false"),
              ("seeds", options.seeds is None or (isinstance(options.seeds, list) and len(options.seeds) > 0 and all(
                  isinstance(x, int) and not isinstance(x, bool) for x in options.seeds)),
               "null or a non-empty list of integers ([0] or [0,1])")]
    for name, ok, allowed in checks:
        if not ok:
            raise ResultsDirError(f"{name}={getattr(options, name)!r} is not allowed: must be {allowed}")


@dataclass
class Section:
    title: str
    text: str
    table: pd.DataFrame | None = None
    files: list[Path] | None = None
    images: list[Path] | None = None
    marks: bool = False  # the table holds Table V marks: colour its cells and show their legend


def _slug(setting: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", setting)


@dataclass
class Analysis:
    """Everything the sections read; tables and figures are written to `out_dir`."""
    options: Options
    loaded: LoadedRuns
    runs: pd.DataFrame
    out_dir: Path
    thresholds: pd.DataFrame | None = None
    scored: pd.DataFrame | None = None
    cells: pd.DataFrame | None = None
    nash: dict = field(default_factory=dict)
    slots: pd.DataFrame | None = None  # the expected runs (wrt.analysis.grid.expected_slots)
    notes: list[str] = field(default_factory=list)  # the warnings about what was counted, for the report

    @property
    def game(self) -> bool:
        return self.cells is not None

    @property
    def thresholds_only(self) -> bool:
        """Null runs and no marked run yet (a campaign's first stage): θ, but no game."""
        return self.thresholds is not None and not self.game

    def relative_paths(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with its `path` column relative to the results folder, so that a written table does not
        depend on where the folder lies; with several folders, each path after the folder it is in, as given."""
        folders = self.options.folders
        return frame.assign(path=[_relative(p, folders) for p in frame["path"]])

    @cached_property
    def removal(self) -> pd.DataFrame:
        return tables.removal_runs(self.runs)

    @cached_property
    def failed(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "failed"]

    @cached_property
    def forged(self) -> pd.DataFrame:
        return forgery.forgery_table(self.runs)

    @cached_property
    def dominant(self) -> pd.DataFrame:
        return tables.dominant_attacks_table(self.cells, self.options.max_stealing_loss)

    @cached_property
    def per_category(self) -> pd.DataFrame:
        return tables.nash_per_category_table(self.cells, self.nash)

    @cached_property
    def robustness(self) -> pd.DataFrame:
        return tables.robustness_table(self.cells, self.scored, self.failed, self.options.max_stealing_loss,
                                       self.slots)

    @cached_property
    def reference_cells(self) -> pd.DataFrame | None:
        """The robustness table's cells beside the chosen reference's marks, per setting (None: no reference)."""
        name = self.options.reference
        if name in (None, "none") or not self.game:
            return None
        return pd.concat([reference.compare(rows, name).assign(setting=setting)
                          for setting, rows in self.robustness.groupby("setting", sort=True)], ignore_index=True)

    def agreement_lines(self) -> list[str]:
        """`agreement <k>/<n> cells (<setting> vs <reference>)`, one per setting that has a comparable cell."""
        if self.reference_cells is None:
            return []
        return [f"{reference.agreement_line(cells)} ({setting} vs {self.options.reference})"
                for setting, cells in self.reference_cells.groupby("setting", sort=True)]

    def no_reference_lines(self) -> list[str]:
        """One line per setting that has no cell to compare with the reference, with the reason."""
        if self.reference_cells is None:
            return []
        compared = set(self.reference_cells["setting"])
        return [reference.no_comparable_cell(rows, self.options.reference, setting,
                                             _values(self.runs.loc[self.runs["setting"] == setting, "dataset"]))
                for setting, rows in self.robustness.groupby("setting", sort=True) if setting not in compared]

    @property
    def settings(self) -> list[str]:
        return sorted(self.cells["setting"].unique()) if self.game else []

    @property
    def crit(self) -> str:
        o = self.options
        return (f"success: surrogate wm acc < θ and stealing loss ≤ {o.max_stealing_loss:g}; "
                f"rescaled with θ' = {o.theta_prime:g} (Eq. 5)")

    def table(self, name: str, frame: pd.DataFrame, caption: str, legend: str = "") -> list[Path]:
        return tables.write_table(frame, self.out_dir, name, caption, legend)

    def figure(self, name: str, draw: Callable[[], Any]) -> list[Path]:
        """The files (PNG and PDF) of the figure that `draw()` builds; with `figures=false` none, and the
        figure is not built."""
        return plots.save(draw(), self.out_dir, name) if self.options.figures else []


def describe_nash(nash: dict) -> list[str]:
    """Human-readable lines for stdout."""
    lines = []
    for setting, entry in nash.items():
        lines.append(f"Nash equilibrium on {setting}")
        for name, e in [("all schemes", entry["all"]), *entry["per_scheme"].items()]:
            pure, mixed, missing = e["pure"], e["mixed"], e.get("missing_pairs", [])
            if pure is None:
                lines.append(f"  {name}: no equilibrium: no sub-game without an unrun pair ({len(missing)} unrun)")
                continue
            left_out = f"; {len(missing)} unrun pair(s) left out (nash.json)" if missing else ""
            lines.append(f"  {name}: pure (Eq. 6) defender {pure['scheme']} vs attacker {pure['attack']}, "
                         f"payoff {pure['payoff']:.4f} ({'robust' if pure['payoff'] == 0 else 'removed'}); "
                         f"mixed value {mixed['value']:.4f}, defender {tables.support(mixed['defender'])}; "
                         f"attacker {tables.support(mixed['attacker'])}{left_out}")
    return lines


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def only_seeds(runs: pd.DataFrame, seeds: list[int], results_dir: str) -> pd.DataFrame:
    """The runs without the role=marked runs of other seeds (`Options.seeds`): one seed's Table V beside the
    SoK's, say, with θ from every null run. ResultsDirError when no marked run has one of `seeds`."""
    marked = runs["role"] == "marked"
    if not (marked & runs["seed"].isin(seeds)).any():
        present = sorted({int(x) for x in runs.loc[marked, "seed"].dropna()})
        raise ResultsDirError(f"seeds={seeds}: no role=marked run under {results_dir} has one of these seeds; "
                              f"seeds present: {', '.join(map(str, present)) or 'none'}")
    return runs[~marked | runs["seed"].isin(seeds)]


def prepare(options: Options, warn=_stderr) -> Analysis:
    """Load the runs and compute thresholds, outcomes and equilibria; raise ResultsDirError or ThresholdError
    (one line each) when there is nothing to analyze. Every ok run counts once (`grid.one_run_each`); a
    setting whose θ cannot be determined is skipped with one warning line and the others are analysed."""
    folders = options.folders
    results_dir = ", ".join(map(str, folders))  # in messages
    loaded = load_runs(folders, warn=warn, checks=CHECKS)
    if options.seeds is not None:
        loaded = LoadedRuns(only_seeds(loaded.runs, options.seeds, results_dir), loaded.skipped)
    notes: list[str] = []

    def note(line: str) -> None:
        notes.append(line)
        warn(line)

    runs = grid.one_run_each(tables.add_settings(loaded.runs, options.merge_numerics), note)
    a = Analysis(options, loaded, runs, Path(options.out_dir or folders[0]) / ANALYSIS_DIRNAME, notes=notes)
    if not (runs["status"] == "ok").any():
        raise ResultsDirError(f"no successful run under {results_dir}: all {len(runs)} run(s) failed (see their "
                              f"JSON files' error field)")
    if not a.forged.empty and not _has_removal_runs(a.removal):  # only forging runs: a claim table, no game
        return a
    marked = ((a.removal["status"] == "ok") & (a.removal["role"] == "marked")).any()
    if not marked and not ((a.removal["status"] == "ok") & (a.removal["role"] == "null")).any():
        raise ResultsDirError(f"no successful role=marked or role=null run under {results_dir} (only forging runs "
                              "without a claim); nothing to analyze")
    skipped: dict = {}
    a.thresholds = decision_thresholds(a.removal, options.p, options.threshold_method, options.min_null_runs,
                                       options.thresholds_from, skipped)
    for setting in sorted({setting for setting, _ in skipped}):
        reasons = "; ".join(why for (s, _), why in sorted(skipped.items()) if s == setting)
        note(f"warning: setting {setting} not analysed for {', '.join(sorted(x for s, x in skipped if s == setting))}"
             f" (no θ): {reasons}")
    if skipped:
        a.removal = a.removal[[(s, x) not in skipped for s, x in zip(a.removal["setting"], a.removal["scheme.name"])]]
    if not marked:  # only null runs so far: the thresholds, no game
        return a
    a.scored = tables.score_runs(a.removal, a.thresholds, options.theta_prime, options.max_stealing_loss)
    if a.scored.empty:
        raise ResultsDirError(f"no successful role=marked run under {results_dir}; nothing to analyze")
    ok_names = set(loaded.runs.loc[loaded.runs["status"] == "ok", "run_name"])
    planned = [e for f in folders for e in grid.read_manifests(f, note)
               if options.seeds is None or e["role"] != "marked" or e["seed"] in options.seeds]
    a.slots = grid.expected_slots(a.removal, planned, ok_names)
    cells = grid.add_counts(tables.outcomes(a.scored, a.failed, options.max_stealing_loss,
                                            options.max_embedding_loss), a.slots)
    if tables.game_cells(cells).empty:
        raise ResultsDirError(f"no successful run under {results_dir} has a removal attack (other than none "
                              "and ambiguity); there is no game to analyze")
    a.cells = cells
    a.nash = tables.nash_all(cells, options.max_stealing_loss)
    return a


def _same_files(a: Path, b: Path) -> bool:
    """Whether folders `a` and `b` hold the same files with the same bytes."""
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).is_file() and (b / n).is_file() and (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def publish(link: Path, version: Path) -> None:
    """Point `link` (`results_dir/analysis`) at the complete analysis in `version` by replacing the link
    atomically (a rename), then remove the older versions (a newer one may be an analysis still being
    written). When `version` holds the same bytes as the published analysis, the link stays as it is and
    `version` is removed, so a re-analysis of unchanged runs changes no file (nor a committed link). An
    `analysis/` folder of an earlier wrt is moved into the versions folder first; a link is replaced, never
    followed."""
    current = link.parent / os.readlink(link) if link.is_symlink() else None
    if current is not None and current.is_dir() and _same_files(current, version):
        shutil.rmtree(version)
        keep = current.resolve()
    else:
        tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.path.relpath(version, link.parent), tmp)
        if link.is_dir() and not link.is_symlink():
            os.rename(link, version.parent / f"before-{version.name}")
        os.replace(tmp, link)
        keep = version.resolve()
    for old in version.parent.iterdir():
        if old.resolve() == keep:
            continue
        if old.name.startswith("before-") or old.name < version.name:
            if old.is_symlink() or not old.is_dir():
                old.unlink()
            else:
                shutil.rmtree(old, ignore_errors=True)


def analyze(options: Options, out=print) -> Path:
    """Write every table, plot and report.html to a fresh folder in `<out>/analysis.versions/`, then point
    `<out>/analysis` at it (`publish`; out: `out_dir`, else the first results folder): a killed analysis leaves
    the previous complete one. Return report.html's path under `analysis/`."""
    a = prepare(options)
    link = a.out_dir
    versions = link.parent / VERSIONS_DIRNAME
    versions.mkdir(parents=True, exist_ok=True)
    a.out_dir = Path(tempfile.mkdtemp(prefix=datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%f-"),
                                      dir=versions))
    if a.game:
        (a.out_dir / "nash.json").write_text(json.dumps(a.nash, indent=2, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        runs = a.relative_paths(a.runs)
        runs.drop(columns=[c for c in runs.columns if runs[c].map(lambda v: isinstance(v, list)).any()]) \
            .to_csv(a.out_dir / "runs.csv", index=False)
    kind = SECTIONS if a.game else THRESHOLDS_ONLY_SECTIONS if a.thresholds_only else FORGING_ONLY_SECTIONS
    sections = [s for make in kind for s in make(a)]
    _write_report(sections, a)
    publish(link, a.out_dir)
    report = link / "report.html"
    for line in describe_nash(a.nash):
        out(line)
    if not a.forged.empty:
        out(forgery.summary(a.forged))
    for line in a.agreement_lines() + a.no_reference_lines():
        out(line)
    if a.thresholds_only:
        out(f"thresholds only: {int((a.removal['role'] == 'null').sum())} null run(s) and no role=marked run yet, "
            f"so no game; θ of {len(a.thresholds)} scheme(s) in {link / 'thresholds.md'}")
    out(str(report))
    return report


def _has_removal_runs(removal: pd.DataFrame) -> bool:
    """Whether some ok, role=marked run faced a removal attack (not `none`, not a forging attack)."""
    return bool(((removal["status"] == "ok") & (removal["role"] == "marked")
                 & (removal["attack.name"] != "none")).any())


# ---------------------------------------------------------------- sections, in report order

def _relative(path: str, folders: list[Path]) -> str:
    for folder in folders:
        if Path(path).is_relative_to(folder):
            relative = Path(path).relative_to(folder).as_posix()
            return relative if len(folders) == 1 else f"{folder.as_posix()}/{relative}"
    return str(path)


def _values(series: pd.Series) -> str:
    values = sorted({str(v) for v in series.dropna()})
    return ", ".join(values) if values else "–"


def _dates(series: pd.Series) -> str:
    dates = sorted({str(v)[:10] for v in series.dropna()})
    return "–" if not dates else dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"


def summary_sections(a: Analysis) -> list[Section]:
    """The result first: per setting and scheme the attack categories it survives and the attacks that remove
    it (Table V in words), and the dominant attack of each setting (SoK §VIII-H)."""
    frame = tables.summary_table(a.robustness)
    dominant = []
    for setting, rows in a.dominant.groupby("setting", sort=True):
        names = list(rows.loc[rows["dominant"].astype(bool), "attack"])
        best = rows.sort_values(["removed_by_some_config", "attack"], ascending=[False, True]).iloc[0]
        dominant.append(f"{setting}: " + (", ".join(names) if names else
                                          f"none (most removals: {best['attack']}, {best['removed_by_some_config']} "
                                          f"of {best['scheme_configs']} scheme configs)"))
    text = ("Per setting and scheme (Table V below, in words): survives: the attack categories whose every attack "
            f"leaves the watermark ({tables.ROBUST}); removed_by: the attacks that remove it ({tables.REMOVED}), by "
            "category; not_decided: the other cells by mark (see the legend below). Dominant attack (removes every "
            "scheme config, SoK §VIII-H) per setting: " + "; ".join(dominant) + ".")
    return [Section("Summary", text, frame, a.table("summary", frame, "Summary: which schemes survive which attacks",
                                                      text))]


def measured_sections(a: Analysis) -> list[Section]:
    """What was measured: per setting the dataset, model, budget, data sizes, accuracies, seeds, dates, versions."""
    rows = []
    for setting, g in a.runs.groupby("setting", sort=True, dropna=False):
        ok = g[g["status"] == "ok"]
        marked = ok[ok["role"] == "marked"]
        sources = marked.drop_duplicates("seed")["source.test_acc"].astype(float)
        models = marked.drop_duplicates(["scheme_label", "seed"])
        rows.append({
            "setting": setting, "dataset": _values(g["dataset"]), "model": _values(g["model"]),
            "budget": _values(g["budget"]), "train_images": _values(g["config.budget.max_train"].map(_integer)),
            "test_images": _values(g["config.budget.max_test"].map(_integer)),
            "seeds": marked["seed"].nunique(), "seed_list": _values(marked["seed"].map(_integer)),
            "marked_runs": len(marked),
            "null_runs": int((ok["role"] == "null").sum()), "failed_runs": int((g["status"] == "failed").sum()),
            "source_test_acc": sources.mean() if len(sources) else math.nan,
            "marked_test_acc": models["marked.test_acc"].astype(float).mean() if len(models) else math.nan,
            "marked_wm_acc": models["marked.wm_acc"].astype(float).mean() if len(models) else math.nan,
            "created": _dates(g["created"]), "wrt": _values(g["versions.wrt"]), "torch": _values(g["versions.torch"]),
        })
    frame = pd.DataFrame(rows)
    text = ("One row per setting (a dataset, model and budget; each has its own thresholds, tables and game). "
            "train/test images: the budget's data sizes (empty: the whole dataset); seeds: how many seeds the "
            "marked runs have, seed_list: which; accuracies are means over "
            "the seeds' source models and over the marked models of every scheme config (per scheme config in "
            "\"Marked and attacked models\"); created: when the runs were written.")
    files = a.table("settings", frame, "What was measured, per setting", text)
    # on the page one column per setting, so that the table fits
    shown = pd.DataFrame({"measure": frame.columns[1:],
                          **{row["setting"]: [tables.fmt(v) or "–" for v in row.iloc[1:]]
                             for _, row in frame.iterrows()}})
    return [Section("What was measured", text.replace("One row per", "One column per"), shown, files)]


def _integer(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


GLOSSARY = [
    ("θ (decision threshold)", "The watermark accuracy an unmarked model reaches with probability at most p; "
     "a model whose watermark accuracy is ≥ θ is declared marked (SoK §VII-A)."),
    ("θ′ (theta_prime)", "Where θ lands after rescaling; the report's rescaled values put θ at θ′ for every "
     "scheme, so schemes with different θ compare on one scale."),
    ("rescaled wm acc (Eq. 5)", "S(x) = max(0, (1 − θ′)/(1 − θ)·x + (θ′ − θ)/(1 − θ)): S(θ) = θ′ and S(1) = 1; "
     "below θ′ the watermark is removed."),
    ("wm acc", "Watermark accuracy: the fraction of the key (trigger labels or bits) a model reproduces."),
    ("marked model", "The source model with the watermark embedded; surrogate: the model after the attack."),
    ("embedding loss", "Source minus marked test accuracy: what embedding the watermark costs."),
    ("stealing loss", "Marked minus surrogate test accuracy: what the attack costs; an attack succeeds only when "
     "it is at most max_stealing_loss."),
    ("success / removed", "The surrogate's wm acc is below θ and its stealing loss is within the limit (on the "
     "means over seeds)."),
    ("payoff", "The surrogate's test accuracy when the attack succeeds, else 0 (V[i, j]: scheme config i, "
     "attack config j)."),
    ("Eq. 6 (pure Nash equilibrium)", "The defender picks the scheme config whose best attack pays least: "
     "argminᵢ maxⱼ V[i, j]; the attacker answers with that best attack."),
    ("mixed equilibrium", "The zero-sum game's equilibrium over probability mixtures of configs (linear program)."),
    ("setting", "A dataset, model and budget; thresholds, tables and games are per setting."),
    ("ROC, AUC, TPR@x%FPR", "How well wm acc separates marked (or attacked) from unmarked models at any "
     "threshold: AUC = P[marked scores higher], TPR at a false-positive rate of x %."),
]


def glossary_sections(a: Analysis) -> list[Section]:
    """The SoK's terms and the attack categories that occur."""
    categories = set(a.runs["attack.category"].dropna())
    terms = GLOSSARY + [(f"{tables.CATEGORY_ABBREV[c]} ({c.replace('_', ' ')})", CATEGORY_MEANING[c])
                        for c in tables.CATEGORY_ORDER if c in categories]
    return [Section("Glossary", "The SoK's terms (Lukas et al., S&P 2022) as this report uses them.",
                    pd.DataFrame(terms, columns=["term", "meaning"]))]


CATEGORY_MEANING = {
    "input_preprocessing": "Attack category: transform the inputs before the stolen model sees them.",
    "model_modification": "Attack category: change the stolen model's weights (pruning, fine-tuning, …).",
    "model_extraction": "Attack category: train a new surrogate from the stolen model's labels or weights.",
    "obfuscation": "Attack category: reshape the model (same function) so that a white-box key no longer fits.",
    "combined": "Attack category: several attacks one after another.",
    "ambiguity": "Attack category: forge a counterfeit key (a false ownership claim); removes nothing.",
}


def threshold_sections(a: Analysis) -> list[Section]:
    o = a.options
    text = (f"θ per setting and scheme from role=null runs, p = {o.p:g}, method {o.threshold_method}; all three "
            "estimates shown, `method` says which one is used, `threshold_from` the setting whose null runs gave "
            "θ. binomial: the chance bound for a key whose entries an unmarked model matches with probability "
            "`chance` each (½ per bit, 1/C per trigger label); sok and auto never go below it. n_null: null "
            "models, n_scores: their key scores, pooled (sok: the normal fit once there are ≥ 1/p null models).")
    shown = a.thresholds
    if o.reference not in (None, "none"):
        shown = reference.beside_table4(a.thresholds, o.reference)
        text += (f" paper_threshold: the SoK's Table IV θ for {reference.REFERENCES[o.reference]} ({o.reference}; "
                 "CIFAR-10/ImageNet models, 100-entry keys, 30/20 null models), beside ours and its interval.")
    return [Section("Decision thresholds (SoK Table IV)", text, shown,
                    a.table("thresholds", shown, f"Decision thresholds, p = {o.p:g}", text))]


MODEL_COLUMNS = ["setting", "scheme_config", "attack_config", "n_seeds", "marked_test_acc", "marked_wm_acc", "theta",
                 "surrogate_test_acc", "surrogate_wm_acc", "stealing_loss", "success"]


def model_sections(a: Analysis) -> list[Section]:
    """Marked and surrogate test and watermark accuracies per (scheme config, attack config)."""
    frame = a.cells[MODEL_COLUMNS].rename(columns={"success": "removed"})
    text = ("Means over seeds (n_seeds) per scheme config and attack config: the marked model's test and "
            "watermark accuracy (attack none: the marked model itself), θ, the surrogate's test and watermark "
            f"accuracy and the stealing loss; removed: yes when the attack succeeds ({a.crit}). CIs: outcomes.csv.")
    return [Section("Marked and attacked models", text, frame,
                    a.table("models", frame, "Marked and attacked models per cell", text))]


def robustness_sections(a: Analysis) -> list[Section]:
    frame = a.robustness
    marks = "Each cell: " + "; ".join(f"{mark} {meaning}" for mark, meaning in tables.MARKS) + ". "
    text = (f"One row per setting and attack, one column per scheme; the first row of a setting ({tables.MARKED_ROW}) "
            "is each scheme's mean watermark accuracy on its own marked models. A scheme config whose marked model "
            "does not verify (mean marked wm acc < θ) or lost more than max_embedding_loss of test accuracy was "
            "never embedded and is no defender strategy (against an "
            "active scheme, scheme.active, input preprocessing, model modification and obfuscation ran on a model "
            f"extracted from its wrapper). {{marks}}seeds: how many seeds the row's cells have; seeds_agree: no "
            f"when a cell is {tables.SEEDS_DISAGREE}, empty with one seed; runs_present / runs_expected: the row's "
            f"expected runs and how many of them are there. {a.crit}.")
    configs = tables.robustness_configs_table(a.cells, a.options.max_stealing_loss, a.slots)
    configs_text = ("The configuration game behind each Table V cell: the scheme's and the attack's configurations "
                    "(their `ablation:` grids as swept) and the pair at the Eq. 6 equilibrium on the seed means: "
                    "the defender's best configuration and the attacker's best answer to it; payoff > 0: removed.")
    seeds = tables.robustness_seeds_table(a.cells, a.scored, a.options.max_stealing_loss, a.removal)
    seeds_text = ("Each Table V cell with two or more seeds, seed by seed: the Eq. 6 equilibrium of that seed's "
                  f"runs alone (what {tables.SEEDS_DISAGREE}(k of n) counts), its configurations, surrogate wm acc, "
                  "θ, stealing loss and whether it removes the watermark; cell_removed: the equilibrium on the seed "
                  "means; null_share: the share of unmarked models' key scores (null runs of that scheme config, "
                  f"else of the scheme) at or above the surrogate's wm acc (near p = {a.options.p:g}: a watermark "
                  "that reads as kept at the score of a chance draw).")
    sections = [Section("Robustness (SoK Table V)", text.format(marks="The legend below the table gives each mark. "),
                        frame, a.table("robustness", frame, "Robustness of each scheme against each attack",
                                       text.format(marks=marks)), marks=True),
                Section("Configurations at each Table V cell's equilibrium", configs_text, configs,
                        a.table("robustness_configs", configs, "Equilibrium configurations per Table V cell",
                                configs_text))]
    if not seeds.empty:
        sections.append(Section("Table V cells seed by seed", seeds_text, seeds,
                                a.table("robustness_seeds", seeds, "Each Table V cell's equilibrium per seed",
                                        seeds_text)))
    return sections


def reference_sections(a: Analysis) -> list[Section]:
    """The computed Table V beside the SoK's (`reference=`): agreement per setting and every disagreeing cell."""
    if a.reference_cells is None:
        return []
    if a.reference_cells.empty:  # nothing to compare: say why, write no empty tables
        return [Section(f"Agreement with the SoK ({a.options.reference})", " ".join(a.no_reference_lines()))]
    cells = a.reference_cells[["setting", "attack", "scheme", "ours", "paper", "agrees", "ours_majority",
                               "agrees_majority"]]
    disagree = cells[cells["agrees"] == False]  # noqa: E712 (null: not comparable)
    text = (f"Our mark beside the SoK's Table V mark ({a.options.reference}, transcribed from the paper: "
            "wrt/analysis/reference/) for every cell both tables have; agrees is empty where either cell is not "
            f"{tables.ROBUST} or {tables.REMOVED} (seeds disagree, incomplete, not run); ours_majority and "
            f"agrees_majority: the same for the mark most seeds give ({tables.SEEDS_DISAGREE}(2 of 3): "
            f"{tables.REMOVED}; a tie: empty). "
            + "; ".join(a.agreement_lines() + a.no_reference_lines())
            + ". The table lists the disagreeing cells; reference_cells.csv has all of them.")
    a.table("reference_cells", cells, f"All cells vs {a.options.reference}", text)
    rows = reference.agreement_per_attack(cells)
    rows_text = (f"Per Table V row, then in total per setting: agree of the decided cells ({tables.ROBUST} or "
                 f"{tables.REMOVED} in both tables) carry the mark of {a.options.reference} "
                 "(agreement: agree/decided); compared: the row's cells that both tables have; agreement_majority: "
                 "the same for the mark most seeds give, so a cell the seeds split 2 of 3 counts with the two. Only "
                 "the SoK's 11 schemes count; ours that it lacks (greedy_residuals, deepsigns_bb) never do.")
    beside = reference.beside_table5(a.robustness, a.reference_cells)
    beside_text = (f"Our Table V (robustness) beside {a.options.reference}: our mark, then the SoK's in parentheses "
                   f"where they do not agree, in bold where both are {tables.ROBUST} or {tables.REMOVED} and differ "
                   f"(the SoK's {tables.NOT_RUN}: it did not run the cell); a scheme the SoK lacks has no SoK mark. "
                   "agreement: agree/decided per row, then in total (over the SoK's 11 schemes); "
                   f"agreement_majority: the same for the mark most seeds give ({tables.SEEDS_DISAGREE}(2 of 3) as "
                   f"{tables.REMOVED}, {tables.SEEDS_DISAGREE}(1 of 3) as {tables.ROBUST}; a tie stays undecided).")
    return [Section(f"Table V beside the SoK ({a.options.reference})", beside_text, beside,
                    a.table("robustness_vs_reference", beside, f"Table V beside {a.options.reference}",
                            beside_text)),
            Section(f"Agreement with the SoK ({a.options.reference})", text, disagree,
                    a.table("reference", disagree, f"Cells that disagree with {a.options.reference}", text)),
            Section(f"Agreement per attack ({a.options.reference})", rows_text, rows,
                    a.table("reference_rows", rows, f"Agreement per attack with {a.options.reference}", rows_text))]


def search_sections(a: Analysis) -> list[Section]:
    """Grid vs search (issue #27): the adaptive attacker's best response beside the grid's; none when no run is
    tagged `attack.searched`."""
    o = a.options
    searched = best_response.searched_runs(a.runs, a.thresholds, o.theta_prime, o.max_stealing_loss)
    if searched.empty:
        return []
    frame = best_response.grid_vs_search_table(a.scored, searched, a.slots, o.theta_prime, o.max_stealing_loss,
                                               o.max_embedding_loss)
    text = ("Beyond the SoK: an adaptive attacker searched the attack's parameters (experiment=best_response, "
            "Optuna's TPE over the attack config's `search:` block) against one scheme config on one seed. Per "
            "searched cell, seed and study: the grid's best response (of its grid_configs attack configs on that "
            "scheme config and seed) and the search's (of its trials), the one with the highest attacker objective "
            "(the payoff when the watermark is removed, else minus the rescaled wm acc minus the stealing loss "
            "over the rule); mark: the cell's Table V mark (the grid's; searched runs never enter it); "
            "mark_with_search: the mark if each study's best configuration joined the attacker's configs (measured "
            f"on its own seed and scheme config; pairs not run pay 0). {a.crit}.")
    return [Section("Grid vs search (beyond the SoK)", text, frame,
                    a.table("grid_vs_search", frame, "Grid vs search: the attacker's best response", text))]


FORGERY_TEXT = ("A false claim succeeds when a counterfeit key made without training data verifies on the stolen "
                "model. Per scheme config: the attempts, the counterfeit key's size, the claim level (the wm acc a "
                "counterfeit must reach), how many counterfeits verified and their best and mean wm acc (means "
                "over seeds); false_claim: yes when one verified on some seed (false_claim_rate: the fraction of "
                "seeds). These attacks remove nothing and are not part of the game.")


def forgery_sections(a: Analysis) -> list[Section]:
    """The ambiguity (forging) attacks' false ownership claims; none when no such run exists."""
    if a.forged.empty:
        return []
    return [Section("Ambiguity (forging) attacks", FORGERY_TEXT, a.forged,
                    a.table("forgery", a.forged, "False ownership claims of the ambiguity (forging) attacks",
                            FORGERY_TEXT))]


def roc_sections(a: Analysis) -> list[Section]:
    rows, curves = roc.roc_table(a.removal)
    notes = sorted(set(rows["note"]) - {""}) if len(rows) else []
    text = ("Negatives: unmarked models (null runs' wm acc); positives: marked models (one per seed and scheme "
            "config) or the surrogates of an attack (all attacked models, whatever their stealing loss). "
            "AUC = P[pos > neg] + ½ P[tie]; TPR@x%FPR: the largest TPR whose FPR ≤ x %. Schemes without null "
            "runs have no row." + "".join(f" Note: {n}." for n in notes))
    files = a.table("roc", rows, "Verification ROC: AUC and TPR at 1 % and 5 % FPR", text)
    image = a.figure("roc", lambda: plots.roc(curves, rows, "verification ROC")) if curves else None
    return [Section("Verification quality (ROC)", text, rows.drop(columns="note", errors="ignore"), files, image)]


def nash_sections(a: Analysis) -> list[Section]:
    per_scheme = tables.nash_per_scheme_table(a.cells, a.nash)
    text = ("Pure: Eq. 6; mixed: the zero-sum game's value and both strategies (linear program), on the complete "
            "sub-game: an unrun (scheme config, attack config) pair is missing, not 0, so the scheme configs that "
            "did not face every attack config are left out (when none did: the attack configs that every scheme "
            "config faced). missing_pairs: how many; nash.json lists them (missing_pairs, left_out).")
    cat_text = (f"Each scheme against each attack category; rescaled wm acc and stealing loss at the equilibrium. "
                f"{a.crit}.")
    return [
        Section("Nash equilibrium per scheme against all attacks (SoK §VIII-E)", text, per_scheme,
                a.table("nash_per_scheme", per_scheme, "Nash equilibrium per scheme against all attacks", text)
                + [a.out_dir / "nash.json"]),
        Section("Nash equilibrium per scheme and attack category (SoK §VIII-F)", cat_text, a.per_category,
                a.table("nash_per_category", a.per_category, "Nash equilibrium per scheme and attack category",
                        cat_text)),
    ]


def attack_sections(a: Analysis) -> list[Section]:
    fastest = tables.fastest_attacks_table(a.cells)
    dom_text = ("An attack is dominant when its configs remove every scheme config. An unrun pair is missing, not 0: "
                "dominant is empty (undecided) when a scheme config that no run config removed has unrun pairs "
                "(missing_pairs); nash_payoff: Eq. 6 on the complete sub-game, as in nash.json.")
    fast_text = "Attack time relative to training from scratch: fast < 25 %, medium 25–75 %, slow > 75 %."
    return [Section("Dominant attacks (SoK §VIII-H)", dom_text, a.dominant,
                    a.table("dominant_attacks", a.dominant, "Dominant attacks", dom_text)),
            Section("Fastest successful attack per scheme (SoK Fig. 3c)", fast_text, fastest,
                    a.table("fastest_attacks", fastest, "Fastest successful attack per scheme", fast_text))]


def outcome_sections(a: Analysis) -> list[Section]:
    text = ("Every measure per scheme config × attack config: means over seeds with 95 % bootstrap CIs (_lo, _hi; "
            "empty for one seed); success and payoff on the means. runs.csv holds every loaded run, one row each.")
    return [Section("Outcomes per scheme config × attack config", text, None,
                    a.table("outcomes", a.cells, "Outcome of every scheme config against every attack config", text)
                    + [a.out_dir / "runs.csv"])]


def budget_sections(a: Analysis) -> list[Section]:
    """The attacker's data budget (SoK Fig. 3a) and the minimum data to remove; none when no attack's runs
    differ in data fraction or count."""
    sweep = budget.data_budget_table(a.cells, a.scored)
    if sweep.empty:
        return []
    minimum = budget.min_data_table(sweep)
    text = ("Outcome of each attack per data budget (means over seeds with 95 % bootstrap CIs); plot: rescaled "
            "surrogate wm acc (solid) and surrogate test acc (dashed) against the images the attacker used (the "
            "fraction when images are unknown), dotted: θ, rescaled to θ'.")
    min_text = (f"Smallest budget at which the attack succeeds (wm acc < θ and stealing loss ≤ "
                f"{a.options.max_stealing_loss:g}, on the seed means); removed: no when no budget tried does.")
    return [
        Section("Attacker's data budget (SoK Fig. 3a)", text, sweep,
                a.table("data_budget", sweep, "Outcome per attacker data budget", text),
                a.figure("data_budget",
                         lambda: plots.data_budget(sweep, a.options.theta_prime, "attacker's data budget"))),
        Section("Minimum data to remove the watermark", min_text, minimum,
                a.table("min_data_to_remove", minimum, "Minimum attacker data to remove the watermark", min_text)),
    ]


def setting_sections(a: Analysis) -> list[Section]:
    """Per setting: payoff matrix, Pareto scatter, radar plot, runtimes and embedding loss."""
    sections = []
    embedding, runtimes = tables.embedding_table(a.scored), tables.runtime_table(a.scored)
    o = a.options
    for setting in a.settings:
        slug, sc = _slug(setting), a.cells[a.cells["setting"] == setting]
        if setting in a.nash:
            raw = tables.game_cells(sc).pivot(index="scheme_config", columns="attack_config", values="payoff")
            pay_text = ("V[i, j] = surrogate test accuracy if the attack removes the watermark, else 0; blank: not "
                        "run, a missing pair (the equilibria are computed on the complete sub-game: nash.json).")
            sections += [
                Section(f"Payoff matrix — {setting}", pay_text, raw.reset_index(),
                        a.table(f"payoff_{slug}", raw.reset_index(), f"Payoff matrix, {setting}", pay_text),
                        a.figure(f"payoff_{slug}", lambda: plots.payoff_heatmap(raw, setting))),
                Section(f"Pareto scatter — {setting} (SoK Fig. 3b)",
                        "Each point is an attack config against a scheme config; dashed: θ', dotted: maximum "
                        "stealing loss; circled: the scheme's Nash equilibrium.", None, None,
                        a.figure(f"pareto_{slug}", lambda: plots.pareto(sc, a.nash[setting]["per_scheme"],
                                                                        o.theta_prime, o.max_stealing_loss, setting))),
                Section(f"Robustness per attack category — {setting} (SoK Fig. 4)",
                        "Rescaled wm acc at each scheme's equilibrium per category (IP, MM, ME, OB, CO: see the "
                        "glossary); red dashed: θ'.", None, None,
                        a.figure(f"radar_{slug}",
                                 lambda: plots.radar(a.per_category[a.per_category["setting"] == setting],
                                                     o.theta_prime, setting))),
            ]
        emb, rt = embedding[embedding["setting"] == setting], runtimes[runtimes["setting"] == setting]
        rt_text, emb_text = ("Relative to training the source model from scratch.",
                             "Source minus marked test accuracy, mean over seeds with 95 % bootstrap CI.")
        sections += [
            Section(f"Runtimes — {setting} (SoK Fig. 2a,b)", rt_text, rt,
                    a.table(f"runtimes_{slug}", rt, f"Runtimes relative to training, {setting}", rt_text),
                    a.figure(f"runtime_{slug}", lambda: plots.runtime_bars(rt, emb, setting))),
            Section(f"Embedding loss — {setting} (SoK Fig. 2c)", emb_text, emb,
                    a.table(f"embedding_{slug}", emb, f"Embedding loss, {setting}", emb_text),
                    a.figure(f"embedding_loss_{slug}", lambda: plots.embedding_loss_bars(emb, setting))),
        ]
    return sections


def failure_sections(a: Analysis) -> list[Section]:
    """The failed runs (failed_runs.csv) and the skipped files."""
    failed = tables.failed_runs_table(a.relative_paths(a.runs))
    failed.to_csv(a.out_dir / "failed_runs.csv", index=False)
    sections = [Section("Failed runs", f"{len(failed)} run(s) failed; never counted as successes.", failed,
                        [a.out_dir / "failed_runs.csv"])]
    if a.loaded.skipped:
        skipped = a.relative_paths(pd.DataFrame([{"path": str(p), "reason": r} for p, r in a.loaded.skipped]))
        sections.append(Section("Skipped files", f"{len(skipped)} file(s) were not usable run JSON.", skipped))
    if a.notes:
        sections.append(Section("Runs counted once and settings skipped",
                                "Each ok run counts once per (setting, scheme config, attack config, seed, role); "
                                "settings without θ are not analysed.", pd.DataFrame({"warning": a.notes})))
    return sections


SECTIONS = [summary_sections, robustness_sections, measured_sections, glossary_sections, threshold_sections,
            reference_sections, search_sections, model_sections, forgery_sections, roc_sections, nash_sections,
            attack_sections, outcome_sections, budget_sections, setting_sections, failure_sections]
FORGING_ONLY_SECTIONS = [forgery_sections, measured_sections, glossary_sections, failure_sections]
THRESHOLDS_ONLY_SECTIONS = [measured_sections, glossary_sections, threshold_sections, failure_sections]
CHECKS = [forgery.check_claim]  # what the analyses read beyond the run record (`load_runs`)


# ---------------------------------------------------------------- HTML

def _write_report(sections: list[Section], a: Analysis) -> Path:
    report = a.out_dir / "report.html"
    report.write_text(render_html(sections, a.options, a.runs, a.out_dir), encoding="utf-8")
    return report


def _image_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns worth showing: CI columns (`_lo`, `_hi`) and other columns that are empty everywhere (one
    seed: no CI) are left out of the page (the CSV files keep them)."""
    empty = [c for c in frame.columns if frame[c].isna().all()]
    ci = [c for c in frame.columns if str(c).endswith(("_lo", "_hi"))]
    return frame.drop(columns=[c for c in frame.columns if c in empty and (c in ci or c == "seeds_agree")])


MARK_CLASS = {tables.ROBUST: "robust", tables.REMOVED: "removed", tables.SEEDS_DISAGREE: "disagree",
              tables.UNDECIDED: "undecided", tables.NOT_EMBEDDED: "notembedded", tables.INCOMPLETE: "incomplete",
              tables.NOT_RUN: "notrun", tables.ONLY_FAILED: "failed"}


def _html_table(frame: pd.DataFrame, marks: bool = False) -> str:
    """The table with 4 decimals and – for missing values (also in nullable integer columns), inside a box
    that scrolls sideways when the table is wider than the page; `marks`: each Table V mark's cell coloured."""
    frame = _shown(frame)
    ints = [c for c, dtype in frame.dtypes.items() if isinstance(dtype, pd.Int64Dtype)]
    frame = frame.astype({c: object for c in ints}).fillna({c: "–" for c in ints})
    table = frame.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4f}", border=0, classes="t")
    if marks:
        def colour(cell: re.Match) -> str:
            kind = tables.mark_kind(html.unescape(cell.group(1)))
            return cell.group(0) if kind is None else f'<td class="m {MARK_CLASS[kind]}">{cell.group(1)}</td>'
        table = re.sub(r"<td>([^<]*)</td>", colour, table)
    return f'<div class="scroll">{table}</div>'


def _legend() -> str:
    """Every Table V mark in its colour, with its meaning."""
    items = "".join(f'<li><span class="m {MARK_CLASS[tables.mark_kind(mark)]}">{html.escape(mark)}</span> '
                    f"{html.escape(meaning)}</li>" for mark, meaning in tables.MARKS)
    return f'<ul class="legend">{items}</ul>'


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 8px}"
         "p,li{overflow-wrap:anywhere}.scroll{overflow-x:auto;max-width:100%;margin:4px 0}"
         "table.t{border-collapse:collapse;font-size:12px}"
         "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
         "table.t td{max-width:32em;overflow-wrap:break-word}"
         "img{max-width:100%;height:auto}.files{font-size:11px}"
         ".m{padding:0 4px;font-weight:bold}td.m{text-align:center}ul.legend{font-size:12px;padding-left:1em}"
         ".robust{background:#c8e6c9}.removed{background:#ffcdd2}.disagree{background:#ffe0b2}"
         ".undecided{background:#fff9c4}.notembedded{background:#e0e0e0}.incomplete{background:#d1c4e9}"
         ".notrun{background:#fafafa;color:#777}.failed{background:#f8bbd0}")


def render_html(sections: list[Section], options: Options, runs: pd.DataFrame, out_dir: Path) -> str:
    """One self-contained page: tables inline, PNGs embedded as base64, links to the CSV/MD/TeX/PDF files."""
    n_ok, n_failed = int((runs["status"] == "ok").sum()), int((runs["status"] == "failed").sum())
    extra = f", thresholds_from {options.thresholds_from}" if options.thresholds_from else ""
    if options.merge_numerics:
        extra += (", merge_numerics: runs of different numerics (device, precision, CPU threads) are averaged "
                  "into one setting")
    if options.seeds is not None:
        extra += f", seeds {', '.join(map(str, options.seeds))} only (marked runs; θ from every null run)"
    folders = ", ".join(map(str, options.folders))
    body = [f"<h1>wrt robustness report</h1><p>{html.escape(folders)}: {n_ok} ok run(s), "
            f"{n_failed} failed; p = {options.p:g}, θ' = {options.theta_prime:g}, maximum stealing loss "
            f"{options.max_stealing_loss:g}, maximum embedding loss {options.max_embedding_loss:g}, threshold method "
            f"{html.escape(options.threshold_method)}"
            f"{html.escape(extra)}. Analysed with wrt {html.escape(wrt.__version__)} (no date: the same runs give "
            "the same bytes; the runs' dates are under \"What was measured\").</p>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>")
        if section.table is not None:
            body.append(_html_table(section.table, section.marks))
        if section.marks:
            body.append(_legend())
        for image in section.images or []:
            if image.suffix == ".png":
                body.append(_image_tag(image))
        files = [*(section.files or []), *(section.images or [])]
        if files:
            links = " ".join(f'<a href="{html.escape(f.relative_to(out_dir).as_posix())}">{html.escape(f.name)}</a>'
                             for f in files)
            body.append(f"<p class=files>files: {links}</p>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width'><title>wrt report</title><style>{STYLE}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def main_with(options: Options) -> int:
    """Run the analysis; one clear error line and exit status 2 on bad input."""
    try:
        check_options(options)
        analyze(options)
    except (ResultsDirError, ThresholdError) as exc:
        print(f"wrt-analyze: error: {exc}", file=sys.stderr)
        return 2
    return 0
