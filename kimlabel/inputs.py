"""Reading configurations from any file ase.io understands, with errors naming file and frame."""
from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import hashlib
import lzma
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols


class InputError(ValueError):
    """Malformed, empty or missing input, with the file (and frame) named."""


@dataclass
class Config:
    """A configuration in plain arrays (Å, eV). Chunks travel to worker processes as a ConfigBatch."""
    config_id: int
    source: str
    index: int
    symbols: list
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy_ref: float = math.nan
    config_type: str | None = None
    forces_ref: np.ndarray | None = None

    @property
    def formula(self) -> str:
        return hill_formula(tuple(self.symbols))

    def to_atoms(self):
        from ase import Atoms
        return Atoms(self.symbols, positions=self.positions, cell=self.cell, pbc=self.pbc)


@dataclass
class ConfigBatch:
    """A chunk of Configs as a few flat arrays: pickles to worker processes several times faster
    than the Config objects (three small arrays each)."""
    meta: list  # (config_id, source, index, energy_ref, config_type) per configuration
    n_atoms: np.ndarray
    numbers: np.ndarray  # atomic numbers, all configurations concatenated
    positions: np.ndarray  # (atoms, 3) Å
    cells: np.ndarray  # (configurations, 3, 3) Å
    pbc: np.ndarray  # (configurations, 3)
    forces_ref: np.ndarray | None  # (atoms, 3) eV/Å, NaN where a configuration has none; None if none has

    @classmethod
    def pack(cls, configs) -> "ConfigBatch":
        forces = None
        if any(c.forces_ref is not None for c in configs):
            forces = np.concatenate([c.forces_ref if c.forces_ref is not None else np.full((len(c.symbols), 3), math.nan)
                                     for c in configs])
        return cls(meta=[(c.config_id, c.source, c.index, c.energy_ref, c.config_type) for c in configs],
                   n_atoms=np.array([len(c.symbols) for c in configs]),
                   numbers=np.array([atomic_numbers[s] for c in configs for s in c.symbols], dtype=np.int16),
                   positions=np.concatenate([c.positions for c in configs]),
                   cells=np.array([c.cell for c in configs], dtype=float).reshape(-1, 3, 3),
                   pbc=np.array([c.pbc for c in configs], dtype=bool).reshape(-1, 3), forces_ref=forces)

    def unpack(self) -> list[Config]:
        ends = np.cumsum(self.n_atoms).tolist()
        symbols = [chemical_symbols[z] for z in self.numbers.tolist()]
        out, start = [], 0
        for k, (config_id, source, index, energy_ref, config_type) in enumerate(self.meta):
            end = ends[k]
            forces = None
            if self.forces_ref is not None and not np.isnan(self.forces_ref[start]).all():
                forces = self.forces_ref[start:end]
            out.append(Config(config_id, source, index, symbols[start:end], self.positions[start:end],
                              self.cells[k], self.pbc[k], energy_ref, config_type, forces))
            start = end
        return out


@functools.lru_cache(maxsize=4096)
def hill_formula(symbols: tuple) -> str:
    """Hill formula of a species tuple (cached: datasets repeat a few compositions)."""
    from ase.formula import Formula
    return Formula.from_list(list(symbols)).format("hill")


def own_results(atoms) -> dict:
    """The results of the frame's calculator when they are this frame's, else {}.

    A calculator shared by several Atoms (`for a in frames: a.calc = calc`) holds the results of
    the last configuration it computed: they must not label the others. ASE calculators keep the
    atoms their results belong to (`calc.atoms`; frames read by ase.io carry a single-point
    calculator of their own); results are this frame's only when `calc.check_state(atoms)` finds
    no change. Nothing is ever computed here with a user's calculator."""
    calc = atoms.calc
    results = getattr(calc, "results", None) if calc is not None else None
    if not results:
        return {}
    if getattr(calc, "atoms", None) is None or not hasattr(calc, "check_state"):
        return {}
    try:
        if calc.check_state(atoms):
            return {}
    except Exception:  # a calculator that cannot compare states cannot vouch for its results
        return {}
    forces = results.get("forces")
    if forces is not None and np.shape(forces) != (len(atoms), 3):
        return {}
    return results


def has_foreign_results(atoms) -> bool:
    """True when the frame's calculator holds results that are not this frame's (see own_results)."""
    calc = atoms.calc
    return bool(calc is not None and getattr(calc, "results", None)) and not own_results(atoms)


def reference_energy(atoms, energy_key: str | None = None, results: dict | None = None) -> float:
    """DFT/reference energy (eV) of a frame: info[energy_key], else its own calculator results
    (NaN when there are none, or when they belong to another configuration). results: the frame's
    own_results, when the caller has them already."""
    if energy_key and energy_key in atoms.info:
        return float(atoms.info[energy_key])
    results = own_results(atoms) if results is None else results
    key = energy_key if energy_key in results else "energy"
    return float(results[key]) if key in results else math.nan


def reference_forces(atoms, results: dict | None = None):
    """DFT/reference forces (eV/Å, (n, 3)) from the frame's own calculator results, else None."""
    results = own_results(atoms) if results is None else results
    return np.asarray(results["forces"], dtype=float) if "forces" in results else None


def from_atoms(atoms, config_id: int, source: str = "<memory>", index: int = 0,
               energy_key: str | None = None) -> Config:
    results = own_results(atoms)  # once: comparing the calculator's atoms costs as much as reading them
    return Config(config_id=config_id, source=source, index=index,
                  symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions(),
                  cell=np.asarray(atoms.get_cell()), pbc=np.asarray(atoms.get_pbc()),
                  energy_ref=reference_energy(atoms, energy_key, results),
                  config_type=atoms.info.get("config_type"), forces_ref=reference_forces(atoms, results))


def _check(atoms, where: str):
    if len(atoms) == 0:
        raise InputError(f"{where}: configuration has no atoms")
    if not np.isfinite(atoms.get_positions()).all():
        raise InputError(f"{where}: non-finite positions")
    if atoms.pbc.any() and abs(atoms.cell.volume) < 1e-8 and atoms.pbc.all():
        raise InputError(f"{where}: periodic configuration with a zero-volume cell")


def iter_configs(paths, energy_key: str | None = None):
    """Config objects over all frames of all files, config_id counting from 0 in input order.

    Files are checked and resolved now (the generator may run in another working directory);
    `source` keeps the path as given.
    """
    resolved = []
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file")
        resolved.append((str(p), Path(p).resolve()))
    return _frames(resolved, energy_key)


@contextlib.contextmanager
def plain_copy(path: Path):
    """The file itself, or a decompressed temporary copy of a .gz/.bz2/.xz file.

    ase's extxyz reader seeks to every frame, which is quadratic on compressed streams.
    """
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix)
    if opener is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="kimlabel-in-") as tmp:
        plain = Path(tmp) / path.stem
        with opener(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield plain


def _frames(resolved, energy_key):
    config_id = 0
    for shown, path in resolved:
        with plain_copy(path) as plain:
            config_id = yield from _frames_of(shown, plain, config_id, energy_key)


def _frames_of(shown, plain, config_id, energy_key):
    """Configs of one (uncompressed) file; returns the next free config_id."""
    from ase.io import iread
    index = 0
    frames = iread(str(plain), index=":")
    while True:
        where = f"{shown}, frame {index}"
        try:
            atoms = next(frames)
        except StopIteration:
            break
        except Exception as err:  # ase raises many types on malformed files
            raise InputError(f"{where}: cannot be read ({type(err).__name__}: {err})") from err
        _check(atoms, where)
        yield from_atoms(atoms, config_id, shown, index, energy_key)
        config_id += 1
        index += 1
    if index == 0:
        raise InputError(f"{shown}: no configurations in file")
    return config_id


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
