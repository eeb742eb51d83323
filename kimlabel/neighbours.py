"""Periodic images and neighbour lists built once per configuration for every KIM model of a set.

`Frame` holds a configuration's atoms and their periodic images within the largest influence
distance (Å), nearest first, so the particles a model with a shorter reach needs are a prefix of
the same arrays. `NeighbourLists` builds one list per distinct (cutoff, reach, ghost rows) of its
models in one pass (kimlabel/_neighbours.c), and hands each model a view for the KIM API's
GetNeighborList callback. Buffers grow and are reused, so models bind their pointers once.
"""
from __future__ import annotations

import ctypes
import itertools
import os

import numpy as np
from ase.data import atomic_numbers

_LIB = None
# Why a configuration's periodic images or neighbour lists cannot be built (kl_pad, kl_build codes)
PAD_ERRORS = {-1: "singular periodic cell", -2: "out of memory",
              -3: "periodic cell too thin for the models' reach ({reach:g} Å): too many periodic images",
              -4: "non-finite positions or cell"}
BUILD_ERRORS = {1: "atoms closer than 1e-5 Å", 3: "out of memory", 4: "non-finite positions"}
_STAMPS = itertools.count(1)  # Frame loads and buffer generations: unique over all frames
_p, _i, _d = ctypes.c_void_p, ctypes.c_int, ctypes.c_double


def lib():
    """The C helpers, loaded once."""
    global _LIB
    if _LIB is None:
        try:
            from . import _neighbours
        except ImportError as err:  # pragma: no cover - install problem, the message is the point
            raise ImportError("kimlabel's C helpers are not built: reinstall with `pip install -e .` "
                              "(needs a C compiler)") from err
        so = ctypes.CDLL(os.environ.get("KIMLABEL_NEIGHBOURS_LIB") or _neighbours.__file__)
        for name, res, args in [("kl_list_new", _p, [_d]), ("kl_list_free", None, [_p]),
                                ("kl_view_new", _p, [_i, _p]), ("kl_view_free", None, [_p]),
                                ("kl_build", _i, [_i, _p, _i, _p, _p, _p]),
                                ("kl_pad", _i, [_i, _p, _p, _p, _d, _i, _p, _p, _p]),
                                ("kl_fold", None, [_i, _p, _p, _p]),
                                ("kl_get_neigh", _i, [_p, _i, _p, _i, _i, ctypes.POINTER(_i),
                                                      ctypes.POINTER(ctypes.POINTER(_i))])]:
            fn = getattr(so, name)
            fn.restype, fn.argtypes = res, args
        _LIB = so
    return _LIB


def capsule(address: int):
    """A PyCapsule around a C pointer: what kimpy's set_callback_pointer takes for a void*."""
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [_p, ctypes.c_char_p, _p]
    return new(address, None, None)


def get_neigh_function():
    """Capsule of the GetNeighborList callback (reads a view made by NeighbourLists)."""
    return capsule(ctypes.cast(lib().kl_get_neigh, _p).value)


class Frame:
    """Reusable buffers for one configuration at a time: positions (Å) wrapped into the cell, then
    periodic images within `influence` Å of the cell, nearest first.

    After load(): n atoms, `total` particles; coords, image (the atom each particle copies),
    overhang (Å beyond the cell), z (atomic numbers) and contributing are valid up to total.
    `generation` (unique to these buffers) changes whenever they move: holders of pointers rebind.
    """

    def __init__(self, influence: float):
        self.influence = float(influence)
        self.generation, self.n, self.total, self.stamp = 0, 0, 0, 0
        self._contributing_n = self._symbols_key = None
        self.symbols, self.positions, self.cell, self.pbc = [], None, None, None
        self._counts, self._codes = {}, {}  # per load: particles within a reach; per numbering: species codes
        self._alloc(64)

    def _alloc(self, cap: int):
        self.cap = cap
        self.coords = np.zeros((cap, 3))
        self.image = np.zeros(cap, dtype=np.intc)
        self.overhang = np.zeros(cap)
        self.z = np.zeros(cap, dtype=np.intc)
        self.contributing = np.zeros(cap, dtype=np.intc)
        self.ptr = {k: getattr(self, k).ctypes.data for k in ("coords", "image", "overhang", "z", "contributing")}
        self._codes = {}
        self.generation = next(_STAMPS)  # unique over all frames: bound pointers are never stale

    def load(self, symbols, positions, cell, pbc):
        """Fill the buffers for one configuration; ValueError for a cell that cannot be padded."""
        self.symbols, self.n = list(symbols), len(symbols)
        self.positions = np.ascontiguousarray(positions, dtype=np.double)
        self.cell = np.array(cell, dtype=np.double).reshape(3, 3)
        self.pbc = np.asarray(pbc, dtype=bool).reshape(3)
        pbc_i = self.pbc.astype(np.intc)
        cell = self.cell.copy()
        for k in np.flatnonzero(~self.pbc):
            if not np.any(cell[k]):  # no vector along a non-periodic axis: any will do, no images there
                cell[k, k] = 1.0
        pos = self.positions
        for _ in range(2):
            total = lib().kl_pad(self.n, pos.ctypes.data, cell.ctypes.data, pbc_i.ctypes.data, self.influence,
                                 self.cap, self.ptr["coords"], self.ptr["image"], self.ptr["overhang"])
            if total < 0:
                raise ValueError(PAD_ERRORS.get(total, "out of memory").format(reach=self.influence))
            if total <= self.cap:
                break
            self._alloc(max(total, 2 * self.cap))
        self.total = total
        self.stamp = next(_STAMPS)
        if self._contributing_n != (self.n, self.generation):
            self.contributing[:] = 0
            self.contributing[: self.n] = 1
            self._contributing_n = (self.n, self.generation)
        key = tuple(self.symbols)
        if key != self._symbols_key:
            self._z_atoms = np.fromiter((atomic_numbers[s] for s in key), dtype=np.intc, count=self.n)
            self.species, self._symbols_key = frozenset(key), key
        np.take(self._z_atoms, self.image[:total], out=self.z[:total])
        self._counts.clear()
        return self

    def count(self, influence: float) -> int:
        """Particles a model reaching `influence` Å needs: the atoms and the images that close."""
        count = self._counts.get(influence)
        if count is None:
            over = self.overhang[self.n: self.total]
            count = self._counts[influence] = self.n + int(over.searchsorted(influence + 1e-9, side="right"))
        return count

    def species_codes(self, numbering: tuple, code_of: np.ndarray) -> np.ndarray:
        """Every particle's KIM species code under one numbering ({symbol: code} as a sorted tuple;
        code_of maps atomic numbers to codes): one buffer per numbering, shared by the models that
        use it, filled once per load and kept until the buffers move."""
        entry = self._codes.get(numbering)
        if entry is None:
            entry = self._codes[numbering] = [np.zeros(self.cap, dtype=np.intc), None]
        if entry[1] != self.stamp:
            code_of.take(self.z[: self.total], out=entry[0][: self.total])
            entry[1] = self.stamp
        return entry[0]

    def fold(self, n_particles: int, forces: np.ndarray) -> np.ndarray:
        """Forces (eV/Å) on the first n_particles particles summed onto their atoms, shape (n, 3)."""
        out = np.zeros((self.n, 3))
        lib().kl_fold(n_particles, self.ptr["image"], forces.ctypes.data, out.ctypes.data)
        return out


class _Group:
    """Lists built by one kl_build pass: those with ghost rows, or those without (their cell grids
    and row counts differ)."""

    def __init__(self, ghost_rows: bool):
        self.ghost_rows, self.lists, self.reach = ghost_rows, [], []

    def add(self, address: int, reach: float):
        self.lists.append(address)
        self.reach.append(reach)
        self.array = ctypes.cast((ctypes.c_void_p * len(self.lists))(*self.lists), _p)
        self._reach = np.array(self.reach) + 1e-9
        self.P = np.zeros(len(self.lists), dtype=np.intc)
        self.R = np.zeros(len(self.lists), dtype=np.intc)

    def build(self, frame: Frame):
        self.P[:] = frame.n + np.searchsorted(frame.overhang[frame.n: frame.total], self._reach, side="right")
        self.R[:] = self.P if self.ghost_rows else frame.n
        err = lib().kl_build(frame.total, frame.ptr["coords"], len(self.lists), self.array,
                             self.P.ctypes.data, self.R.ctypes.data)
        if err:
            raise ValueError(BUILD_ERRORS.get(err, "out of memory"))


class NeighbourLists:
    """Neighbour lists for several models over one Frame, built together once per configuration.

    add(cutoffs, influence, ghost_rows) registers a model and returns the view its compute
    arguments point to. Models with the same cutoff, reach and ghost rows share a list.
    """

    def __init__(self):
        self._lists, self._views, self._cutoffs = {}, [], []
        self._groups = {}
        self._built = None

    def add(self, cutoffs, influence: float, ghost_rows: bool):
        ids = []
        for c in np.atleast_1d(np.asarray(cutoffs, dtype=float)):
            key = (float(c), float(influence), bool(ghost_rows))
            if key not in self._lists:
                self._lists[key] = lib().kl_list_new(key[0])
                self._groups.setdefault(key[2], _Group(key[2])).add(self._lists[key], key[1])
            ids.append(self._lists[key])
        view = lib().kl_view_new(len(ids), ctypes.cast((ctypes.c_void_p * len(ids))(*ids), _p))
        self._views.append(view)
        self._cutoffs.append(np.atleast_1d(np.asarray(cutoffs, dtype=np.double)).copy())
        self._built = None
        return capsule(view)

    def neighbours(self, model: int, particle: int, index: int = 0) -> np.ndarray:
        """The particle indices the KIM API hands model number `model` (in order of add) as the
        neighbours of `particle` in its cutoff number `index`, through the same callback."""
        cutoffs = self._cutoffs[model]
        n, first = _i(), ctypes.POINTER(_i)()
        if lib().kl_get_neigh(self._views[model], len(cutoffs), cutoffs.ctypes.data, index, particle,
                              ctypes.byref(n), ctypes.byref(first)):
            raise IndexError(f"no neighbour list for particle {particle}, cutoff {index}")
        return np.ctypeslib.as_array(first, shape=(n.value,)).copy() if n.value else np.zeros(0, dtype=np.intc)

    def build(self, frame: Frame):
        """Build every list for this frame (once: later calls for the same load are free).
        ValueError for colliding atoms or atoms too far apart."""
        if self._built == frame.stamp:
            return
        for group in self._groups.values():
            group.build(frame)
        self._built = frame.stamp

    def __del__(self):
        if _LIB is not None:
            for v in getattr(self, "_views", []):
                _LIB.kl_view_free(v)
            for lst in getattr(self, "_lists", {}).values():
                _LIB.kl_list_free(lst)
