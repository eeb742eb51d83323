"""Vacuum-padded cells: a cluster in a huge periodic cell is computed as in a small one, at a cost
that follows its atoms (the time is measured in bench/vacuum.py)."""
import numpy as np
import pytest
from ase import Atoms

import kimlabel
from kimlabel.potentials import resolve
from kimlabel.schema import energy_col, force_cols, status_col


def boxed(atoms, size):
    at = atoms.copy()
    at.set_cell([size] * 3)
    at.pbc = True
    at.center()
    return at


def test_a_dimer_in_a_huge_cell_equals_the_same_dimer_in_a_small_cell_for_every_si_eip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dimer = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0.4, 0.1]])
    across = Atoms("Si2", positions=dimer.positions - dimer.positions[1] + [1.0, 0.5, 0.5], cell=[1e4] * 3,
                   pbc=True)  # the bond crosses the cell's face at x = 0
    frames = [boxed(dimer, 20.0), boxed(dimer, 1e4), across, boxed(Atoms("Si"), 1e4)]
    df = kimlabel.label(frames, "si", forces=True, jobs=2)
    forces = df.attrs["forces"]
    names = list(resolve("si"))
    assert len(names) == 10
    for name in names:
        assert (df[status_col(name)] == "ok").all(), (name, df.filter(like=name).to_dict("records"))
        e = df[energy_col(name)].to_numpy()
        assert e[1] == pytest.approx(e[0], abs=1e-9) and e[2] == pytest.approx(e[0], abs=1e-9), name
        assert e[3] == 0.0, name  # an isolated atom: the EIP's zero
        f = [forces[forces.config_id == k][force_cols(name)].to_numpy() for k in range(3)]
        assert np.abs(f[0]).max() > 1e-3, name
        np.testing.assert_allclose(f[1], f[0], atol=1e-9, err_msg=name)
        np.testing.assert_allclose(f[2], f[0], atol=1e-9, err_msg=name)
