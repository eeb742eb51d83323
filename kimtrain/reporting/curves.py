"""Learning curves: test error by training-set size, per training setting (energies only, or a
variant suffix such as "+F"), with the DFT labels each strategy saves and a log-log plot."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..strategies import names as strategy_names
from .labels_saved import labels_saved

BEST_EIP = "best EIP"  # the row of the best single EIP on validation (no network): a reference line
EIP_MODEL = "(EIP)"    # its model column: the row is the same for every model, and shown with each
METRICS = (("test_mae_per_atom", "energy", "per-atom MAE (eV/atom)"), ("test_force_mae", "forces", "force MAE (eV/Å)"))


def mean_std(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ({v.std():.4f})" if len(v) > 1 else f"{v.mean():.4f}"


def _base(g: pd.DataFrame) -> pd.Series:
    """The strategy behind each row's label ("mp" for "mp(EIP F) +F"; the label where unknown)."""
    return g.base_strategy.fillna(g.strategy) if "base_strategy" in g else g.strategy


def settings(g: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{setting: rows} of one dataset and model that form a learning curve: the setting is what a
    label adds to its strategy ("" for plain strategies, "+F" for "mp +F", "(EIP F) +F" for
    "mp(EIP F) +F"); a setting has a curve where one of its runs comes at several sizes. The best
    EIP's rows join every setting."""
    base = _base(g)
    setting = pd.Series([lab[len(b):].strip() if isinstance(b, str) and lab.startswith(b) else lab
                         for lab, b in zip(g.strategy, base)], index=g.index)
    eip = g.strategy == BEST_EIP
    out = {}
    for name in dict.fromkeys(setting[~eip]):
        rows = g[(setting == name) & ~eip]
        if rows.groupby("strategy").n_train.nunique().max() > 1:
            out[name] = pd.concat([rows, g[eip]])
    return out


def saved_labels(stats: pd.DataFrame, order: list, reference: str) -> dict:
    """{strategy: LabelsSaved} against the reference's mean error at its largest size (stats: mean
    test error by n_train and strategy); {} without the reference."""
    if reference not in order:
        return {}
    base = stats.xs(reference, level="strategy")["mean"]
    full = base.index.max()
    return {s: labels_saved(stats.xs(s, level="strategy").index, stats.xs(s, level="strategy")["mean"].to_numpy(),
                            float(base.loc[full]), float(full)) for s in order}


def learning_curve(g: pd.DataFrame, title: str, png=None) -> list[str]:
    """Markdown lines for one training setting: test per-atom MAE (eV/atom), mean (std) over seeds,
    by training-set size (rows) and strategy (columns), then the DFT labels each strategy saves
    (the full size over the size at which it reaches the reference's full-size error; the
    reference is the setting's baseline); where forces were trained, the same for the force MAE
    (eV/Å). With png, the same as log-log plots (energy, and forces beside it) with error bars,
    the reference's full-size error as a dotted line and each crossing marked with a star."""
    rank = {s: i for i, s in enumerate(strategy_names() + [BEST_EIP])}
    base = dict(zip(g.strategy, _base(g)))
    order = sorted((s for s in dict.fromkeys(g.strategy) if base[s] in rank), key=lambda s: rank[base[s]])
    reference = next((s for s in order if base[s] == "baseline"), None)
    g = g[g.strategy.isin(order)]
    trained_forces = ("force_weight" in g and (g.force_weight.fillna(0) > 0).any()
                      and "test_force_mae" in g and g.test_force_mae.notna().any())
    lines, panels = [], []
    for column, what, unit in METRICS[:1 + trained_forces]:
        stats = g.dropna(subset=[column]).groupby(["n_train", "strategy"])[column].agg(["mean", "std", "count"])
        shown = [s for s in order if s in set(stats.index.get_level_values(1))]
        lines += [f"Learning curve, {title}: test {unit}, mean (std) over seeds", "",
                  "| n_train | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
        for n in sorted(g.n_train.unique()):
            cells = [mean_std(g[(g.n_train == n) & (g.strategy == s)][column].dropna()) if (n, s) in stats.index
                     else "" for s in shown]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        saved = saved_labels(stats, shown, reference)
        sizes = stats.reset_index().groupby("strategy").n_train.nunique()
        if saved:  # a run at one size only (an ablation, auto) has no curve to read a saving off
            lines.append(f"| DFT labels saved, {what} | " + " | ".join(
                "(reference)" if s == reference else "(one size)" if sizes[s] < 2 else str(saved[s])
                for s in shown) + " |")
        lines.append("")
        if saved:
            lines += equivalent_sizes(stats, [x for x in shown if x != BEST_EIP and sizes[x] > 1], reference, unit)
        panels.append((stats, shown, saved, unit))
    if png:
        lines += [_plot(panels, reference, title, png), ""]
    return lines


def equivalent_sizes(stats: pd.DataFrame, order: list, reference: str, unit: str) -> list[str]:
    """Markdown lines: at each size n of each strategy's curve, the training size at which the
    reference reaches the same mean error (log-log interpolation on the reference's curve) and
    that size over n: the DFT labels saved at that budget. "> N" where the reference never gets
    there up to its largest size N, "≤ N" where it is already there at its smallest."""
    ref = stats.xs(reference, level="strategy")["mean"]
    smallest, largest = float(ref.index.min()), float(ref.index.max())
    others = [s for s in order if s != reference]
    if not others:
        return []
    lines = [f"Training size at which {reference} reaches each strategy's mean test {unit} (x: the DFT "
             "labels saved at that size)", "", "| n_train | " + " | ".join(others) + " |",
             "|---" * (len(others) + 1) + "|"]
    for n in sorted(set(stats.index.get_level_values(0))):
        cells = []
        for s in others:
            if (n, s) not in stats.index:
                cells.append("")
                continue
            hit = labels_saved(ref.index, ref.to_numpy(), float(stats.loc[(n, s), "mean"]), float(n))
            cells.append(f"> {largest:g}" if hit.n is None else f"≤ {smallest:g}" if hit.below
                         else f"{hit.n:.0f} ({hit.n / n:.1f}x)")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines + [""]


def _plot(panels, reference, title, png) -> str:
    """Log-log plot(s) of the curves into png; returns the markdown image line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (stats, shown, saved, unit) in zip(axes[0], panels):
        for s in shown:
            st = stats.xs(s, level="strategy")
            style = {"color": "black", "linestyle": "--", "marker": "s"} if s == BEST_EIP else {"marker": "o"}
            line = ax.errorbar(st.index, st["mean"], yerr=st["std"].fillna(0), capsize=3, label=s, **style)
            if s in saved and s != reference and saved[s].ratio is not None and not saved[s].below:
                ax.plot([saved[s].n], [saved[s].target], marker="*", markersize=12, color=line[0].get_color(),
                        zorder=5)
        if saved:
            ax.axhline(saved[reference].target, color="grey", linestyle=":", linewidth=1,
                       label=f"{reference} at full size")
        ax.set(xscale="log", yscale="log", xlabel="training configurations", ylabel=f"test {unit}", title=title)
    axes[0, -1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside, not on, the curves
    fig.tight_layout()
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return f"![learning curve, {title}]({Path(png).name})"


def png_name(dataset: str, model: str, setting: str) -> str:
    """learning_DATASET_MODEL[_SETTING].png, the setting's punctuation dropped ("+F" -> "F")."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", setting).strip("_")
    return f"learning_{dataset}_{model}{'_' + slug if slug else ''}.png"
