"""Tables people read: experiment results (paper Table 3), their learning curves and per-config-type errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..strategies import names as strategy_names
from .curves import EIP_MODEL, learning_curve, mean_std, png_name, settings


def for_csv(df: pd.DataFrame) -> pd.DataFrame:
    """results rows with the nested by_config_type metrics as JSON text (one CSV cell)."""
    if "by_config_type" not in df:
        return df
    return df.assign(by_config_type=[v if isinstance(v, str) or v is None or v != v else json.dumps(v)
                                      for v in df.by_config_type])


def config_type_table(g: pd.DataFrame, order: list) -> list[str]:
    """Test per-atom energy MAE (eV/atom) and force MAE (eV/Å) per config_type (columns) and
    strategy (rows), mean over seeds; empty where no run recorded them."""
    if "by_config_type" not in g:
        return []
    cells = {}
    for strategy, by in zip(g.strategy, g.by_config_type):
        by = json.loads(by) if isinstance(by, str) else by
        if not isinstance(by, dict) or "test" not in by:
            continue
        for ctype, m in by["test"].items():
            cells.setdefault((strategy, ctype), []).append((m.get("mae_per_atom"), m.get("force_mae")))
    if not cells:
        return []
    types = sorted({t for _, t in cells})
    lines = ["Test errors per config_type: per-atom energy MAE (eV/atom) / force MAE (eV/Å), mean over seeds.", "",
             "| strategy | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
    for strategy in [s for s in order if any((s, t) in cells for t in types)]:
        row = []
        for t in types:
            v = np.array([[np.nan if x is None else x for x in pair] for pair in cells.get((strategy, t), [])])
            row.append("" if not len(v) else f"{np.nanmean(v[:, 0]):.4f}" + (
                f" / {np.nanmean(v[:, 1]):.3f}" if np.isfinite(v[:, 1]).any() else ""))
        lines.append(f"| {strategy} | " + " | ".join(row) + " |")
    return lines + [""]


def results_markdown(df: pd.DataFrame, quick: bool = False, out=None, by_config_type: bool = True) -> str:
    """Table 3-style markdown: config MAE (eV) and per-atom MAE (eV/atom), mean (std) over seeds,
    and the change of per-atom MAE against the baseline on the same split seeds. Where runs have
    several training-set sizes, the table is for the largest, followed by a learning-curve table per
    training setting (plain strategies, "+F" variants...; with `out`, a log-log plot
    OUT/learning_DATASET_MODEL[_SETTING].png); with by_config_type, the test
    errors per config_type of the runs that recorded them."""
    lines = ["# kimtrain experiment results", "",
             f"{'QUICK run (few epochs, small pool): for testing the pipeline, not for conclusions. ' if quick else ''}"
             f"Seeds: {sorted(df.seed.unique().tolist())}; test-set metrics of the best-validation checkpoint.", ""]
    eip_rows = df[df.model == EIP_MODEL]
    for (ds, model), every in df[df.model != EIP_MODEL].groupby(["dataset", "model"], sort=False):
        eips = eip_rows[eip_rows.dataset == ds]  # the dataset's, at the sizes this model was trained at
        if "n_train" in every:
            eips = eips[eips.n_train.isin(every.n_train)]
        every = pd.concat([every, eips], ignore_index=True)
        g = every[every.n_train == every.n_train.max()] if "n_train" in every else every
        baseline = g[g.strategy == "baseline"].set_index("seed").test_mae_per_atom
        forces = bool("test_force_mae" in g and g.test_force_mae.notna().any())  # a column only where runs have them
        lines += [f"## {ds} / {model}", "",
                  "| strategy | config MAE (eV) | per-atom MAE (eV/atom) | " + "force MAE (eV/Å) | " * forces
                  + "vs baseline | LA: classifier acc. / chance | LA: selected labels | alpha (LA), EIP (delta, best EIP) "
                  "or candidate (auto) |",
                  "|---|---|---|---|---|---|---|" + "---|" * forces]
        all_seeds = set(g.seed)
        order = [k for k in strategy_names() if k in set(g.strategy)]
        for strategy in order + [k for k in g.strategy.unique() if k not in order]:
            s = g[g.strategy == strategy]
            seeds = sorted(set(s.seed))
            name = (strategy if set(seeds) == all_seeds
                    else f"{strategy} (seed{'s' * (len(seeds) > 1)} {','.join(map(str, seeds))} only)")
            base = baseline.reindex(s.seed).mean()  # the baseline on the same split seeds
            change = (s.test_mae_per_atom.mean() - base) / base * 100 if strategy != "baseline" else np.nan
            acc = (f"{s.classifier_val_accuracy.mean():.2f} / {s.classifier_val_chance.mean():.2f}"
                   if "classifier_val_accuracy" in s and s.classifier_val_accuracy.notna().any() else "")
            sel = f"{s.n_selected.mean():.0f}" if "n_selected" in s and s.n_selected.notna().any() else ""
            alpha = ",".join(f"{a:g}" for a in s.alpha.dropna()) if "alpha" in s else ""
            if not alpha and "eip" in s and s.eip.notna().any():  # delta: the EIP chosen on validation
                alpha = ",".join(s.eip.dropna())
            if "auto_choice" in s and s.auto_choice.notna().any():  # auto: the candidate chosen, with its own choice
                eips = s.eip if "eip" in s else pd.Series([None] * len(s), index=s.index)
                alpha = ",".join(c + (f" ({e})" if isinstance(e, str) else "")
                                 for c, e in zip(s.auto_choice.dropna(), eips[s.auto_choice.notna()]))
            f_mae = s.test_force_mae.dropna() if forces else []
            f_cell = (f"{mean_std(f_mae) if len(f_mae) else ''} | ") * forces
            lines.append(f"| {name} | {mean_std(s.test_mae)} | {mean_std(s.test_mae_per_atom)} | {f_cell}"
                         f"{'' if np.isnan(change) else f'{change:+.1f} %'} | {acc} | {sel} | {alpha} |")
        lines.append("")
        if by_config_type:
            lines += config_type_table(g, order + [k for k in g.strategy.unique() if k not in order])
        if "n_train" in every:
            for setting, rows in settings(every).items():
                lines += learning_curve(rows, f"{ds} / {model}" + (f", {setting}" if setting else ""),
                                        out and Path(out) / png_name(ds, model, setting))
    return "\n".join(lines)
