"""Run the whole analysis: load runs, thresholds, outcomes, Nash equilibria, tables, plots, report.html."""

from __future__ import annotations

import base64
import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wrt.analysis import budget, forgery, plots, roc, tables
from wrt.analysis.load import ANALYSIS_DIRNAME, ResultsDirError, load_runs
from wrt.analysis.thresholds import ThresholdError, decision_thresholds


@dataclass
class Options:
    results_dir: str = "results"
    p: float = 0.05
    theta_prime: float = 0.5
    max_stealing_loss: float = 0.05
    threshold_method: str = "auto"
    min_null_runs: int = 5


@dataclass
class Section:
    title: str
    text: str
    table: pd.DataFrame | None = None
    files: list[Path] | None = None
    images: list[Path] | None = None


def _slug(setting: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", setting)


def describe_nash(nash: dict) -> list[str]:
    """Human-readable lines for stdout."""
    lines = []
    for setting, entry in nash.items():
        lines.append(f"Nash equilibrium on {setting}")
        for name, e in [("all schemes", entry["all"]), *entry["per_scheme"].items()]:
            pure, mixed = e["pure"], e["mixed"]
            lines.append(f"  {name}: pure (Eq. 6) defender {pure['scheme']} vs attacker {pure['attack']}, "
                         f"payoff {pure['payoff']:.4f} ({'robust' if pure['payoff'] == 0 else 'removed'}); "
                         f"mixed value {mixed['value']:.4f}, defender {tables.support(mixed['defender'])}; "
                         f"attacker {tables.support(mixed['attacker'])}")
    return lines


def analyze(options: Options, out=print) -> Path:
    """Write every table, plot and report.html to `${results_dir}/analysis/`; return report.html's path."""
    results_dir = Path(options.results_dir)
    loaded = load_runs(results_dir)
    runs = tables.add_settings(loaded.runs)
    removal = tables.removal_runs(runs)
    forged = forgery.forgery_table(runs)
    out_dir = results_dir / ANALYSIS_DIRNAME

    def table(name, frame, caption):
        return tables.write_table(frame, out_dir, name, caption)

    if not forged.empty and not _has_removal_runs(removal):  # only forging runs: a claim table, no game
        out_dir.mkdir(parents=True, exist_ok=True)
        report = _write_report(_forgery_sections(forged, table), options, runs, loaded, out_dir)
        out(forgery.summary(forged))
        out(str(report))
        return report
    thresholds = decision_thresholds(removal, options.p, options.threshold_method, options.min_null_runs)
    out_dir.mkdir(parents=True, exist_ok=True)

    failed = runs[runs["status"] == "failed"]
    scored = tables.score_runs(removal, thresholds, options.theta_prime, options.max_stealing_loss)
    if scored.empty:
        raise ResultsDirError(f"no successful role=marked run under {results_dir}; nothing to analyze")
    cells = tables.outcomes(scored, failed, options.max_stealing_loss)
    if tables.game_cells(cells).empty:
        raise ResultsDirError(f"no successful run under {results_dir} has a removal attack (other than none "
                              "and ambiguity); there is no game to analyze")
    nash = tables.nash_all(cells, options.max_stealing_loss)
    (out_dir / "nash.json").write_text(json.dumps(nash, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    runs.drop(columns=[c for c in runs.columns if runs[c].map(lambda v: isinstance(v, list)).any()]) \
        .to_csv(out_dir / "runs.csv", index=False)

    def figure(name, fig):
        return plots.save(fig, out_dir, name)

    crit = (f"success: surrogate wm acc < θ and stealing loss ≤ {options.max_stealing_loss:g}; "
            f"rescaled with θ' = {options.theta_prime:g} (Eq. 5)")
    per_scheme = tables.nash_per_scheme_table(cells, nash)
    per_category = tables.nash_per_category_table(cells, nash)
    embedding = tables.embedding_table(scored)
    runtimes = tables.runtime_table(scored)
    robustness = tables.robustness_table(cells, scored, failed, options.max_stealing_loss)
    roc_rows, roc_curves = roc.roc_table(removal)
    dominant = tables.dominant_attacks_table(cells, options.max_stealing_loss)
    fastest = tables.fastest_attacks_table(cells)
    sections = [
        Section("Decision thresholds (SoK Table IV)",
                f"θ per scheme and dataset from role=null runs, p = {options.p:g}, method "
                f"{options.threshold_method}; all three estimates shown, `method` says which one is used. "
                "binomial: the chance bound for a key whose entries an unmarked model matches with "
                "probability `chance` each (½ per bit, 1/C per trigger label); auto never goes below it.",
                thresholds, table("thresholds", thresholds, f"Decision thresholds, p = {options.p:g}")),
        Section("Robustness (SoK Table V)",
                f"{tables.ROBUST} robust, {tables.REMOVED} removed at the Eq. 6 equilibrium of the scheme's "
                f"configs vs the attack's configs (on the seed means), {tables.SEEDS_DISAGREE}(k of n) the seeds "
                f"disagree: the equilibrium on k of the n seeds' runs alone removes the watermark "
                f"(seeds_agree: no), {tables.NOT_RUN} not run, {tables.ONLY_FAILED} only failed "
                f"runs; several settings are joined by '/' in the order "
                f"{' / '.join(sorted(cells['setting'].unique()))}. {crit}.",
                robustness,
                table("robustness", robustness, "Robustness of each scheme against each attack")),
        *_forgery_sections(forged, table),
        Section("Verification quality (ROC)",
                "Negatives: unmarked models (null runs' wm acc); positives: marked models (one per seed and "
                "scheme config) or the surrogates of an attack (all attacked models, whatever their stealing "
                "loss). AUC = P[pos > neg] + ½ P[tie]; TPR@x%FPR: the largest TPR whose FPR ≤ x %. Schemes "
                "without null runs have no row.", roc_rows,
                table("roc", roc_rows, "Verification ROC: AUC and TPR at 1 % and 5 % FPR"),
                figure("roc", plots.roc(roc_curves, roc_rows, "verification ROC")) if roc_curves else None),
        Section("Nash equilibrium per scheme against all attacks (SoK §VIII-E)",
                "Pure: Eq. 6; mixed: the zero-sum game's value and both strategies (linear program). "
                "Full detail in nash.json.", per_scheme,
                table("nash_per_scheme", per_scheme, "Nash equilibrium per scheme against all attacks")
                + [out_dir / "nash.json"]),
        Section("Nash equilibrium per scheme and attack category (SoK §VIII-F)", crit, per_category,
                table("nash_per_category", per_category, "Nash equilibrium per scheme and attack category")),
        Section("Dominant attacks (SoK §VIII-H)",
                "An attack is dominant when its configs remove every scheme config (not run: not removed).",
                dominant,
                table("dominant_attacks", dominant, "Dominant attacks")),
        Section("Fastest successful attack per scheme (SoK Fig. 3c)",
                "Attack time relative to training from scratch: fast < 25 %, medium 25–75 %, slow > 75 %.",
                fastest,
                table("fastest_attacks", fastest, "Fastest successful attack per scheme")),
        Section("Outcomes per scheme config × attack config",
                "Means over seeds with 95 % bootstrap CIs (_lo, _hi); success and payoff on the means. "
                "runs.csv holds every loaded run, one row each.",
                None, table("outcomes", cells, "Outcome of every scheme config against every attack config")
                + [out_dir / "runs.csv"]),
    ]
    sections += _budget_sections(cells, scored, options, table, figure)
    for setting in sorted(cells["setting"].unique()):
        slug, sc = _slug(setting), cells[cells["setting"] == setting]
        if setting in nash:
            sections += _game_sections(setting, slug, sc, nash[setting], per_category, options, table, figure)
        emb, rt = embedding[embedding["setting"] == setting], runtimes[runtimes["setting"] == setting]
        sections.append(Section(f"Runtimes — {setting} (SoK Fig. 2a,b)",
                                "Relative to training the source model from scratch.", rt,
                                table(f"runtimes_{slug}", rt, f"Runtimes relative to training, {setting}"),
                                figure(f"runtime_{slug}", plots.runtime_bars(rt, emb, setting))))
        sections.append(Section(f"Embedding loss — {setting} (SoK Fig. 2c)",
                                "Source minus marked test accuracy, mean over seeds with 95 % bootstrap CI.", emb,
                                table(f"embedding_{slug}", emb, f"Embedding loss, {setting}"),
                                figure(f"embedding_loss_{slug}", plots.embedding_loss_bars(emb, setting))))
    report = _write_report(sections, options, runs, loaded, out_dir)
    for line in describe_nash(nash):
        out(line)
    if not forged.empty:
        out(forgery.summary(forged))
    out(str(report))
    return report


def _has_removal_runs(removal: pd.DataFrame) -> bool:
    """Whether some ok, role=marked run faced a removal attack (not `none`, not a forging attack)."""
    return bool(((removal["status"] == "ok") & (removal["role"] == "marked")
                 & (removal["attack.name"] != "none")).any())


def _write_report(sections: list[Section], options: Options, runs: pd.DataFrame, loaded, out_dir: Path) -> Path:
    """Append the failed-runs and skipped-files sections, write failed_runs.csv and report.html."""
    failed_table = tables.failed_runs_table(runs)
    failed_table.to_csv(out_dir / "failed_runs.csv", index=False)
    sections = [*sections, Section("Failed runs", f"{len(failed_table)} run(s) failed; never counted as "
                                   "successes.", failed_table, [out_dir / "failed_runs.csv"])]
    if loaded.skipped:
        skipped = pd.DataFrame([{"path": str(p), "reason": r} for p, r in loaded.skipped])
        sections.append(Section("Skipped files", f"{len(skipped)} file(s) were not usable run JSON.", skipped))
    report = out_dir / "report.html"
    report.write_text(render_html(sections, options, runs, out_dir), encoding="utf-8")
    return report


def _game_sections(setting, slug, sc, nash_entry, per_category, options, table, figure) -> list[Section]:
    """Payoff matrix, Pareto scatter and radar plot of one setting."""
    raw = tables.game_cells(sc).pivot(index="scheme_config", columns="attack_config", values="payoff")
    return [
        Section(f"Payoff matrix — {setting}",
                "V[i, j] = surrogate test accuracy if the attack removes the watermark, else 0; "
                "blank: not run (the game counts it as 0).",
                raw.reset_index(), table(f"payoff_{slug}", raw.reset_index(), f"Payoff matrix, {setting}"),
                figure(f"payoff_{slug}", plots.payoff_heatmap(raw, setting))),
        Section(f"Pareto scatter — {setting} (SoK Fig. 3b)",
                "Each point is an attack config against a scheme config; dashed: θ', dotted: maximum stealing "
                "loss; circled: the scheme's Nash equilibrium.", None, None,
                figure(f"pareto_{slug}", plots.pareto(sc, nash_entry["per_scheme"], options.theta_prime,
                                                      options.max_stealing_loss, setting))),
        Section(f"Robustness per attack category — {setting} (SoK Fig. 4)",
                "Rescaled wm acc at each scheme's equilibrium per category; red dashed: θ'.", None, None,
                figure(f"radar_{slug}", plots.radar(per_category[per_category["setting"] == setting],
                                                    options.theta_prime, setting))),
    ]


def _forgery_sections(forged, table) -> list[Section]:
    """The ambiguity (forging) attacks' false ownership claims; none when no such run exists."""
    if forged.empty:
        return []
    return [Section("Ambiguity (forging) attacks",
                    "A false claim succeeds when a counterfeit key made without training data verifies on the "
                    "stolen model. Per scheme config: the attempts, the counterfeit key's size, the claim level "
                    "(the wm acc a counterfeit must reach), how many counterfeits verified and their best and "
                    "mean wm acc (means over seeds); false_claim: yes when one verified on some seed "
                    "(false_claim_rate: the fraction of seeds). These attacks remove nothing and are not part "
                    "of the game.", forged,
                    table("forgery", forged, "False ownership claims of the ambiguity (forging) attacks"))]


def _budget_sections(cells, scored, options, table, figure) -> list[Section]:
    """The attacker's data budget (SoK Fig. 3a) and the minimum data to remove; none when no attack's runs
    differ in data fraction or count."""
    sweep = budget.data_budget_table(cells, scored)
    if sweep.empty:
        return []
    minimum = budget.min_data_table(sweep)
    return [
        Section("Attacker's data budget (SoK Fig. 3a)",
                "Outcome of each attack per data budget (means over seeds with 95 % bootstrap CIs); plot: "
                "rescaled surrogate wm acc (solid) and surrogate test acc (dashed) against the images the "
                "attacker used (the fraction when images are unknown), dotted: θ, rescaled to θ'.", sweep,
                table("data_budget", sweep, "Outcome per attacker data budget"),
                figure("data_budget", plots.data_budget(sweep, options.theta_prime, "attacker's data budget"))),
        Section("Minimum data to remove the watermark",
                f"Smallest budget at which the attack succeeds (wm acc < θ and stealing loss ≤ "
                f"{options.max_stealing_loss:g}, on the seed means); removed: no when no budget tried does.",
                minimum, table("min_data_to_remove", minimum, "Minimum attacker data to remove the watermark")),
    ]


def _image_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _html_table(frame: pd.DataFrame) -> str:
    """The table with 4 decimals and – for missing values (also in nullable integer columns)."""
    ints = [c for c, dtype in frame.dtypes.items() if isinstance(dtype, pd.Int64Dtype)]
    frame = frame.astype({c: object for c in ints}).fillna({c: "–" for c in ints})
    return frame.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4f}", border=0, classes="t")


def render_html(sections: list[Section], options: Options, runs: pd.DataFrame, out_dir: Path) -> str:
    """One self-contained page: tables inline, PNGs embedded as base64, links to the CSV/MD/TeX/PDF files."""
    n_ok, n_failed = int((runs["status"] == "ok").sum()), int((runs["status"] == "failed").sum())
    body = [f"<h1>wrt robustness report</h1><p>{html.escape(str(Path(options.results_dir)))}: {n_ok} ok run(s), "
            f"{n_failed} failed; p = {options.p:g}, θ' = {options.theta_prime:g}, maximum stealing loss "
            f"{options.max_stealing_loss:g}, threshold method {html.escape(options.threshold_method)}.</p>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>")
        if section.table is not None:
            body.append(_html_table(section.table))
        for image in section.images or []:
            if image.suffix == ".png":
                body.append(_image_tag(image))
        files = [*(section.files or []), *(section.images or [])]
        if files:
            links = " ".join(f'<a href="{html.escape(f.relative_to(out_dir).as_posix())}">{html.escape(f.name)}</a>'
                             for f in files)
            body.append(f"<p class=files>files: {links}</p>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table.t{border-collapse:collapse;font-size:12px}"
             "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}.files{font-size:11px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>wrt report</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def main_with(options: Options) -> int:
    """Run the analysis; one clear error line and exit status 2 on bad input."""
    try:
        analyze(options)
    except (ResultsDirError, ThresholdError) as exc:
        print(f"wrt-analyze: error: {exc}", file=sys.stderr)
        return 2
    return 0
