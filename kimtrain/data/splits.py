"""Reproducible pool/train/val/test splits as CSV (config_id, mark), numbered like kimlabel tables."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MARKS = ("pool", "train", "val", "test")


def _counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to round(n * total fraction), by largest remainder."""
    raw = {k: n * f for k, f in fractions.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    target = int(round(n * sum(fractions.values())))
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: target - sum(counts.values())]:
        counts[k] += 1
    return counts


def make_split(n: int, seed: int, fractions: dict[str, float], groups=None, n_extra_pool: int = 0) -> pd.DataFrame:
    """Assign marks to configurations 0..n-1 (shuffled by seed, within groups when given);
    configurations n..n+n_extra_pool-1 (an unlabelled pool file) are all pool."""
    if any(f < 0 for f in fractions.values()) or sum(fractions.values()) > 1 + 1e-9:
        raise ValueError(f"split fractions must be >= 0 and sum to at most 1, got {fractions}")
    rng = np.random.default_rng(seed)
    marks = np.full(n, "unused", dtype=object)
    groups = np.zeros(n, dtype=int) if groups is None else np.asarray(groups, dtype=object)
    for g in sorted(set(groups), key=str):
        members = np.flatnonzero(groups == g)
        members = members[rng.permutation(len(members))]
        start = 0
        for mark, c in _counts(len(members), fractions).items():
            marks[members[start:start + c]] = mark
            start += c
    ids = np.arange(n + n_extra_pool)
    return pd.DataFrame({"config_id": ids, "mark": np.concatenate([marks, ["pool"] * n_extra_pool])})


def read_split(path, n_configs: int | None = None) -> pd.DataFrame:
    """Read a split CSV, checking its config_ids cover 0..n_configs-1 exactly."""
    df = pd.read_csv(path)
    if list(df.columns[:2]) != ["config_id", "mark"]:
        raise ValueError(f"{path}: expected columns config_id,mark")
    bad = set(df.mark) - set(MARKS) - {"unused"}
    if bad:
        raise ValueError(f"{path}: unknown marks {sorted(bad)}")
    if n_configs is not None and (len(df) != n_configs or not (np.sort(df.config_id.values) == np.arange(n_configs)).all()):
        raise ValueError(f"{path}: split has {len(df)} configurations (ids {df.config_id.min()}..{df.config_id.max()}) "
                         f"but the data has {n_configs}; was it made for these files in this order?")
    return df.sort_values("config_id", ignore_index=True)


def write_split(df: pd.DataFrame, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def indices(split: pd.DataFrame, mark: str) -> np.ndarray:
    return split.config_id.values[split.mark.values == mark]


def train_counts(sizes, n_train: int) -> list[int]:
    """Training-set sizes as counts: integers are counts, floats in (0, 1] fractions of the train
    marks (1.0: all of them); each must leave at least one configuration and at most all of them."""
    counts = []
    for s in sizes:
        n = int(round(s * n_train)) if isinstance(s, float) and 0 < s <= 1 else s
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= n_train:
            raise ValueError(f"train_sizes: {s!r} is not a count in 1..{n_train} or a fraction in (0, 1]")
        counts.append(n)
    return sorted(set(counts))


def nested_subset(split: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The split with only n of its train marks kept (the rest 'unused'): the first n of one seeded
    permutation, so smaller subsets lie inside larger ones. Pool, val and test are unchanged."""
    train = indices(split, "train")
    order = np.random.default_rng([seed, 7]).permutation(train)
    out = split.copy()
    out.loc[out.config_id.isin(order[n:]), "mark"] = "unused"
    return out
