"""Where a GemNet-T training step spends its time, fused triplet loops against the PyTorch path.

One batch of 32 rattled 64-atom Si cells at 5 Å (bench/model_step.py's si64 system: 28,672 pairs,
57,344 directed edges, about 1.6 M triplets), hidden 128, 5 blocks, energy loss. Two settings, each
in a fresh process (memory is the process's own peak), in the same run:
  - before: the PyTorch path (KIMTRAIN_FUSED=0) with chunks of 1,000,000 triplets, the default
    before the fused loops: the batch has more triplets than one chunk, so every block is
    recomputed during backward and every chunk once more inside it;
  - fused: the fused loops (models/fused_triplets.py) with the default chunk (one chunk here,
    shared by the five blocks, nothing recomputed).
For each: the first step (start-up and first-touch memory included), a second step, the
resident-memory growth of the first, then a profiled step split by operator (torch.profiler,
rescaled to the measured step) into matrix products, the fused triplet loops, gathers and
scatters, elementwise work, the triplet enumeration and the rest, and the share of operators on
triplet-sized tensors; then the ratios, fused against before.
    python bench/profile_gemnet.py [--steps 1]
    python bench/profile_gemnet.py --only fused --chunk 1000000   # one setting, another chunk
"""
import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from model_step import system_batch
from train_throughput import status_mb

CATEGORIES = {
    "fused triplet loops": ("_Interact", "_Bilinear"),
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


SETTINGS = {"before": ({"KIMTRAIN_FUSED": "0"}, 1_000_000), "fused": ({}, None)}


def run(chunk: int | None, batch, steps: int):
    from kimtrain.config import ModelConfig
    from kimtrain.models.factory import build_model
    from kimtrain.models.fused_triplets import can_fuse_triplets
    torch.manual_seed(0)
    cfg = ModelConfig(name="gemnet", cutoff=5.0, **({} if chunk is None else {"triplet_chunk": chunk}))
    model = build_model(cfg, 1)
    can_fuse_triplets(batch.positions)  # load (or build) the extension before timing
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM) to now
    before = status_mb("VmRSS")
    t0 = time.perf_counter()
    model(batch).sum().backward()
    first = time.perf_counter() - t0
    grown = status_mb("VmHWM") - before
    model.zero_grad()
    t0 = time.perf_counter()
    model(batch).sum().backward()
    second = time.perf_counter() - t0
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
    print(f"\n{os.environ.get('KIMTRAIN_FUSED') == '0' and 'PyTorch path' or 'fused'}, triplet_chunk "
          f"{cfg.triplet_chunk:,}: first step {first:.1f} s, second {second:.1f} s, profiled {step:.1f} s; "
          f"memory growth {grown:,.0f} MB")
    for k, v in sorted(split.items(), key=lambda kv: -kv[1]):
        print(f"  {k:50s} {100 * v / sum(split.values()):5.1f} %   {v * scale / steps:6.2f} s/step")
    print(f"  {'of which on triplet-sized tensors':50s} {100 * triplet_time / sum(split.values()):5.1f} %")
    print(f"RESULT {first} {second} {grown}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1, help="profiled steps (default 1)")
    p.add_argument("--only", choices=sorted(SETTINGS), help="run one setting only")
    p.add_argument("--chunk", type=int, help="triplet_chunk for --only (default: the setting's)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        batch, _ = system_batch("si64")
        return run(a.chunk, batch, a.steps)
    from kimtrain.models.triplets import Triplets
    batch, _ = system_batch("si64")
    n = len(batch.edge_i)
    target, source = torch.cat([batch.edge_i, batch.edge_j]), torch.cat([batch.edge_j, batch.edge_i])
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; 32 x 64-atom Si, {n:,} pairs, "
          f"{Triplets(target, source, len(batch.numbers), 10**9).n_triplets:,} triplets")
    results = {}
    for name in [a.only] if a.only else SETTINGS:
        env, chunk = SETTINGS[name]
        chunk = a.chunk if a.only and a.chunk else chunk
        cmd = [sys.executable, __file__, "--child", "--steps", str(a.steps)] + (["--chunk", str(chunk)] if chunk else [])
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
        lines = out.stdout.splitlines()
        print("\n".join(l for l in lines if not l.startswith("RESULT")) or out.stderr[-2000:], flush=True)
        results[name] = [float(v) for l in lines if l.startswith("RESULT") for v in l.split()[1:]]
    if all(results.get(k) for k in SETTINGS):
        (f1, f2, fm), (b1, b2, bm) = results["fused"], results["before"]
        print(f"\nfused against before: first step {b1 / f1:.1f}x faster, second step {b2 / f2:.1f}x faster, "
              f"memory growth x {fm / bm:.2f}")


if __name__ == "__main__":
    main()
