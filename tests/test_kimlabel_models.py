"""kimlabel against independent references: ASE's KIM calculator, finite differences, history."""
import pytest
from ase.build import bulk, diamond100
from ase.calculators.kim import KIM

import kimlabel
from kimlabel.registry import resolve
from kimlabel.schema import energy_col, force_cols, status_col

from conftest import agau_cells, rattled

def slab_outside_cell():
    """A (100) slab periodic in x, y only, shifted out of its cell along z."""
    slab = diamond100("Si", size=(2, 2, 6), vacuum=3.0, a=5.43)
    slab.pbc = (True, True, False)
    slab.positions[:, 2] += 5.0
    slab.rattle(0.05, seed=0)
    return slab


SETS = {
    "si": rattled("Si", n=3, seed=2) + [bulk("Si", "diamond", a=5.43), slab_outside_cell()],
    "al": rattled("Al", "fcc", a=4.05, n=3, seed=3) + [bulk("Al", "fcc", a=4.05)],
    "agau": agau_cells(3, seed=4),
}


@pytest.mark.parametrize("system", sorted(SETS))
def test_energies_equal_ase_kim_calculator(system):
    frames = SETS[system]
    df = kimlabel.label(frames, system)
    for name, kim_id in resolve(system).items():
        calc = KIM(kim_id)
        for k, at in enumerate(frames):
            ref = at.copy()
            ref.calc = calc
            assert df.loc[k, status_col(name)] == "ok"
            assert abs(df.loc[k, energy_col(name)] - ref.get_potential_energy()) < 1e-6, (name, k)


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


def test_models_listing_reads_species_from_kim_api():
    from kimlabel.registry import models_for_species
    si = {m["kim_id"] for m in models_for_species(["Si"])}
    assert set(resolve("si").values()) <= si
    assert not any("_Al__" in k for k in si)
    agau = {m["kim_id"] for m in models_for_species(["Ag", "Au"])}
    assert set(resolve("agau").values()) <= agau
    assert all("Si" not in m["species"] or "Ag" in m["species"] for m in models_for_species(["Ag", "Au"]))
