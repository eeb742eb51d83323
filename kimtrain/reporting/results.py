"""Tables from a results folder: the metrics.json of every finished experiment run, kept (committed)
so that tables can be rebuilt, and experiments finished, on any machine."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kimlabel import write_atomic

from .tables import for_csv, results_markdown

START, END = "<!-- kimtrain-results:start -->", "<!-- kimtrain-results:end -->"


def load_results(folder) -> pd.DataFrame:
    """One row per kept run: its metrics with dataset, model, strategy (the run's label) and seed."""
    rows = []
    for path in sorted(Path(folder).rglob("metrics.json")):
        m = json.loads(path.read_text())
        if "dataset" not in m or "label" not in m:
            raise ValueError(f"{path}: not an experiment run kept by `kimtrain experiment --results`")
        rows.append({**m, "strategy": m["label"]})
    if not rows:
        raise ValueError(f"{folder}: no metrics.json found (run `kimtrain experiment ... --results {folder}`)")
    df = pd.DataFrame(rows)
    return df.sort_values(["dataset", "model", "seed"], kind="stable", ignore_index=True)


def write_tables(folder, readme=None) -> list[Path]:
    """FOLDER/results.md (Table 3 layout, mean (std) over seeds); with readme, the same tables replace
    the text between the kimtrain-results markers there. Returns the files written."""
    folder = Path(folder)
    df = load_results(folder)
    text = results_markdown(df, out=folder)
    for_csv(df).to_csv(folder / "results.csv", index=False)
    write_atomic(folder / "results.md", text)
    written = [folder / "results.csv", folder / "results.md"]
    if readme:
        readme = Path(readme)
        old = readme.read_text()
        if START not in old or END not in old:
            raise ValueError(f"{readme}: no {START} ... {END} markers to put the tables between")
        text = results_markdown(df, out=folder, by_config_type=False)  # the README keeps the main tables
        body = text.split("\n", 2)[2].replace("](learning_", f"]({folder.as_posix()}/learning_")  # plots
        head, rest = old.split(START, 1)
        write_atomic(readme, f"{head}{START}\n{body.strip()}\n{END}{rest.split(END, 1)[1]}")
        written.append(readme)
    return written
