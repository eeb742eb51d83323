"""Parameter overrides: a YAML of KIM parameters applied through kimpy, checked against ASE's KIM
calculator with the same parameters set, recorded in the table, and refused when wrong."""
import pandas as pd
import pytest
import yaml
from ase.calculators.kim import KIM
from ase.io import read

from kimlabel.cli import main
from kimlabel.potentials import load_potential_sets, resolve
from kimlabel.schema import read_metadata

SW = "SW_BalamaneHaliciogluTiller_1992_Si__MO_113686039439_004"


def test_overrides_change_the_model_as_ase_does_and_are_recorded(si_file, tmp_path):
    params = tmp_path / "refit.yaml"
    params.write_text(yaml.safe_dump({"A": 17.0, "lambda": [45.0]}))
    out = tmp_path / "t.parquet"
    assert main(["label", str(si_file), "--potentials", f"SW_Balamane,SW_Balamane@{params}", "--out", str(out),
                 "--quiet"]) == 0
    df = pd.read_parquet(out)
    assert (df.energy__SW_Balamane_refit - df.energy__SW_Balamane).abs().min() > 1e-3
    calc = KIM(SW)
    calc.set_parameters(A=[[0], [17.0]], **{"lambda": [[0], [45.0]]})
    for k, at in enumerate(read(si_file, ":")[:5]):
        at.calc = calc
        assert df.loc[k, "energy__SW_Balamane_refit"] == pytest.approx(at.get_potential_energy(), abs=1e-6)
    meta = read_metadata(out)
    assert meta["models"]["SW_Balamane_refit"] == f"{SW}@{params.resolve()}"
    assert meta["overrides"]["SW_Balamane_refit"]["sha256"] and "SW_Balamane" not in meta["overrides"]
    # the same command with another parameter file's contents is another run: --resume refuses
    params.write_text(yaml.safe_dump({"A": 18.0}))
    assert main(["label", str(si_file), "--potentials", f"SW_Balamane,SW_Balamane@{params}", "--out", str(out),
                 "--resume", "--quiet"]) == 2


@pytest.mark.parametrize("values, message", [({"Z": 1.0}, "has no parameter 'Z'"),
                                             ({"A": [1.0, 2.0]}, "parameter 'A' takes 1 value(s), got 2")])
def test_a_wrong_parameter_is_named_before_any_work(si_file, tmp_path, capsys, values, message):
    params = tmp_path / "bad.yaml"
    params.write_text(yaml.safe_dump(values))
    out = tmp_path / "t.parquet"
    assert main(["label", str(si_file), "--potentials", f"SW_Balamane@{params}", "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "t.parquet.parts").exists()


def test_parameters_the_model_refuses_are_named_with_the_models_reason(si_file, tmp_path, capsys):
    """kimpy's refresh reports no failure: the model's reason is read from the KIM API's log (before,
    the worker went on with a broken model and crashed)."""
    params = tmp_path / "neg.yaml"
    params.write_text(yaml.safe_dump({"B": -10.0}))
    out = tmp_path / "t.parquet"
    assert main(["label", str(si_file), "--potentials", f"Tersoff_T3@{params}", "--out", str(out), "--quiet"]) == 2
    message = "rejected the new parameters (refresh: Parameter B (Si-Si) may not be smaller than zero.)"
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "t.parquet.parts").exists()


def test_potentials_yaml_entries_with_parameters(tmp_path):
    (tmp_path / "refit.yaml").write_text("A: 17.0\n")
    registry = tmp_path / "potentials.yaml"
    registry.write_text(yaml.safe_dump({"mine": {"sw_refit": {"model": SW, "parameters": "refit.yaml"},
                                                 "EDIP": "EDIP_JustoBazantKaxiras_1998_Si__MO_958932894036_002"}}))
    pots = resolve("mine", load_potential_sets(registry))
    assert pots["sw_refit"] == f"{SW}@{(tmp_path / 'refit.yaml').resolve()}"
    (tmp_path / "refit.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="mine.sw_refit: parameter file"):
        load_potential_sets(registry)
