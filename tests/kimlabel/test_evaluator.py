"""The Evaluator turns every failure into a status with its reason, in the KIM API's words where it has them."""
import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk

from kimlabel import resolve
from kimlabel.errors import ModelInitError
from kimlabel.evaluator import Evaluator, crashed_result
from kimlabel.inputs import from_atoms
from kimlabel.kimlog import KIMLog
from kimlabel.session import KIMModel


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the KIM API writes kim.log to the working directory
    return tmp_path


def test_statuses_and_reasons(in_tmp):
    ev = Evaluator(resolve("SW_Balamane"), forces=True)
    cases = [bulk("Si", "diamond", a=5.43), Atoms("Xe", positions=[[0, 0, 0]]),
             Atoms("Si", cell=np.diag([0.0, 5.0, 5.0]), pbc=True),
             Atoms("Si2", positions=[[0, 0, 0], [0.3, 0, 0]])]
    rows = [ev.evaluate(from_atoms(a, k))[0] for k, a in enumerate(cases)]
    assert [r["status__SW_Balamane"] for r in rows] == ["ok", "unsupported_species", "model_error", "above_limit"]
    assert [r["error__SW_Balamane"] for r in rows] == [None, None, "periodic images: singular periodic cell", None]
    assert np.isnan(rows[2]["energy__SW_Balamane"]) and rows[3]["energy__SW_Balamane"] > 400


def test_the_kim_log_gives_a_models_own_reason(in_tmp):
    """A parameter the model refuses: kimpy says nothing, the model's message is in kim.log."""
    log = KIMLog()
    params = in_tmp / "neg.yaml"
    params.write_text(yaml.safe_dump({"B": -1.0}))
    with pytest.raises(ModelInitError, match=r"\(refresh: Parameter B \(Si-Si\) may not be smaller than zero.\)"):
        KIMModel(resolve("Tersoff_T3")["Tersoff_T3"] + f"@{params}")
    assert log.errors() == ["refresh: Parameter B (Si-Si) may not be smaller than zero.",
                            "Model supplied Refresh() routine returned error."]  # the log's error lines, in order
    assert log.errors() == []  # read once


def test_a_crashed_models_entry_says_so():
    rows, forces = crashed_result(from_atoms(bulk("Si"), 0), "EDIP", True)
    assert rows[0] == {"energy__EDIP": rows[0]["energy__EDIP"], "status__EDIP": "model_error",
                       "error__EDIP": "the model's native code crashed the process"}
    assert np.isnan(forces[0]["fx__EDIP"]).all()
