"""One KIM portable model driven directly through kimpy (no ASE calculator in the hot path).

A KIMModel is created once and reused for many configurations: the kimpy model object, its
compute arguments and its neighbour list live as long as the KIMModel. The model is never
refreshed between calls, so history-dependent drivers (MEAM_LAMMPS) give the same energy for the
same configuration whatever was evaluated before.
"""
from __future__ import annotations

import ctypes
import math
import multiprocessing
import threading
import os

import numpy as np

from .errors import ModelInitError, UnsupportedSpecies  # noqa: F401 (raised here, imported from here)

ENERGY_LIMIT = 200.0  # eV/atom: larger |E|/atom is flagged above_limit


def _kimpy():
    try:
        import kimpy
    except ImportError as err:  # pragma: no cover - install problem, message is the point
        raise ModelInitError("kimpy is not installed: run `make install` (needs libkim-api-dev)") from err
    return kimpy


class KIMModel:
    """A KIM portable model (units: A, eV) evaluated on ASE-like arrays."""

    def __init__(self, kim_id: str):
        """kim_id: a KIM ID, or KIM_ID@params.yaml for parameter overrides (kimlabel.parameters)."""
        from .parameters import apply_overrides, split_overrides
        kimpy = _kimpy()
        self.kim_id = kim_id
        base, overrides = split_overrides(kim_id)
        self.model = self._create(kimpy, base)
        if overrides:
            apply_overrides(self.model, base, overrides)
        self.species = self._species_codes(kimpy, self.model)
        self.influence = float(self.model.get_influence_distance())
        cutoffs, hints = self.model.get_neighbor_list_cutoffs_and_hints()
        self.cutoffs = np.asarray(cutoffs, dtype=np.double)
        self.padding_needs_neigh = not bool(np.all(hints))
        self._args = {}

    @staticmethod
    def _create(kimpy, kim_id: str):
        """The kimpy model object, in A/eV units."""
        try:
            accepted, model = kimpy.model.create(
                kimpy.numbering.zeroBased, kimpy.length_unit.A, kimpy.energy_unit.eV,
                kimpy.charge_unit.e, kimpy.temperature_unit.K, kimpy.time_unit.ps, kim_id)
        except RuntimeError as err:
            raise ModelInitError(f"KIM model {kim_id} could not be created (is it installed? "
                                 f"see `kimlabel models`): {err}") from err
        if not accepted:
            raise ModelInitError(f"KIM model {kim_id} does not accept units A/eV")
        return model

    @staticmethod
    def _species_codes(kimpy, model) -> dict[str, int]:
        codes = {}
        for i in range(kimpy.species_name.get_number_of_species_names()):
            name = kimpy.species_name.get_species_name(i)
            supported, code = model.get_species_support_and_code(name)
            if supported:
                codes[str(name)] = int(code)
        return codes

    @classmethod
    def supported_species_of(cls, kim_id: str) -> list[str]:
        """Species a model supports, as reported by the KIM API."""
        kimpy = _kimpy()
        return sorted(cls._species_codes(kimpy, cls._create(kimpy, kim_id)))

    def _compute_args(self, forces: bool):
        """Compute arguments for energy-only or energy+forces, created once per mode."""
        if forces not in self._args:
            kimpy = _kimpy()
            args = self.model.compute_arguments_create()
            name = kimpy.compute_argument_name
            for i in range(name.get_number_of_compute_argument_names()):
                arg = name.get_compute_argument_name(i)
                if (args.get_argument_support_status(arg) == kimpy.support_status.required
                        and arg not in (name.partialEnergy, name.partialForces)):
                    raise ModelInitError(f"KIM model {self.kim_id} requires compute argument {arg}")
            neigh = kimpy.neighlist.NeighList()
            args.set_callback_pointer(kimpy.compute_callback_name.GetNeighborList,
                                      kimpy.neighlist.get_neigh_kim(), neigh)
            self._args[forces] = (args, neigh)
        return self._args[forces]

    def compute(self, geom: "Geometry", forces: bool = False):
        """Energy (eV, total) and optionally forces (eV/A, shape (n, 3)) of one configuration.

        Raises UnsupportedSpecies before calling the model, RuntimeError if the model fails.
        """
        kimpy = _kimpy()
        missing = sorted(set(geom.symbols) - set(self.species))
        if missing:
            raise UnsupportedSpecies(f"species {', '.join(missing)} not supported by {self.kim_id} "
                                     f"(supports {', '.join(sorted(self.species))})")
        n = geom.n
        keep = geom.padding_within(self.influence)
        image = geom.image[keep]
        coords = np.ascontiguousarray(geom.coords[keep])
        codes = np.array([self.species[s] for s in geom.symbols], dtype=np.intc)[image]
        total = len(codes)
        contributing = np.zeros(total, dtype=np.intc)
        contributing[:n] = 1
        need = np.ones(total, dtype=np.intc) if self.padding_needs_neigh else contributing.copy()
        args, neigh = self._compute_args(forces)
        neigh.build(coords, self.influence, self.cutoffs, need)
        energy = np.zeros(1, dtype=np.double)
        f = np.zeros((total, 3), dtype=np.double)
        name = kimpy.compute_argument_name
        self._keep = (np.array([total], dtype=np.intc), codes, contributing, coords, energy, f)
        args.set_argument_pointer(name.numberOfParticles, self._keep[0])
        args.set_argument_pointer(name.particleSpeciesCodes, codes)
        args.set_argument_pointer(name.particleContributing, contributing)
        args.set_argument_pointer(name.coordinates, coords)
        args.set_argument_pointer(name.partialEnergy, energy)
        if forces:
            args.set_argument_pointer(name.partialForces, f)
        self.model.compute(args, False)
        if not forces:
            return float(energy[0]), None
        folded = np.zeros((n, 3))
        np.add.at(folded, image, f)
        return float(energy[0]), folded


class Geometry:
    """A configuration with periodic padding (ghost images) built once for all models.

    Padding reaches `influence` A beyond the cell; a model with a shorter influence distance
    takes the subset of ghosts within its own reach (a superset of what it needs).
    """

    def __init__(self, symbols, positions, cell, pbc, influence: float):
        self.symbols, self.n = list(symbols), len(symbols)
        self.positions, self.cell, self.pbc = np.asarray(positions, float), np.asarray(cell, float), np.asarray(pbc)
        coords = np.ascontiguousarray(positions, dtype=np.double)
        pbc_i = np.asarray(pbc, dtype=np.intc)
        self.image = np.arange(self.n)
        self.overhang = np.zeros(self.n)
        if pbc_i.any():
            cell = np.ascontiguousarray(cell, dtype=np.double)
            frac = np.linalg.solve(cell.T, coords.T).T
            frac[:, pbc_i.astype(bool)] %= 1.0
            coords = np.ascontiguousarray(frac @ cell)
            pad, _, pad_image = _kimpy().neighlist.create_paddings(
                influence, cell, pbc_i, coords, np.zeros(self.n, dtype=np.intc))
            if len(pad_image):
                pad = np.asarray(pad)
                # distance (A) of each ghost beyond the cell, a lower bound of its distance to any atom
                d_perp = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
                s = np.linalg.solve(cell.T, pad.T).T
                beyond = (np.maximum(s - 1.0, 0.0) + np.maximum(-s, 0.0)) * d_perp * pbc_i  # periodic axes only
                self.overhang = np.concatenate([self.overhang, beyond.max(axis=1)])
                coords = np.concatenate([coords, pad])
                self.image = np.concatenate([self.image, np.asarray(pad_image)])
        self.coords = coords

    def padding_within(self, influence: float) -> np.ndarray:
        return self.overhang <= influence + 1e-9


def silence_stdout():
    """Send this process's file descriptor 1 to /dev/null for good (worker processes only):
    model drivers print banners through C and C++ buffers that outlive any temporary redirect."""
    flush_c_stdio()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def process_context():
    """Worker processes are forked where the platform can (fast start, models not re-imported),
    unless this process runs other Python threads (a Dask client's event loop, say): a fork
    copies locks those threads may hold, and the child can wait on them for ever. Then forkserver."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def flush_c_stdio():
    """Flush C-level stdio buffers (model drivers print through them; forked children would repeat them)."""
    ctypes.CDLL(None).fflush(None)


def status_of(energy: float, n_atoms: int, forces=None) -> str:
    """Status for a finished evaluation: ok, nonfinite or above_limit."""
    if not math.isfinite(energy) or (forces is not None and not np.isfinite(forces).all()):
        return "nonfinite"
    if abs(energy) / max(n_atoms, 1) > ENERGY_LIMIT:
        return "above_limit"
    return "ok"
