"""How configurations travel to kimlabel's workers: chunks by size, packed into flat arrays."""
import pickle

import numpy as np
from ase import Atoms
from ase.build import bulk

from kimlabel.inputs import ConfigBatch, from_atoms
from kimlabel.runner import ATOMS_PER_CHUNK, chunked


def configs():
    """Mixed sizes and species, periodic and not, with and without reference forces."""
    small = bulk("Si", "diamond", a=5.43)
    big = bulk("Al", "fcc", a=4.05, cubic=True).repeat(3)
    mixed = bulk("Ag", "fcc", a=4.09, cubic=True)
    mixed.symbols[::2] = "Au"
    cluster = Atoms("Si3", positions=[[0, 0, 0], [2.3, 0, 0], [0, 2.3, 0]])
    out = []
    for k, at in enumerate([small, big, mixed, cluster, small]):
        at = at.copy()
        at.rattle(0.05, seed=k)
        cfg = from_atoms(at, k, source=f"file{k}.xyz", index=k)
        if k % 2:
            cfg.forces_ref = np.random.default_rng(k).normal(size=(len(at), 3))
        cfg.config_type = None if k == 3 else f"type{k}"
        out.append(cfg)
    return out


def test_a_packed_chunk_unpacks_to_the_same_configurations():
    original = configs()
    back = pickle.loads(pickle.dumps(ConfigBatch.pack(original))).unpack()
    assert len(back) == len(original)
    for a, b in zip(original, back):
        assert (a.config_id, a.source, a.index, a.config_type) == (b.config_id, b.source, b.index, b.config_type)
        assert a.symbols == b.symbols and a.formula == b.formula
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell, b.cell)
        assert np.array_equal(a.pbc, b.pbc)
        assert a.energy_ref == b.energy_ref or (np.isnan(a.energy_ref) and np.isnan(b.energy_ref))
        if a.forces_ref is None:
            assert b.forces_ref is None
        else:
            assert np.array_equal(a.forces_ref, b.forces_ref)


def test_chunks_hold_few_large_or_many_small_configurations():
    small = [from_atoms(bulk("Si", "diamond", a=5.43), k) for k in range(600)]  # 2 atoms each
    assert [len(c) for c in chunked(small, 256)] == [256, 256, 88]
    big = [from_atoms(bulk("Al", "fcc", a=4.05, cubic=True).repeat(3), k) for k in range(50)]  # 108 atoms each
    sizes = [len(c) for c in chunked(big, 256)]
    assert sum(sizes) == 50 and max(sizes) * 108 <= ATOMS_PER_CHUNK and len(sizes) == 3
    huge = from_atoms(bulk("Al", "fcc", a=4.05, cubic=True).repeat(9), 0)  # larger than a chunk: alone
    assert [len(c) for c in chunked([huge, *big[:2]], 256)] == [1, 2]
