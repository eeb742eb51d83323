"""kimlabel merge: shards of one run become the unsharded table, and anything else is refused by name."""
import pandas as pd
import pytest

from kimlabel import LabelJob, resolve
from kimlabel.merge import merge


@pytest.fixture
def shards(si_file, tmp_path):
    pots = resolve("SW_Balamane,EDIP")
    paths = []
    for i in range(3):
        out = tmp_path / f"part{i}.parquet"
        LabelJob([si_file], pots, out, forces=True, shard=(i, 3), progress=False).run()
        paths.append(out)
    whole = tmp_path / "whole.parquet"
    LabelJob([si_file], pots, whole, forces=True, progress=False).run()
    return paths, whole


def test_merged_shards_equal_the_unsharded_table(shards, tmp_path):
    paths, whole = shards
    df = merge(paths, tmp_path / "merged.parquet")
    ref = pd.read_parquet(whole)
    assert len(df) == 60 and pd.read_parquet(tmp_path / "merged.parquet").equals(ref)
    forces = pd.read_parquet(tmp_path / "merged.forces.parquet")
    assert forces.equals(pd.read_parquet(tmp_path / "whole.forces.parquet"))


def test_a_missing_or_repeated_shard_is_refused(shards, tmp_path):
    paths, _ = shards
    with pytest.raises(ValueError, match=r"20 configurations missing \(config_id \[2, 5, 8"):
        merge(paths[:2], tmp_path / "m.parquet")
    with pytest.raises(ValueError, match="appear in more than one shard"):
        merge(paths + [paths[0]], tmp_path / "m.parquet")
    with pytest.raises(ValueError, match="no shard tables"):
        merge([], tmp_path / "m.parquet")


def test_shards_of_another_run_are_refused(shards, si_file, tmp_path):
    paths, _ = shards
    other = tmp_path / "other.parquet"
    LabelJob([si_file], resolve("SW_Balamane"), other, forces=True, shard=(2, 3), progress=False).run()
    with pytest.raises(ValueError, match=f"{other}: models differs from {paths[0]}"):
        merge(paths[:2] + [other], tmp_path / "m.parquet")
