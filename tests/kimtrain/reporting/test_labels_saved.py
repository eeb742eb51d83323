"""DFT labels saved, read off learning curves: exact on power laws, bounded below the smallest
point, 'not reached' where a curve never gets there."""
import numpy as np
import pandas as pd
import pytest

from kimtrain.reporting.labels_saved import labels_saved
from kimtrain.reporting.curves import learning_curve

SIZES = [10, 25, 50, 100, 200]


def test_the_crossing_of_two_power_laws_is_found_exactly():
    target = 2.0 * 200 ** -0.5  # the baseline 2 n^-1/2 at its full size
    s = labels_saved(SIZES, [1.0 * n ** -0.5 for n in SIZES], target, 200)
    assert s.n == pytest.approx(50.0) and s.ratio == pytest.approx(4.0) and str(s) == "4.0x"
    s = labels_saved(SIZES, [1.5 * n ** -0.7 for n in SIZES], target, 200)  # crossing between grid points
    n_exact = (1.5 / target) ** (1 / 0.7)
    assert s.n == pytest.approx(n_exact, rel=1e-12) and s.ratio == pytest.approx(200 / n_exact)


def test_below_the_smallest_point_and_never():
    target = 2.0 * 200 ** -0.5
    assert str(labels_saved(SIZES, [0.05] * 5, target, 200)) == "> 20.0x"
    assert str(labels_saved(SIZES, [3.0 * n ** -0.5 for n in SIZES], target, 200)) == "not reached"
    assert labels_saved(SIZES, [2.0 * n ** -0.5 for n in SIZES], target, 200).ratio == pytest.approx(1.0)


def test_the_learning_curve_table_has_the_row(tmp_path):
    rows = [{"n_train": n, "strategy": s, "seed": seed, "test_mae_per_atom": a * n ** -0.5 * (1 + 0.01 * seed)}
            for n in SIZES for seed in (0, 1, 2) for s, a in (("baseline", 2.0), ("mp", 1.0), ("la", 3.0))]
    lines = learning_curve(pd.DataFrame(rows), "toy", tmp_path / "curve.png")
    row = next(line for line in lines if line.startswith("| DFT labels saved, energy"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert cells == ["(reference)", "not reached", "4.0x"]  # baseline, la, mp in table order
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    assert not any("forces" in line for line in lines)  # no force row without force training


def test_a_model_without_its_own_curve_gets_none(tmp_path):
    """The best EIP's rows belong to the dataset and come at every size another model's curve used;
    a model trained at the full size only gets its table, not a learning curve."""
    from kimtrain.reporting.curves import BEST_EIP, EIP_MODEL
    from kimtrain.reporting.tables import results_markdown
    rows = [{"dataset": "toy", "model": "cgcnn", "strategy": s, "seed": seed, "n_train": 200,
             "test_mae": 1.0, "test_mae_per_atom": a} for s, a in (("baseline", 0.1), ("mp", 0.05)) for seed in (0, 1)]
    rows += [{"dataset": "toy", "model": EIP_MODEL, "strategy": BEST_EIP, "seed": seed, "n_train": n,
              "test_mae": 2.0, "test_mae_per_atom": 0.2} for n in SIZES for seed in (0, 1)]
    text = results_markdown(pd.DataFrame(rows), out=tmp_path)
    assert "## toy / cgcnn" in text and "| mp | " in text
    assert "Learning curve" not in text and not list(tmp_path.glob("*.png"))


def test_variant_curves_are_drawn_per_setting_against_their_own_baseline(tmp_path):
    """'+F' variants at several sizes form their own curve, referenced to 'baseline +F', with force
    rows and a second panel; energy-only runs at the full size only form none; an ablation
    ('mp(EIP F) +F', a setting of its own at one size) is left out of the curves."""
    from kimtrain.reporting.curves import BEST_EIP, EIP_MODEL
    from kimtrain.reporting.tables import results_markdown
    row = {"dataset": "toy", "model": "m", "test_mae": 1.0, "force_weight": 1.0}
    rows = [{**row, "strategy": f"{s} +F", "base_strategy": s, "seed": seed, "n_train": n,
             "test_mae_per_atom": a * n ** -0.5, "test_force_mae": f * n ** -0.5}
            for n in SIZES for seed in (0, 1) for s, a, f in (("baseline", 2.0, 4.0), ("mp", 1.0, 3.0))]
    rows += [{**row, "strategy": s, "base_strategy": "mp" if "mp" in s else s.split()[0], "seed": seed,
              "n_train": 200, "test_mae_per_atom": 0.1, "test_force_mae": 0.3,
              "force_weight": 1.0 if "+F" in s else None}
             for s in ("baseline", "mp", "mp(EIP F) +F", "auto +F") for seed in (0, 1)]
    rows += [{**row, "model": EIP_MODEL, "strategy": BEST_EIP, "seed": seed, "n_train": n,
              "test_mae_per_atom": 0.5, "test_force_mae": 0.9} for n in SIZES for seed in (0, 1)]
    text = results_markdown(pd.DataFrame(rows), out=tmp_path)
    assert text.count("Learning curve") == 2  # energy and force tables of the one "+F" setting
    assert "| n_train | baseline +F | mp +F | auto +F | best EIP |" in text
    assert "mp(EIP F)" not in text.split("Learning curve")[1]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
             for line in text.splitlines() if line.startswith("| DFT labels saved")}
    # energy: mp 1 n^-1/2 reaches baseline +F's 2 200^-1/2 at n = 50; forces: 3 n^-1/2 reaches 4 200^-1/2 at 112.5
    assert cells["DFT labels saved, energy"][:3] == ["(reference)", "4.0x", "(one size)"]
    assert cells["DFT labels saved, forces"][:3] == ["(reference)", f"{200 / 112.5:.1f}x", "(one size)"]
    assert [p.name for p in tmp_path.glob("*.png")] == ["learning_toy_m_F.png"]
    # at each size, the size at which baseline +F reaches mp +F's error: 1 n^-1/2 = 2 m^-1/2 at m = 4n
    energy = text.split("reaches each strategy's mean test per-atom MAE")[1].split("\n\n")[1].splitlines()
    assert energy[0] == "| n_train | mp +F |" and energy[2:] == [
        "| 10 | 40 (4.0x) |", "| 25 | 100 (4.0x) |", "| 50 | 200 (4.0x) |", "| 100 | > 200 |", "| 200 | > 200 |"]
