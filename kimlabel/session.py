"""One KIM portable model driven directly through kimpy (no ASE calculator in the hot path).

A KIMModel is created once and reused for many configurations: the kimpy model object, its
compute arguments and its buffers live as long as the KIMModel; its neighbour lists come from a
NeighbourLists it may share with the other models of a set (kimlabel.neighbours). The model is never
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

from ase.data import atomic_numbers, chemical_symbols

from .errors import ModelInitError, UnsupportedSpecies  # noqa: F401 (raised here, imported from here)
from .neighbours import Frame, NeighbourLists, get_neigh_function
from .schema import ENERGY_LIMIT



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
        self.influence = float(self.model.get_influence_distance())
        cutoffs, hints = self.model.get_neighbor_list_cutoffs_and_hints()
        self.cutoffs = np.asarray(cutoffs, dtype=np.double)
        self.padding_needs_neigh = not bool(np.all(hints))
        self._supported, self._species = frozenset(), None  # species learnt as configurations bring them
        self._numbering = ()  # ((symbol, code), ...) learnt so far: models with the same share code buffers
        self._code_of = np.full(len(chemical_symbols), -1, dtype=np.intc)  # atomic number -> species code
        self._count, self._energy = np.zeros(1, dtype=np.intc), np.zeros(1)
        self._forces = np.zeros((0, 3))
        self._lists, self._view, self._args = None, None, {}

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

    @property
    def species(self) -> dict[str, int]:
        """{symbol: KIM species code} of every species the model supports (asks the KIM API once)."""
        if self._species is None:
            self._species = self._species_codes(_kimpy(), self.model)
        return self._species

    def _learn_species(self, symbols):
        """Look up the species codes of symbols not seen before (two KIM API calls each, rather
        than one per KIM species name for every model at start-up); UnsupportedSpecies if one is not."""
        kimpy = _kimpy()
        missing = []
        for symbol in sorted(set(symbols) - self._supported):
            try:
                supported, code = self.model.get_species_support_and_code(kimpy.species_name.SpeciesName(symbol))
            except (RuntimeError, TypeError, ValueError):
                supported = False
            if supported and symbol in atomic_numbers:
                self._code_of[atomic_numbers[symbol]] = code
                self._supported = self._supported | {symbol}
                self._numbering = tuple(sorted(self._numbering + ((symbol, int(code)),)))
            else:
                missing.append(symbol)
        if missing:
            raise UnsupportedSpecies(f"species {', '.join(missing)} not supported by {self.kim_id} "
                                     f"(supports {', '.join(sorted(self.species))})")

    @classmethod
    def supported_species_of(cls, kim_id: str) -> list[str]:
        """Species a model supports, as reported by the KIM API."""
        kimpy = _kimpy()
        return sorted(cls._species_codes(kimpy, cls._create(kimpy, kim_id)))

    def share(self, lists: NeighbourLists):
        """Take this model's neighbour lists from `lists` (built once per configuration for a set)."""
        self._lists = lists
        self._view = lists.add(self.cutoffs, self.influence, self.padding_needs_neigh)
        self._args = {}

    def _compute_args(self, forces: bool):
        """Compute arguments for energy-only or energy+forces, created once per mode."""
        if forces not in self._args:
            kimpy = _kimpy()
            if self._lists is None:
                self.share(NeighbourLists())
            args = self.model.compute_arguments_create()
            name = kimpy.compute_argument_name
            for i in range(name.get_number_of_compute_argument_names()):
                arg = name.get_compute_argument_name(i)
                if (args.get_argument_support_status(arg) == kimpy.support_status.required
                        and arg not in (name.partialEnergy, name.partialForces)):
                    raise ModelInitError(f"KIM model {self.kim_id} requires compute argument {arg}")
            args.set_callback_pointer(kimpy.compute_callback_name.GetNeighborList, get_neigh_function(), self._view)
            self._args[forces] = [args, None]
        return self._args[forces]

    def _bind(self, args, frame: Frame, codes: np.ndarray, forces: bool):
        """Point the compute arguments at the frame's buffers and this model's own (once per buffer move)."""
        name = _kimpy().compute_argument_name
        if len(self._forces) != frame.cap:
            self._forces = np.zeros((frame.cap, 3))
        args.set_argument_pointer(name.numberOfParticles, self._count)
        args.set_argument_pointer(name.particleSpeciesCodes, codes)
        args.set_argument_pointer(name.particleContributing, frame.contributing)
        args.set_argument_pointer(name.coordinates, frame.coords)
        args.set_argument_pointer(name.partialEnergy, self._energy)
        if forces:
            args.set_argument_pointer(name.partialForces, self._forces)

    def compute(self, frame: Frame, forces: bool = False):
        """Energy (eV, total) and optionally forces (eV/Å, shape (n, 3)) of the frame's configuration.

        Raises UnsupportedSpecies before calling the model, RuntimeError if the model fails,
        ValueError if no neighbour list can be built (colliding atoms).
        """
        if not frame.species <= self._supported:
            self._learn_species(frame.species)
        entry = self._compute_args(forces)
        args = entry[0]
        codes = frame.species_codes(self._numbering, self._code_of)
        if entry[1] is not codes:  # new buffers (a larger configuration, or a newly learnt species)
            self._bind(args, frame, codes, forces)
            entry[1] = codes
        self._lists.build(frame)
        count = frame.count(self.influence)
        self._count[0] = count
        if forces:
            self._forces[:count] = 0.0
        self.model.compute(args, False)
        energy = float(self._energy[0])
        return energy, (frame.fold(count, self._forces) if forces else None)


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
    copies locks those threads may hold, and the child can wait on them for ever. Then forkserver,
    its server importing kimlabel's evaluator once so that each worker does not (0.3-0.5 s each)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["kimlabel.evaluator"])  # takes effect when the server starts
    return context


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
