"""The SoK's figures (§VIII): Pareto scatter (Fig. 3b,e), radar per attack category (Fig. 4), runtime and
embedding-loss bars (Fig. 2), the attacker's data budget (Fig. 3a), plus a payoff-matrix heatmap and ROC
curves of verification. Each is saved as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from wrt.analysis.budget import amount_column  # noqa: E402
from wrt.analysis.tables import CATEGORY_ABBREV, FAST, MEDIUM, category_rank, game_cells  # noqa: E402

SPEED_COLORS = {"fast": "tab:green", "medium": "tab:orange", "slow": "tab:red"}


def save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})  # no date: re-analysis is byte for byte
    plt.close(fig)
    return paths


def _ci_errors(table: pd.DataFrame, column: str) -> list[np.ndarray]:
    """Error-bar lengths below and above the mean from the `_lo`/`_hi` CI columns (0 where there is none)."""
    mean = table[column].to_numpy(float)
    below = np.nan_to_num(mean - table[f"{column}_lo"].to_numpy(float))
    above = np.nan_to_num(table[f"{column}_hi"].to_numpy(float) - mean)
    return [np.maximum(below, 0.0), np.maximum(above, 0.0)]


def _grid(n: int, polar: bool = False, size: float = 3.6):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False,
                             subplot_kw={"projection": "polar"} if polar else None)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _titled(fig, title: str, legend_from=()):
    """Lay the panels out below the figure title; with `legend_from`, one legend of all their labelled
    artists (each label once) below the panels."""
    inch = 1 / fig.get_figheight()
    handles = {}
    for ax in legend_from:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(title, y=1 - 0.1 * inch, va="top")
    fig.tight_layout(rect=(0, 0.4 * inch if handles else 0, 1, 1 - 0.45 * inch))
    return fig


def _pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both stealing loss and watermark accuracy (lower is
    better for the attacker), sorted by stealing loss."""
    order = np.lexsort((y, x))
    front, best_y = [], np.inf
    for k in order:
        if y[k] < best_y:
            front.append(k)
            best_y = y[k]
    return np.array(front, dtype=int)


def pareto(cells: pd.DataFrame, per_scheme_nash: dict, theta_prime: float, max_stealing_loss: float,
           title: str):
    """Stealing loss vs rescaled watermark accuracy of every attack config, one panel per scheme."""
    gc = game_cells(cells)
    schemes = sorted(gc["scheme"].unique())
    fig, axes = _grid(len(schemes))
    for ax, scheme in zip(axes, schemes):
        sub = gc[gc["scheme"] == scheme]
        x, y = sub["stealing_loss"].to_numpy(float), sub["rescaled_wm_acc"].to_numpy(float)
        for category, part in sub.groupby("category"):
            ax.scatter(part["stealing_loss"], part["rescaled_wm_acc"], s=18, alpha=0.8,
                       label=CATEGORY_ABBREV.get(category, category))
        front = _pareto_front(x, y)
        ax.plot(x[front], y[front], "k-", lw=0.8, label="Pareto front")
        pure = per_scheme_nash.get(scheme, {}).get("pure")
        if pure:
            at = sub[(sub["scheme_config"] == pure["scheme"]) & (sub["attack_config"] == pure["attack"])]
            ax.scatter(at["stealing_loss"], at["rescaled_wm_acc"], s=90, facecolors="none",
                       edgecolors="k", label="Nash (Eq. 6)")
        ax.axhline(theta_prime, ls="--", c="gray", lw=0.8)
        ax.axvline(max_stealing_loss, ls=":", c="gray", lw=0.8)
        ax.set(title=scheme, xlabel="stealing loss", ylabel="rescaled wm acc", ylim=(-0.05, 1.05))
    return _titled(fig, title, legend_from=axes[:len(schemes)])


def radar(per_category: pd.DataFrame, theta_prime: float, title: str):
    """Rescaled watermark accuracy of each scheme at the Eq. 6 equilibrium against each attack category."""
    categories = sorted(per_category["category"].unique(), key=lambda c: (category_rank(c), c))
    schemes = sorted(per_category["scheme"].unique())
    angles = np.linspace(0, 2 * np.pi, len(categories), endpoint=False)
    fig, axes = _grid(len(schemes), polar=True, size=3.2)
    for ax, scheme in zip(axes, schemes):
        sub = per_category[per_category["scheme"] == scheme].set_index("category")
        values = np.array([sub["rescaled_wm_acc"].get(c, np.nan) for c in categories], dtype=float)
        values = np.nan_to_num(values, nan=0.0)
        closed = np.r_[angles, angles[:1]]
        ax.plot(closed, np.r_[values, values[:1]], "b-")
        ax.fill(closed, np.r_[values, values[:1]], alpha=0.25)
        ax.plot(np.linspace(0, 2 * np.pi, 100), np.full(100, theta_prime), "r--", lw=0.8)
        ax.set_xticks(angles, [CATEGORY_ABBREV.get(c, c) for c in categories])
        ax.tick_params(axis="x", pad=6, labelsize=9)
        ax.set_ylim(0, 1)
        # radial labels small and between the first two spokes, where no category label or line is
        ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["", "0.5", "", "1"], fontsize=7, color="gray")
        ax.set_rlabel_position(np.degrees(np.pi / max(len(categories), 1)))
        ax.set_title(scheme, fontsize=9, pad=14)
    return _titled(fig, title)


def runtime_bars(runtimes: pd.DataFrame, embedding: pd.DataFrame, title: str):
    """Attack (and, where measured, embedding) time relative to training from scratch."""
    embed = embedding.dropna(subset=["embed_time_ratio"])
    panels = [("attack time / training time", runtimes, "attack_config", "attack_time_ratio")]
    if len(embed):
        panels.insert(0, ("embedding time / training time", embed, "scheme_config", "embed_time_ratio"))
    height = max(2.5, 0.25 * max(len(p[1]) for p in panels) + 1)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), height), squeeze=False)
    for ax, (xlabel, data, label_col, value_col) in zip(axes.flat, panels):
        values = data[value_col].to_numpy(float)
        colors = [SPEED_COLORS["fast" if v < FAST else "medium" if v <= MEDIUM else "slow"] for v in values]
        ax.barh(data[label_col], values, xerr=_ci_errors(data, value_col), color=colors, capsize=2)
        for bound in (FAST, MEDIUM):
            ax.axvline(bound, ls="--", c="gray", lw=0.8)
        ax.set(xlabel=xlabel)
        ax.tick_params(axis="y", labelsize=7)
    axes.flat[-1].legend(handles=[plt.Rectangle((0, 0), 1, 1, color=SPEED_COLORS[k]) for k in ("fast", "medium", "slow")],
                         labels=["fast (<25%)", "medium (25–75%)", "slow (>75%)"], fontsize=7)
    return _titled(fig, title)


def embedding_loss_bars(embedding: pd.DataFrame, title: str):
    """Mean embedding loss per scheme config with 95 % bootstrap CI (SoK Fig. 2c,f)."""
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.25 * len(embedding) + 1)))
    schemes = sorted(embedding["scheme"].unique())
    colors = [plt.cm.tab10(schemes.index(s) % 10) for s in embedding["scheme"]]
    ax.barh(embedding["scheme_config"], embedding["embedding_loss"], xerr=_ci_errors(embedding, "embedding_loss"),
            color=colors, capsize=2)
    ax.axvline(0, c="k", lw=0.6)
    ax.set(xlabel="embedding loss (source − marked test accuracy)")
    ax.tick_params(axis="y", labelsize=7)
    return _titled(fig, title)


def payoff_heatmap(V: pd.DataFrame, title: str):
    """Payoff matrix V: scheme configs (rows) × attack configs (columns); not run is blank."""
    fig, ax = plt.subplots(figsize=(max(4, 0.4 * V.shape[1] + 3), max(3, 0.3 * V.shape[0] + 2)))
    image = ax.imshow(V.to_numpy(float), cmap="Reds", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(V.shape[1]), V.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(V.shape[0]), V.index, fontsize=7)
    fig.colorbar(image, ax=ax, label="payoff (surrogate test acc if removed, else 0)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def roc(curves: dict, roc_rows: pd.DataFrame, title: str):
    """ROC curves of verification, one panel per (setting, scheme): marked models and all surrogates."""
    panels = sorted({(d, s) for d, s, _ in curves})
    several_datasets = len({d for d, _ in panels}) > 1
    auc = roc_rows.set_index(["setting", "scheme", "positives"])["auc"]
    fig, axes = _grid(len(panels))
    for ax, (dataset, scheme) in zip(axes, panels):
        for kind, style in (("marked", "b-"), ("surrogate:all", "r-")):
            if (dataset, scheme, kind) in curves:
                fpr, tpr = curves[(dataset, scheme, kind)]
                ax.plot(fpr, tpr, style, label=f"{kind} (AUC {auc[(dataset, scheme, kind)]:.3f})")
        ax.plot([0, 1], [0, 1], ls=":", c="gray", lw=0.8)
        ax.set(title=f"{scheme} — {dataset}" if several_datasets else scheme, xlabel="false positive rate",
               ylabel="true positive rate", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.legend(fontsize=7, loc="lower right")
    return _titled(fig, title)


def data_budget(budget: pd.DataFrame, theta_prime: float, title: str):
    """SoK Fig. 3a: rescaled surrogate wm acc (solid) and surrogate test acc (dashed) against the attacker's
    data, one line per attack (and scheme config when a scheme has several), one panel per scheme."""
    panels = sorted({(setting, scheme) for setting, scheme in zip(budget["setting"], budget["scheme"])})
    several_settings = len({s for s, _ in panels}) > 1
    fig, axes = _grid(len(panels), size=4.2)
    for ax, (setting, scheme) in zip(axes, panels):
        sub = budget[(budget["setting"] == setting) & (budget["scheme"] == scheme)]
        x_col = amount_column(sub)
        several_configs = sub["scheme_config"].nunique() > 1
        for k, ((config, attack), line) in enumerate(sub.groupby(["scheme_config", "attack"], sort=True)):
            line = line.sort_values(x_col)
            x = line[x_col].to_numpy(float)
            color, name = plt.cm.tab10(k % 10), f"{attack} · {config}" if several_configs else attack
            ax.plot(x, line["rescaled_wm_acc"], "o-", c=color, label=name)
            ax.plot(x, line["surrogate_test_acc"], "s--", c=color, alpha=0.7)
        ax.axhline(theta_prime, ls=":", c="k", lw=0.8, label="θ (rescaled: θ′)")
        if (sub[x_col] > 0).all():
            ax.set_xscale("log")
        ax.set(title=f"{scheme} — {setting}" if several_settings else scheme, ylim=(-0.05, 1.05),
               xlabel="images used by the attacker" if x_col == "images" else "fraction of the attacker's data",
               ylabel="rescaled wm acc (solid), test acc (dashed)")
        ax.legend(fontsize=6)
    return _titled(fig, title)
