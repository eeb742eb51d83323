"""Build the bundled silicon DFT demo set (GPAW, PBE, plane waves) and its unlabelled pool.

Run with Debian's interpreter, which sees Debian's gpaw:
    /usr/bin/python3 data/build_dft_demo.py [--jobs 2] [--n-dft 400] [--n-pool 3000]

Finished DFT frames are appended to data/.build/dft.partial.extxyz as they complete, so an
interrupted build continues where it stopped. Outputs: data/si_demo_dft.extxyz.gz (energies eV,
forces eV/A, `config_type`, `dft_settings`) and data/si_demo_pool.extxyz.gz (no labels).
"""
import argparse
import gzip
import os
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, diamond100, diamond111
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

HERE = Path(__file__).resolve().parent
SETTINGS = dict(ecut_eV=300.0, xc="PBE", kpt_density_per_invA=2.0, smearing="fermi-dirac 0.1 eV",
                cluster_kpts="gamma", code="GPAW (Debian package), plane waves")
# (config_type, fraction of the set): about 400 frames of at most 16 atoms in the DFT set.
MIX = [("diamond_strained", 0.17), ("diamond_sheared", 0.06), ("diamond_rattled", 0.10),
       ("beta_tin", 0.07), ("simple_cubic", 0.06), ("bcc", 0.06), ("fcc", 0.06), ("hcp", 0.06),
       ("random_dense", 0.06), ("cluster", 0.16), ("vacancy", 0.06), ("surface", 0.08)]


def _strain(atoms, rng, eps, shear=0.0):
    e = np.eye(3) + np.diag(rng.uniform(-eps, eps, 3))
    if shear:
        s = rng.uniform(-shear, shear, 3)
        e[0, 1] = e[1, 0] = s[0]; e[0, 2] = e[2, 0] = s[1]; e[1, 2] = e[2, 1] = s[2]
    atoms.set_cell(atoms.cell @ e, scale_atoms=True)
    return atoms


def _random_positions(n, rng, box=None, dmin=2.15, dmax=2.6):
    """Random dense packing in `box` (A), or a connected cluster when box is None."""
    pos = [np.zeros(3)]
    while len(pos) < n:
        if box is None:
            v = rng.normal(size=3)
            trial = pos[rng.integers(len(pos))] + v / np.linalg.norm(v) * rng.uniform(dmin, dmax)
            d = np.linalg.norm(np.array(pos) - trial, axis=1)
        else:
            trial = rng.uniform(0, box, 3)
            diff = np.array(pos) - trial
            diff -= box * np.round(diff / box)
            d = np.linalg.norm(diff, axis=1)
        if d.min() >= dmin:
            pos.append(trial)
    return np.array(pos)


def beta_tin(a=4.83, c=2.66):
    cell = [a, a, c]
    frac = [[0, 0, 0], [0, 0.5, 0.25], [0.5, 0.5, 0.5], [0.5, 0, 0.75]]
    return Atoms("Si4", scaled_positions=frac, cell=cell, pbc=True)


def make(kind, rng):
    """One configuration of the given kind, randomised by rng."""
    if kind in ("diamond_strained", "diamond_sheared", "diamond_rattled"):
        a = bulk("Si", "diamond", a=5.43, cubic=bool(rng.integers(2)) or kind == "diamond_rattled")
        _strain(a, rng, 0.06, 0.05 if kind == "diamond_sheared" else 0.0)
        a.rattle(rng.uniform(0.05, 0.2) if kind == "diamond_rattled" else 0.02, seed=int(rng.integers(1e9)))
    elif kind == "beta_tin":
        a = _strain(beta_tin(), rng, 0.05); a.rattle(0.03, seed=int(rng.integers(1e9)))
    elif kind in ("simple_cubic", "bcc", "fcc", "hcp"):
        lat = {"simple_cubic": ("sc", 2.53), "bcc": ("bcc", 3.08), "fcc": ("fcc", 3.87), "hcp": ("hcp", 2.74)}[kind]
        a = bulk("Si", lat[0], a=lat[1]) if kind != "hcp" else bulk("Si", "hcp", a=lat[1], c=lat[1] * 1.633)
        a = a.repeat((2, 1, 1)) if len(a) == 1 and rng.random() < 0.5 else a
        _strain(a, rng, 0.06); a.rattle(0.03, seed=int(rng.integers(1e9)))
    elif kind == "random_dense":
        n = int(rng.integers(6, 11)); box = (n * rng.uniform(16.0, 22.0)) ** (1 / 3)
        a = Atoms(f"Si{n}", positions=_random_positions(n, rng, box, dmin=2.1), cell=[box] * 3, pbc=True)
    elif kind == "cluster":
        n = int(rng.integers(2, 11))
        a = Atoms(f"Si{n}", positions=_random_positions(n, rng)); a.center(vacuum=3.5); a.pbc = False
    elif kind == "vacancy":
        a = bulk("Si", "diamond", a=5.43, cubic=True)
        a = a.repeat((2, 1, 1)) if rng.random() < 0.3 else a
        del a[int(rng.integers(len(a)))]
        _strain(a, rng, 0.02); a.rattle(rng.uniform(0.02, 0.12), seed=int(rng.integers(1e9)))
    elif kind == "surface":
        builder = diamond100 if rng.random() < 0.5 else diamond111
        a = builder("Si", size=(1, 1, int(rng.integers(4, 9))), vacuum=4.0, a=5.43)
        a.pbc = True; a.rattle(rng.uniform(0.02, 0.1), seed=int(rng.integers(1e9)))
    else:
        raise ValueError(f"unknown configuration kind {kind!r}")
    a.info["config_type"] = kind
    return a


def generate(n, seed):
    """n configurations following MIX (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    counts = [int(round(f * n)) for _, f in MIX]
    counts[0] += n - sum(counts)
    frames = [make(kind, rng) for (kind, _), c in zip(MIX, counts) for _ in range(c)]
    for i, a in enumerate(frames):
        a.info["build_index"] = i
    return frames


def dft(atoms):
    """PBE energy (eV) and forces (eV/A) of one configuration; returns a labelled copy."""
    from gpaw import GPAW, PW, FermiDirac
    kpts = {"size": (1, 1, 1)} if not atoms.pbc.any() else {"density": SETTINGS["kpt_density_per_invA"], "gamma": True}
    t0 = time.time()
    work = atoms.copy()
    work.calc = GPAW(mode=PW(SETTINGS["ecut_eV"]), xc="PBE", kpts=kpts, occupations=FermiDirac(0.1),
                     txt=None, parallel={"domain": 1})
    e, f = work.get_potential_energy(), work.get_forces()
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, energy=e, forces=f)
    out.info["dft_seconds"] = round(time.time() - t0, 1)
    return out


def gpaw_version() -> str:
    import gpaw
    return gpaw.__version__


def write_readme(labelled, pool_frames):
    """data/README.md: method, settings, counts and per-atom energy ranges of the committed files."""
    rows = {}
    for a in labelled:
        rows.setdefault(a.info["config_type"], []).append((len(a), a.get_potential_energy() / len(a)))
    pool_counts = {}
    for a in pool_frames:
        pool_counts[a.info["config_type"]] = pool_counts.get(a.info["config_type"], 0) + 1
    lines = ["# Bundled silicon DFT demo set", "",
             "Computed by this project with `data/build_dft_demo.py` (`make data-demo`), not taken from elsewhere.", "",
             "- `si_demo_dft.extxyz.gz`: configurations with DFT total energy (eV, `get_potential_energy()`),",
             "  forces (eV/A, `get_forces()`), `config_type` and `dft_settings` in `info`.",
             "- `si_demo_pool.extxyz.gz`: an unlabelled pool of configurations of the same kinds (no DFT),",
             "  generated with another random seed (the paper's setting of many configurations without DFT).",
             "- `samples/`: small unlabelled sample sets for `make label-si/-al/-agau` (`samples/make_samples.py`).", "",
             "## Method", "",
             f"{SETTINGS['code']} (GPAW {gpaw_version()}), {SETTINGS['xc']}, plane-wave cutoff {SETTINGS['ecut_eV']:.0f} eV, "
             f"Monkhorst-Pack k-points at a density of {SETTINGS['kpt_density_per_invA']} per A^-1 "
             "(gamma-centred; Gamma point only for the non-periodic clusters), Fermi-Dirac smearing 0.1 eV, "
             "the same settings for every configuration. GPAW energies are relative to its non-spin-polarised "
             "reference atoms, so per-atom energies are about -5.4 eV for diamond Si; EIP energies need the usual "
             "per-species alignment before comparison. Structures are built with ASE: strained (+-6 %), sheared and "
             "rattled diamond, beta-tin, simple cubic, bcc, fcc, hcp, random dense packings (6-10 atoms), "
             "clusters of 2-10 atoms in a box with 3.5 A of vacuum (non-periodic), vacancies and (100)/(111) "
             "slabs with vacuum. At most 16 atoms per configuration.", "",
             f"## Contents: {len(labelled)} labelled configurations, {len(pool_frames)} pool configurations", "",
             "| config_type | labelled | atoms | E/atom min / max (eV) | pool |", "|---|---|---|---|---|"]
    for ct, v in rows.items():
        n, e = np.array([x[0] for x in v]), np.array([x[1] for x in v])
        lines.append(f"| {ct} | {len(v)} | {n.min()}-{n.max()} | {e.min():.3f} / {e.max():.3f} | {pool_counts.get(ct, 0)} |")
    e_all = np.array([a.get_potential_energy() / len(a) for a in labelled])
    seconds = sum(float(a.info.get("dft_seconds", 0.0)) for a in labelled)
    lines += ["", f"All labelled configurations: E/atom {e_all.min():.3f} to {e_all.max():.3f} eV, "
              f"median {np.median(e_all):.3f} eV. The DFT calculations took {seconds / 3600:.1f} core-hours "
              "(one process per configuration, two at a time on a 2-core machine)."]
    (HERE / "README.md").write_text("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--n-dft", type=int, default=400)
    p.add_argument("--n-pool", type=int, default=3000)
    p.add_argument("--readme-only", action="store_true", help="rewrite data/README.md from the committed files")
    args = p.parse_args()
    if args.readme_only:
        return write_readme(read(HERE / "si_demo_dft.extxyz.gz", ":"), read(HERE / "si_demo_pool.extxyz.gz", ":"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    build = HERE / ".build"; build.mkdir(exist_ok=True)
    pool_frames = generate(args.n_pool, seed=2)
    write(HERE / "si_demo_pool.extxyz.gz", pool_frames, format="extxyz")
    frames = generate(args.n_dft, seed=1)
    partial = build / "dft.partial.extxyz"
    done = {a.info["build_index"]: a for a in read(partial, ":")} if partial.exists() else {}
    todo = [a for a in frames if a.info["build_index"] not in done]
    print(f"{len(done)} frames done, {len(todo)} to compute with {args.jobs} processes", flush=True)
    with Pool(args.jobs) as pool:
        for k, a in enumerate(pool.imap_unordered(dft, todo)):
            write(partial, a, format="extxyz", append=True)
            done[a.info["build_index"]] = a
            print(f"[{k + 1}/{len(todo)}] {a.info['config_type']} n={len(a)} "
                  f"E/atom={a.get_potential_energy() / len(a):.4f} eV in {a.info['dft_seconds']} s", flush=True)
    labelled = [done[i] for i in sorted(done)]
    for a in labelled:
        a.info["dft_settings"] = "GPAW PW 300 eV, PBE, k-density 2.0/A^-1 (gamma-centred; Gamma for clusters), FD 0.1 eV"
    with gzip.open(HERE / "si_demo_dft.extxyz.gz", "wt") as fh:
        write(fh, labelled, format="extxyz")
    write_readme(labelled, pool_frames)
    print(f"wrote {len(labelled)} labelled frames and {len(pool_frames)} pool frames")


if __name__ == "__main__":
    main()
