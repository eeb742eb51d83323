"""Phonons by finite displacements (matcalc's PhononCalc driving phonopy) on a 2x2x2 conventional
supercell (64 Si, 32 Al atoms), with the band structure along Γ-X-U|K-Γ-L of the fcc Brillouin
zone, the density of states, and the highest frequency at Γ (Si's Raman-active optical mode), in THz."""
from __future__ import annotations

import numpy as np

# fractional coordinates in the reciprocal basis of ASE's fcc primitive cell (Setyawan & Curtarolo)
PATH = [[("Γ", [0, 0, 0]), ("X", [0.5, 0, 0.5]), ("U", [0.625, 0.25, 0.625])],
        [("K", [0.375, 0.375, 0.75]), ("Γ", [0, 0, 0]), ("L", [0.5, 0.5, 0.5])]]
SUPERCELL = [[-2, 2, 2], [2, -2, 2], [2, 2, -2]]  # the primitive cell -> a 2x2x2 conventional supercell


def phonons(calc, system, quick: bool = False) -> tuple[dict, dict]:
    """({"nu_max": the highest frequency on the path, "nu_min": the lowest (negative: an unstable
    mode), "nu_gamma_max" for diamond}, curves for the plots: band distances, frequencies, labels, DOS), THz."""
    from matcalc import PhononCalc
    result = PhononCalc(calc, supercell_matrix=SUPERCELL, relax_structure=True, fmax=1e-2 if quick else 1e-3,
                        max_steps=200 if quick else 1000,
                        write_phonon=False, on_imaginary_modes="warn", t_max=10, t_step=10).calc(system.primitive())
    phonon = result["phonon"]
    gamma = np.sort(phonon.get_frequencies([0, 0, 0]))
    bands = [[np.linspace(a[1], b[1], 21 if quick else 51).tolist() for a, b in zip(seg, seg[1:])] for seg in PATH]
    flat = [band for seg in bands for band in seg]
    connections = [i < len(seg) - 1 for seg in bands for i in range(len(seg))]
    phonon.run_band_structure(flat, path_connections=connections)
    bs = phonon.get_band_structure_dict()
    phonon.run_mesh([8, 8, 8] if quick else [20, 20, 20], is_gamma_center=True)
    phonon.run_total_dos()
    dos = phonon.total_dos
    labels = []
    for seg in PATH:
        labels += [name for name, _ in seg]
    curves = {"distances": [np.asarray(d) for d in bs["distances"]],
              "frequencies": [np.asarray(f) for f in bs["frequencies"]],
              "segments": [len(seg) - 1 for seg in PATH], "labels": [[n for n, _ in seg] for seg in PATH],
              "dos_frequencies": np.asarray(dos.frequency_points), "dos": np.asarray(dos.dos)}
    everywhere = np.concatenate(curves["frequencies"])
    figures = {"nu_max": float(everywhere.max()), "nu_min": float(everywhere.min())}
    if system.structure == "diamond":  # an optical mode at Γ (fcc's Γ modes are acoustic: 0)
        figures["nu_gamma_max"] = float(gamma[-1])
    return figures, curves


def gamma_frequencies_by_hessian(calc, atoms, delta: float = 1e-3) -> np.ndarray:
    """Γ-point frequencies (THz) of a periodic cell from a central-difference Hessian of its forces:
    displacing an atom of the cell moves all its images, so the mass-weighted Hessian of the
    cell is the dynamical matrix at Γ. An independent check of the phonopy route."""
    from ase.units import _amu, _e
    atoms = atoms.copy()
    atoms.calc = calc
    n = len(atoms)
    hessian = np.zeros((3 * n, 3 * n))
    base = atoms.get_positions()
    for a in range(n):
        for i in range(3):
            f = []
            for sign in (1, -1):
                pos = base.copy()
                pos[a, i] += sign * delta
                atoms.set_positions(pos)
                f.append(atoms.get_forces().ravel())
            hessian[3 * a + i] = -(f[0] - f[1]) / (2 * delta)
    atoms.set_positions(base)
    hessian = (hessian + hessian.T) / 2
    m = np.repeat(atoms.get_masses(), 3)
    eig = np.linalg.eigvalsh(hessian / np.sqrt(np.outer(m, m)))  # eV/Å²/amu
    omega = np.sign(eig) * np.sqrt(np.abs(eig) * _e / _amu) * 1e10  # rad/s
    return np.sort(omega / (2 * np.pi * 1e12))
