"""Reference energies and forces come from a frame's own calculator results, or not at all."""
import math

import numpy as np
import pytest
from ase.calculators.kim import KIM
from ase.calculators.singlepoint import SinglePointCalculator

import kimlabel
from kimlabel.inputs import has_foreign_results, reference_energy, reference_forces
from kimlabel.potentials import resolve

from conftest import rattled

SW = resolve("SW_Balamane")["SW_Balamane"]


def test_a_calculator_shared_by_several_atoms_labels_none_of_the_others(tmp_path, monkeypatch):
    """The usual ASE loop (one calculator attached to every frame) leaves the calculator holding the
    last frame's results: only that frame gets a reference energy; the others are left empty, with a
    warning naming them (the bug: every row carried the last frame's energy)."""
    monkeypatch.chdir(tmp_path)
    frames = rattled("Si", n=5, seed=7)
    calc = KIM(SW)
    true = []
    for at in frames:
        at.calc = calc
        true.append(at.get_potential_energy())
    assert np.ptp(true) > 0.05  # the cells really differ
    with pytest.warns(UserWarning, match=r"frame\(s\) 0, 1, 2, 3 of 5: the attached calculator's results belong"):
        df = kimlabel.label(frames, "SW_Balamane")
    assert df.energy_ref[:4].isna().all()
    assert df.energy_ref[4] == pytest.approx(true[4], abs=1e-9)
    assert df.energy__SW_Balamane.to_numpy() == pytest.approx(true, abs=1e-6)  # the EIP column is computed here


def test_cells_of_different_sizes_sharing_a_calculator_do_not_crash(tmp_path, monkeypatch):
    """With cells of different sizes the stale forces had another shape (an IndexError in a worker)."""
    monkeypatch.chdir(tmp_path)
    frames = rattled("Si", n=2, seed=1) + rattled("Si", n=2, seed=2, repeat=(2, 1, 1))
    calc = KIM(SW)
    for at in frames:
        at.calc = calc
        at.get_forces()
    assert [has_foreign_results(a) for a in frames] == [True, True, True, False]
    assert reference_forces(frames[0]) is None and reference_forces(frames[3]).shape == (16, 3)
    with pytest.warns(UserWarning, match=r"frame\(s\) 0, 1, 2 of 4"):
        df = kimlabel.label(frames, "SW_Balamane", forces=True)
    f = df.attrs["forces"]
    assert f[f.config_id < 3].fx_ref.isna().all() and f[f.config_id == 3].fx_ref.notna().all()


def test_frames_with_their_own_results_keep_them():
    frames = rattled("Si", n=3, seed=3)
    for k, at in enumerate(frames):
        at.calc = SinglePointCalculator(at, energy=-40.0 - k, forces=np.full((len(at), 3), 0.1 * k))
    assert [reference_energy(a) for a in frames] == [-40.0, -41.0, -42.0]
    assert reference_forces(frames[2])[0, 0] == pytest.approx(0.2)
    frames[1].positions[0, 0] += 0.01  # moved after its results were computed: they are stale
    assert math.isnan(reference_energy(frames[1])) and has_foreign_results(frames[1])
