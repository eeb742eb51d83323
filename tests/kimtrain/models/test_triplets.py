"""GemNet's triplets: the enumeration against brute force, and chunking changes memory, not results."""
import numpy as np
import torch

from kimtrain.data.graphs import collate
from kimtrain.models.factory import prepare_graphs
from kimtrain.models.triplets import Triplets

from conftest import model_energies, rattled, tiny_model


def directed(batch):
    return torch.cat([batch.edge_i, batch.edge_j]), torch.cat([batch.edge_j, batch.edge_i])


def test_triplets_are_every_pair_of_edges_meeting_at_an_atom_but_the_reverse():
    frames = rattled(n=2, seed=4, amp=0.1)
    model, cfg = tiny_model("gemnet", frames, ["Si"], cutoff=4.0)
    batch = collate(prepare_graphs(frames, cfg, ["Si"]))
    target, source = directed(batch)
    n = len(target)
    expected = {(a, b) for b in range(n) for a in range(n)
                if target[a] == source[b] and a != (b + n // 2) % n}
    for chunk in (10**9, 13):
        trip = Triplets(target, source, len(batch.numbers), chunk)
        found = [trip.indices(lo, hi) for lo, hi in trip.ranges]
        pairs = {(int(a), int(b)) for aa, bb in found for a, b in zip(aa, bb)}
        assert pairs == expected and trip.n_triplets == len(expected)
    assert len(trip.ranges) > 10 and len(expected) > 1000


def test_chunked_triplets_give_the_same_energies_and_forces():
    frames = rattled(n=2, seed=9, amp=0.15)
    results = []
    for chunk in (10**9, 257):
        model, cfg = tiny_model("gemnet", frames, ["Si"], triplet_chunk=chunk)
        batch = collate(prepare_graphs(frames, cfg, ["Si"]), dtype=torch.float64)
        batch.positions.requires_grad_(True)
        energy = model(batch)[:, 0]
        (grad,) = torch.autograd.grad(energy.sum(), batch.positions)
        results.append((energy.detach().numpy(), grad.numpy()))
    (e1, g1), (e2, g2) = results
    assert np.allclose(e1, e2, rtol=1e-12, atol=0) and np.allclose(g1, g2, rtol=1e-9, atol=1e-12)
    assert np.abs(g1).max() > 1e-4 and np.ptp(e1) > 1e-5
    assert np.allclose(model_energies(model, cfg, frames, ["Si"]), e2, rtol=1e-12, atol=0)  # no-grad path
