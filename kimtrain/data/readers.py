"""Readers for the paper's datasets: ANI-Al (HDF5) and DeePMD raw/npy systems (AgAu), to extxyz.

Energies in eV, forces in eV/A, positions and cells in A; frames keep their source in info.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator


def _labelled(symbols, positions, cell, energy, forces, **info) -> Atoms:
    at = Atoms(symbols, positions=positions, cell=cell, pbc=cell is not None)
    at.calc = SinglePointCalculator(at, energy=float(energy), forces=forces)
    at.info.update(info)
    return at


def read_ani_al(path) -> list[Atoms]:
    """ANI-Al HDF5: every group holding `coordinates` is a system with `cell`, `species`, `energy`,
    `force` (and `fermi`, kept in info)."""
    import h5py
    frames = []

    def visit(name, group):
        if not isinstance(group, h5py.Group) or "coordinates" not in group:
            return
        for key in ("cell", "species", "energy", "force"):
            if key not in group:
                raise ValueError(f"{path}: group {name!r} has coordinates but no {key!r}")
        coords, cells, energy, force = (group[k][()] for k in ("coordinates", "cell", "energy", "force"))
        species = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in np.ravel(group["species"][()])])
        fermi = group["fermi"][()] if "fermi" in group else np.full(len(coords), np.nan)
        per_frame = species.size == coords.shape[0] * coords.shape[1]
        for k in range(len(coords)):
            sym = species.reshape(coords.shape[:2])[k] if per_frame else species
            frames.append(_labelled(list(sym), coords[k], cells[k], energy[k], force[k],
                                    source_group=name, fermi=float(np.ravel(fermi)[k])))

    with h5py.File(path, "r") as fh:
        fh.visititems(visit)
    if not frames:
        raise ValueError(f"{path}: no group with 'coordinates' found (not an ANI-Al file?)")
    return frames


def read_deepmd(system) -> list[Atoms]:
    """A DeePMD system folder: type.raw, type_map.raw, set.*/{coord,box,energy,force}.npy."""
    system = Path(system)
    for name in ("type.raw", "type_map.raw"):
        if not (system / name).exists():
            raise ValueError(f"{system}: missing {name} (not a DeePMD system folder?)")
    types = np.loadtxt(system / "type.raw", dtype=int, ndmin=1)
    names = (system / "type_map.raw").read_text().split()
    symbols = [names[t] for t in types]
    periodic = not (system / "nopbc").exists()
    sets = sorted(system.glob("set.*"))
    if not sets:
        raise ValueError(f"{system}: no set.* folders")
    frames = []
    for s in sets:
        arrays = {}
        for key in ("coord", "box", "energy", "force"):
            f = s / f"{key}.npy"
            if not f.exists() and not (key == "box" and not periodic):
                raise ValueError(f"{f}: missing")
            arrays[key] = np.load(f) if f.exists() else None
        n = len(arrays["energy"])
        for k in range(n):
            cell = arrays["box"][k].reshape(3, 3) if arrays["box"] is not None and periodic else None
            frames.append(_labelled(symbols, arrays["coord"][k].reshape(-1, 3), cell, arrays["energy"][k],
                                    arrays["force"][k].reshape(-1, 3), source_id=f"{system.name}/{s.name}/{k}"))
    return frames


def convert(fmt: str, source, out) -> int:
    """Convert an ANI-Al HDF5 file or DeePMD system folder(s) to one extxyz file; returns the frame count."""
    from ase.io import write
    if fmt == "ani-al":
        frames = read_ani_al(source)
    elif fmt == "deepmd":
        src = Path(source)
        systems = [src] if (src / "type.raw").exists() else sorted(p.parent for p in src.rglob("type.raw"))
        if not systems:
            raise ValueError(f"{source}: no DeePMD system (type.raw) found")
        frames = [f for s in systems for f in read_deepmd(s)]
    else:
        raise ValueError(f"unknown format {fmt!r}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write(out, frames, format="extxyz")
    return len(frames)
