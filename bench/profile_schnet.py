"""Where a SchNet training step spends its time, before and after the training-speed work.

Batches of 32 64-atom Si_fitsnap cells (cutoff 5 A), the kimtrain and "before" models of
train_throughput.py. Batching (collate) and the Adam step are timed on their own; forward and
backward are split by operator with torch.profiler into matrix products (in "before", mostly the
filter network on every pair), gathers and scatters, elementwise multiplies (filter x message,
interpolation), radial basis / activations, kimtrain's fused convolution loop, and the rest.
    python bench/profile_schnet.py [--steps 20]
"""
import argparse
import time
from collections import defaultdict

import numpy as np
import torch

from train_throughput import DATA, make_model
from kimtrain.data.dataset import load_dataset
from kimtrain.data.graphs import build_graphs, collate

CATEGORIES = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
    "gathers and scatters": ("aten::index", "aten::index_select", "aten::index_put_", "aten::_index_put_impl_",
                             "aten::index_add_", "aten::scatter_add_", "aten::gather", "aten::embedding_dense_backward"),
    "elementwise multiply": ("aten::mul", "aten::lerp", "aten::mul_"),
    "radial basis, cutoff, activations": ("aten::exp", "aten::cos", "aten::sub", "aten::pow", "aten::softplus",
                                          "aten::softplus_backward", "aten::lt", "aten::linalg_vector_norm",
                                          "aten::norm", "aten::sin", "aten::rsub", "aten::div", "aten::neg"),
}


def profile(name, batches, graphs, show=True):
    """Time collate, forward + backward and the Adam step; then split forward + backward by operator
    in a second pass over the same batches (profiled without optimizer steps)."""
    torch.manual_seed(0)
    model = make_model(name, -5.4, 0.05, 5.0)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    times = defaultdict(float)
    for idx, target in batches:
        t0 = time.perf_counter()
        batch = collate([graphs[i] for i in idx])
        t1 = time.perf_counter()
        loss = ((model(batch).view(-1) / 64 - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        times["batching and data (collate)"] += t1 - t0
        times["forward + backward"] += t2 - t1
        times["optimizer (Adam)"] += t3 - t2
    with torch.profiler.profile() as prof:
        for idx, target in batches:
            batch = collate([graphs[i] for i in idx])
            loss = ((model(batch).view(-1) / 64 - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
    split = defaultdict(float)
    for ev in prof.key_averages():
        cat = next((c for c, ops in CATEGORIES.items() if ev.key in ops), "other operators")
        if ev.key in ("_Conv", "_Scat", "_PDot"):  # kimtrain's fused loops (models/fused.py)
            cat = "fused convolution (interpolate, multiply, scatter)"
        split[cat] += ev.self_cpu_time_total / 1e6
    fb = times.pop("forward + backward")
    scale = fb / sum(split.values())  # profiler self times rescaled to the measured forward + backward
    rows = {**{k: v * scale for k, v in split.items()}, **times}
    total = sum(rows.values())
    if show:
        print(f"\n{name}: {1000 * total / len(batches):.0f} ms per step")
        for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
            print(f"  {k:36s} {100 * v / total:5.1f} %   {1000 * v / len(batches):7.1f} ms/step")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    data = load_dataset([DATA])
    keep = np.flatnonzero(data.n_atoms == 64)[:512]
    graphs = build_graphs([data.atoms[i] for i in keep], 5.0)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(a.steps):
        idx = rng.choice(len(graphs), 32, replace=False)
        batches.append((idx, torch.tensor(data.energy[keep[idx]] / 64, dtype=torch.float32)))
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {a.steps} steps of 32 x 64-atom Si, "
          f"{len(collate([graphs[i] for i in batches[0][0]]).edge_i)} pairs in the first batch")
    for name in ("before", "kimtrain"):
        profile(name, batches[:2], graphs, show=False)  # warm-up
        profile(name, batches, graphs)


if __name__ == "__main__":
    main()
