"""LabelJob: the table, its summary, and refusals before any work (the CLI's resume and SIGKILL
cases are in test_label_cli.py)."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from kimlabel import LabelJob, resolve
from kimlabel.job import conform, differences
from kimlabel.schema import table_schema


def test_summary_groups_model_errors_by_reason(tmp_path):
    frames = [bulk("Si", "diamond", a=5.43), Atoms("Si2", positions=[[0, 0, 0], [0, 0, 0]]),
              Atoms("Si2", positions=[[1, 1, 1], [1, 1, 1]], cell=[6, 6, 6], pbc=True), bulk("Si", "diamond", a=5.5)]
    path = tmp_path / "in.extxyz"
    write(path, frames, format="extxyz")
    summary = LabelJob([path], resolve("SW_Balamane,EDIP"), tmp_path / "t.parquet", progress=False).run()
    assert summary["status"]["EDIP"] == {"ok": 2, "model_error": 2}
    assert summary["errors"] == {name: {"atoms closer than 1e-5 Å": [1, 2]} for name in ("SW_Balamane", "EDIP")}
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.column("error__EDIP").to_pylist() == [None, "atoms closer than 1e-5 Å", "atoms closer than 1e-5 Å", None]


def test_an_existing_table_is_never_replaced_without_resume(si_file, tmp_path):
    out = tmp_path / "t.parquet"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="exists: choose another --out"):
        LabelJob([si_file], resolve("EDIP"), out, progress=False).run()
    assert out.read_bytes() == b"precious"


def test_differences_name_what_changed():
    before = {"models": {"EDIP": "x"}, "inputs": [{"path": "a.xyz", "sha256": "1"}], "forces": False}
    now = {"models": {"EDIP": "x", "SW": "y"}, "inputs": [{"path": "a.xyz", "sha256": "2"}], "forces": True}
    assert differences(before, now) == "models (EDIP -> EDIP, SW), inputs (same names, other contents), forces (False -> True)"


def test_parts_written_before_the_error_columns_are_conformed():
    schema = table_schema(["EDIP"])
    old = pa.table({f.name: pa.nulls(2, f.type) for f in schema if not f.name.startswith("error__")})
    new = conform(old, schema)
    assert new.schema.names == schema.names and new.column("error__EDIP").null_count == 2
