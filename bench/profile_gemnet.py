"""Where a GemNet-T training step spends its time: the profile its triplet work is judged by.

One batch of 32 rattled 64-atom Si cells at 5 Å (bench/model_step.py's si64 system: 28,672 pairs,
57,344 directed edges, about 1.6 M triplets), hidden 128, 5 blocks, energy loss. Run once
per setting (memory is the process's own peak): with `triplet_chunk` 1,000,000 (the default) the
batch has more triplets than one chunk, so every block is recomputed during backward and every
chunk once more inside it; with 4,000,000 nothing is recomputed. For each: the time and resident-memory growth of a step, then forward + backward split
by operator (torch.profiler, rescaled to the measured step) into matrix products, gathers and
scatters, elementwise work, the triplet enumeration and the rest, and the share of operators on
triplet-sized tensors.
    python bench/profile_gemnet.py [--steps 1] [--chunk 1000000]
    python bench/profile_gemnet.py --chunk 4000000      # one chunk: no recomputation
"""
import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch

from model_step import system_batch
from train_throughput import status_mb

CATEGORIES = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
    "gathers and scatters": ("aten::index_select", "aten::index", "aten::index_add_", "aten::index_put_",
                             "aten::_index_put_impl_", "aten::gather", "aten::scatter_add_",
                             "aten::index_select_backward", "aten::embedding_dense_backward"),
    "elementwise (basis, activations, products)": (
        "aten::mul", "aten::mul_", "aten::add", "aten::add_", "aten::sub", "aten::div", "aten::pow", "aten::sum",
        "aten::softplus", "aten::softplus_backward", "aten::exp", "aten::sin", "aten::cos", "aten::clamp",
        "aten::neg", "aten::linalg_vector_norm", "aten::where", "aten::clamp_backward", "aten::threshold_backward",
        "aten::sub_", "aten::fill_", "aten::zero_", "aten::copy_", "aten::cat", "aten::stack"),
    "triplet enumeration": ("aten::repeat_interleave", "aten::cumsum", "aten::argsort", "aten::sort",
                            "aten::searchsorted", "aten::arange", "aten::ne", "aten::nonzero", "aten::bincount"),
}


def run(chunk: int, batch, steps: int):
    from kimtrain.config import ModelConfig
    from kimtrain.models.factory import build_model
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="gemnet", cutoff=5.0, triplet_chunk=chunk), 1)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM) to now
    before = status_mb("VmRSS")
    t0 = time.perf_counter()
    model(batch).sum().backward()
    first = time.perf_counter() - t0
    grown = status_mb("VmHWM") - before
    with torch.profiler.profile(record_shapes=True) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            model.zero_grad()
            model(batch).sum().backward()
        step = (time.perf_counter() - t0) / steps
    split, triplet_time = defaultdict(float), 0.0
    for ev in prof.key_averages(group_by_input_shape=True):
        cat = next((c for c, ops in CATEGORIES.items() if ev.key in ops), "other operators")
        split[cat] += ev.self_cpu_time_total / 1e6
        # operators on triplet-sized tensors (over 200,000 rows: the batch has 57,344 edges)
        if any(isinstance(sh, list) and len(sh) >= 1 and isinstance(sh[0], int) and sh[0] > 200_000
               for sh in ev.input_shapes or []):
            triplet_time += ev.self_cpu_time_total / 1e6
    scale = step * steps / sum(split.values())
    print(f"\ntriplet_chunk {chunk:,}: first step {first:.1f} s, then {step:.1f} s per step; "
          f"memory growth {grown:,.0f} MB")
    for k, v in sorted(split.items(), key=lambda kv: -kv[1]):
        print(f"  {k:50s} {100 * v / sum(split.values()):5.1f} %   {v * scale / steps:6.2f} s/step")
    print(f"  {'of which on triplet-sized tensors':50s} {100 * triplet_time / sum(split.values()):5.1f} %")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--chunk", type=int, default=1_000_000,
                   help="triplet_chunk (run once per value: memory is the process's own peak)")
    a = p.parse_args()
    batch, _ = system_batch("si64")
    from kimtrain.models.triplets import Triplets
    n = len(batch.edge_i)
    target = torch.cat([batch.edge_i, batch.edge_j])
    source = torch.cat([batch.edge_j, batch.edge_i])
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; 32 x 64-atom Si, {n:,} pairs, "
          f"{Triplets(target, source, len(batch.numbers), 10**9).n_triplets:,} triplets")
    run(a.chunk, batch, a.steps)


if __name__ == "__main__":
    main()
