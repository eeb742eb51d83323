"""Cost of a joint multi-fidelity (mf) training step, SOAPNet: a readout head per fidelity (one MLP
pass per configuration for all fidelities) against a learned fidelity embedding on the input
(strategy.mf_embedding: one pass per fidelity), measured in the same run. A step is mf's objective
on 32 DFT-labelled and 32 EIP-labelled rattled 64-atom Si cells with k EIP fidelities (random
labels: the cost does not depend on them), then backward and an Adam update. Prints steps/s and
the embedding's cost as a multiple of the heads'.
    python bench/mf_fidelity.py [--k 9] [--steps 20] [--threads 1]
"""
import argparse
import time

import numpy as np
import torch
from ase.build import bulk

from kimtrain.config import ModelConfig
from kimtrain.data.graphs import collate
from kimtrain.models.factory import new_model, prepare_graphs
from kimtrain.strategies.mf import mf_objective
from kimtrain.training.trainer import LabelledSet, as_targets
from machine import describe


def frames(n, seed):
    out = []
    for i in range(n):
        at = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
        at.rattle(0.05, seed=seed + i)
        out.append(at)
    return out


def steps_per_second(embedding: bool, k: int, steps: int) -> float:
    cfg = ModelConfig(name="soapnet", soap_r_cut=5.0)
    dft, pool = frames(32, 0), frames(64, 100)
    graphs = prepare_graphs(dft + pool, cfg, ["Si"])
    model = new_model(cfg, 1 + k, graphs, graphs, seed=0)
    if embedding:
        model.embed_fidelities()
    rng = np.random.default_rng(0)
    eip_set = LabelledSet(graphs[32:], rng.normal(-300, 1, (64, k)))
    batch = collate(graphs[:32])
    targets = as_targets(rng.normal(-300, 1, (32, 1 + k)))
    objective = mf_objective(eip_set, 1.0, True, batch_size=32, seed=0, force_weight=0.0)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            start = time.perf_counter()
        opt.zero_grad()
        objective(model, batch, targets, step).backward()
        opt.step()
    return steps / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, default=9, help="EIP fidelities (default 9, the si-forces EIPs)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant (default 20)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(describe(f"python bench/mf_fidelity.py --k {a.k} --steps {a.steps} --threads {a.threads}"))
    heads = steps_per_second(False, a.k, a.steps)
    emb = steps_per_second(True, a.k, a.steps)
    print(f"heads (one pass for all fidelities): {heads:.2f} steps/s")
    print(f"embedding (one pass per fidelity):   {emb:.2f} steps/s")
    print(f"embedding cost / heads cost: {heads / emb:.1f}x  (k = {a.k} EIP fidelities + DFT)")


if __name__ == "__main__":
    main()
