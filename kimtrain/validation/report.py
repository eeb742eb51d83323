"""The validation table (CSV and markdown: one row per target, mean (std) over split seeds in the
markdown, relative errors against the DFT reference) and the phonon plots."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .references import PROPERTIES, references

def slug(target: str) -> str:
    """A target's file-name stem in OUT: `runs/x/seed0/mp` -> `runs_x_seed0_mp`."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", target).strip("_")


MD_COLUMNS = ["md_stable_300K", "md_fail_ps_300K", "md_stable_hot", "md_fail_ps_hot", "nve_drift_meV_atom_ps"]


def with_errors(df: pd.DataFrame) -> pd.DataFrame:
    """Adds `<property>_rel_dft` (relative error against the system's DFT reference) where one exists."""
    df = df.copy()
    for prop in PROPERTIES:
        if prop not in df:
            continue
        ref = df.system.map(lambda s: references(s).get("dft", {}).get(prop, {}).get("value"))
        df[f"{prop}_rel_dft"] = (df[prop] - ref.astype(float)) / ref.astype(float)
    return df


def _cell(values: pd.Series, fmt: str) -> str:
    """mean (std) of the finite values, in format fmt (".3f", ".1e")."""
    v = values.dropna().astype(float)
    if not len(v):
        return "–"
    return f"{v.mean():{fmt}}" + (f" ({v.std(ddof=0):{fmt}})" if len(v) > 1 else "")


def markdown(df: pd.DataFrame) -> str:
    lines = []
    for system, part in df.groupby("system", sort=False):
        refs = references(system)
        props = [p for p in PROPERTIES if p in part and part[p].notna().any()]
        head = ["target", "n"] + [f"{p} ({PROPERTIES[p][1]})" for p in props] + ["MD 300 K stable", "MD hot stable",
                                                                                "first failure (ps)", "NVE drift (meV/atom/ps)"]
        lines += [f"## {system}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for kind in ("dft", "experiment"):
            vals = [refs.get(kind, {}).get(p, {}).get("value") for p in props]
            lines.append(f"| {kind.upper() if kind == 'dft' else 'experiment'} | | "
                         + " | ".join("–" if v is None else f"{v:g}" for v in vals) + " | | | | |")
        for group, g in part.groupby("group", sort=False):
            cells = [group, str(len(g))]
            for p in props:
                cell = _cell(g[p], ".3f" if p in ("a0", "nu_gamma_max", "nu_max", "E_vac") else ".1f")
                rel = g.get(f"{p}_rel_dft")
                if rel is not None and rel.notna().any():
                    cell += f" [{rel.mean() * 100:+.1f} %]"
                cells.append(cell)
            for col in ("md_stable_300K", "md_stable_hot"):
                cells.append(", ".join(g[col].dropna().astype(str)) if col in g else "–")
            fails = pd.concat([g[c] for c in ("md_fail_ps_300K", "md_fail_ps_hot") if c in g]).dropna()
            cells.append(f"{fails.min():.2f}" if len(fails) else "none")
            cells.append(_cell(g["nve_drift_meV_atom_ps"], ".1e") if "nve_drift_meV_atom_ps" in g else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("[x %]: relative error against the DFT reference; n: rows (split seeds) averaged, std in brackets. "
                 "MD stable: runs without a pair closer than 0.6 x the nearest-neighbour distance and with a finite "
                 "energy, per seed row.")
    return "\n".join(lines) + "\n"


def plot_phonons(rows: list[dict], out: Path):
    """OUT/phonons_<system>.png: each target's dispersion (one seed per group) and DOS, overlaid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by_system = {}
    for r in rows:
        npz = out / (slug(r["target"]) + ".phonons.npz")
        if npz.exists() and r["group"] not in {x["group"] for x in by_system.get(r["system"], [])}:
            by_system.setdefault(r["system"], []).append({**r, "npz": npz})
    for system, items in by_system.items():
        fig, (ax, ax_dos) = plt.subplots(1, 2, figsize=(10, 4.5 + 0.3 * ((len(items) + 3) // 4)), gridspec_kw={"width_ratios": [3, 1]}, sharey=True)
        cmap = plt.cm.tab10 if len(items) <= 10 else plt.cm.tab20
        colours = [cmap(k % cmap.N) for k in range(len(items))]
        for item, colour in zip(items, colours):
            d = np.load(item["npz"])
            x, f, breaks = d["distances"], d["frequencies"], d["breaks"]
            start = 0
            for k, stop in enumerate(breaks):
                lines = ax.plot(x[start:stop], f[start:stop], color=colour, lw=0.9)
                if k == 0:
                    lines[0].set_label(item["group"])
                start = stop
            ax_dos.plot(d["dos"] / d["dos"].max(), d["dos_frequencies"], color=colour, lw=0.9)
        ticks = [x[0]] + [x[b - 1] for b in breaks]
        ax.set_xticks(ticks, _tick_labels())
        for t in ticks:
            ax.axvline(t, color="0.8", lw=0.5)
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_ylabel("frequency (THz)")
        ax.set_title(f"{system}: phonon dispersion")
        fig.legend(fontsize=7, loc="lower center", ncol=min(len(items), 4), frameon=False)
        ax_dos.set_xlabel("DOS (normalised)")
        fig.tight_layout(rect=(0, 0.06 * ((len(items) + 3) // 4), 1, 1))
        fig.savefig(out / f"phonons_{system}.png", dpi=130)
        plt.close(fig)


def _tick_labels() -> list[str]:
    """Γ X U|K Γ L: a break between two paths shares one tick."""
    from .phonons import PATH
    labels = [PATH[0][0][0]]
    for i, seg in enumerate(PATH):
        for j, (name, _) in enumerate(seg[1:] if i == 0 else seg):
            if i > 0 and j == 0:
                labels[-1] = f"{labels[-1]}|{name}"
            else:
                labels.append(name)
    return labels


def write_report(rows: list[dict], out: Path) -> pd.DataFrame:
    df = with_errors(pd.DataFrame([{k: v for k, v in r.items() if k not in ("done",)} for r in rows]))
    df.to_csv(out / "validation.csv", index=False)
    (out / "validation.md").write_text(markdown(df))
    plot_phonons(rows, out)
    return df
