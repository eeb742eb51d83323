"""`kimlabel refit` with KLIFF on the demo set: a small parameter set, few iterations."""
import json

import pandas as pd
import pytest
import yaml

from kimlabel.cli import main

from conftest import REPO

DEMO = [str(REPO / "data" / "si_demo_dft.extxyz.gz"), str(REPO / "data" / "si_demo_pool.extxyz.gz")]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    from kimtrain.cli import main as kimtrain
    path = tmp_path_factory.mktemp("refit") / "split.csv"
    assert kimtrain(["split", DEMO[0], "--pool-file", DEMO[1], "--seed", "0", "--pool", "0.5", "--train", "0.2",
                     "--val", "0.1", "--test", "0.2", "--out", str(path)]) == 0
    return path


def test_refit_lowers_the_train_error_and_its_file_is_a_labeller(split, tmp_path, capsys):
    out = tmp_path / "sw.yaml"
    capsys.readouterr()
    # the DFT file alone: the split's rows after its configurations are the pool file's
    assert main(["refit", "SW_Balamane", "--data", DEMO[0], "--split", str(split), "--params", "A,lambda",
                 "--maxiter", "10", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train_mae_per_atom_after"] < 0.9 * report["train_mae_per_atom_before"]
    fitted = yaml.safe_load(out.read_text())
    assert set(fitted) == {"A", "lambda"} and fitted["A"] != [16.319722781255]
    table = tmp_path / "t.parquet"
    assert main(["label", DEMO[0], "--potentials", f"SW_Balamane,SW_Balamane@{out}", "--out", str(table),
                 "--quiet"]) == 0
    df = pd.read_parquet(table)
    assert (df.energy__SW_Balamane_sw != df.energy__SW_Balamane).all()
    assert main(["refit", "SW_Balamane", "--data", *DEMO, "--split", str(split), "--out", str(out)]) == 2  # exists


def test_cutoffs_are_never_fitted(split, tmp_path, capsys):
    assert main(["refit", "SW_Balamane", "--data", *DEMO, "--split", str(split), "--params", "A,cutoff",
                 "--out", str(tmp_path / "x.yaml")]) == 2
    assert "cutoff sets SW_BalamaneHaliciogluTiller_1992_Si__MO_113686039439_004's cutoff" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_a_simulator_model_is_refused_as_such(split, tmp_path, capsys):
    assert main(["refit", "TMOD", "--data", *DEMO, "--split", str(split), "--out", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert "TMOD (Sim_LAMMPS_ModifiedTersoff_KumagaiIzumiHara_2007_Si__SM_773333226968_000)" in err and "is a KIM simulator model" in err
    assert "portable models only" in err and "is it installed" not in err


def test_a_split_of_other_data_is_refused(split, tmp_path, capsys):
    short = tmp_path / "short.csv"
    pd.read_csv(split).head(100).to_csv(short, index=False)
    assert main(["refit", "SW_Balamane", "--data", DEMO[0], "--split", str(short), "--params", "A",
                 "--out", str(tmp_path / "x.yaml")]) == 2
    assert "100 rows for 400 configurations in the data" in capsys.readouterr().err


def test_keep_signs_holds_a_parameter_at_zero_where_the_free_fit_crosses_it(split, tmp_path, capsys):
    """SW_Balamane's cos(theta0) is -1/3; a free fit of every parameter takes it above 0 within 20
    iterations, a fit with --keep-signs stops it at 0 and keeps every other sign too."""
    from kimlabel.parameters import parameter_index
    from kimlabel.potentials import resolve
    from kimlabel.session import KIMModel
    model = KIMModel(resolve("SW_Balamane")["SW_Balamane"]).model
    published = {k: model.get_parameter_double(i, 0) for k, (i, _, _) in parameter_index(model).items()}
    assert published["costheta0"] == -1 / 3
    fits = {}
    for name, extra in (("free", []), ("signs", ["--keep-signs"])):
        out = tmp_path / f"{name}.yaml"
        capsys.readouterr()
        assert main(["refit", "SW_Balamane", "--data", DEMO[0], "--split", str(split), "--maxiter", "20",
                     "--out", str(out), *extra]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["keep_signs"] == bool(extra)
        assert report["train_mae_per_atom_after"] < 0.5 * report["train_mae_per_atom_before"]
        fits[name] = {k: v[0] for k, v in yaml.safe_load(out.read_text()).items()}
    assert fits["free"]["costheta0"] > 0.01
    assert fits["signs"]["costheta0"] == 0.0
    for k, v in fits["signs"].items():
        assert v * published[k] >= 0, (k, v, published[k])
