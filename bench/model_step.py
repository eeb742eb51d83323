"""Memory and time of one training step, per registered model, on two systems: 32 rattled 64-atom
Si cells at 5 Å and 32 rattled 256-atom fcc Al cells at 7 Å (the size the paper's GemNet could
not fit in 24 GB). Each model runs in a fresh child process: memory is the growth of the resident set during its
first step (CPU) or the peak allocated (CUDA); time is that of a second step (forward, backward
of the summed energy), or of the first where that took over a minute. Ratios are against SchNet measured in the same run.

--loss forces: for each model, the energy-only step and a step that trains on forces (energy and
force MSE, forces by autograd, then the double backward), with its cost as a ratio to the
energy-only step measured in the same run; forces9 does the same with 9 output heads, fitting
their forces as multi-task pretraining on 9 EIPs' forces does (one signed combination of the
heads per configuration, kimtrain.training.forces.energy_and_projected_force_mse). On the CPU, the
models with fused loops (SchNet, CGCNN, GemNet) run every step twice: fused (the default) and on the
PyTorch path (KIMTRAIN_FUSED=0), the peer of the fused one.
    python bench/model_step.py [--models schnet,cgcnn,gemnet] [--systems si64,al256] [--device cpu|cuda]
                               [--loss energy|forces|forces9]
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from train_throughput import status_mb, sync

FUSED = {"schnet", "cgcnn", "gemnet"}  # models with fused CPU loops (KIMTRAIN_FUSED=0: their PyTorch path)
SYSTEMS = {"si64": ("Si", "diamond", 5.43, (2, 2, 2), 5.0), "al256": ("Al", "fcc", 4.05, (4, 4, 4), 7.0)}


def system_batch(system: str):
    """The batch of SYSTEMS[system]: 32 cells rattled by 0.05 Å (seeds 0..31), and its cutoff (Å)."""
    from ase.build import bulk
    from kimtrain.data.graphs import build_graphs, collate
    symbol, lattice, a, repeat, cutoff = SYSTEMS[system]
    frames = []
    for k in range(32):
        at = bulk(symbol, lattice, a=a, cubic=True).repeat(repeat)
        at.rattle(0.05, seed=k)
        frames.append(at)
    return collate(build_graphs(frames, cutoff)), cutoff


def step(model_name: str, system: str, device: str, loss: str = "energy"):
    """Child: prints 'MB seconds pairs': memory of the first step, time of a second (of the first, if over a minute)."""
    from kimtrain.config import ModelConfig
    from kimtrain.models.factory import build_model
    dev = torch.device(device)
    batch, cutoff = system_batch(system)
    batch = batch.to(dev)
    torch.manual_seed(0)
    heads = 9 if loss == "forces9" else 1
    model = build_model(ModelConfig(name=model_name, cutoff=cutoff), heads).to(dev)

    def train_step():
        if loss == "energy":
            model(batch).sum().backward()
            return
        from kimtrain.training.forces import energy_and_forces, energy_and_projected_force_mse, force_mse
        if heads > 1:  # as MP pretraining does: one signed combination of the heads' forces
            batch.forces = torch.zeros(len(batch.numbers), heads, 3, device=dev)
            energy, f_loss = energy_and_projected_force_mse(model, batch, torch.Generator().manual_seed(0))
        else:
            energy, forces = energy_and_forces(model, batch, training=True)
            f_loss = force_mse(forces, torch.zeros_like(forces))
        (energy.pow(2).mean() + f_loss).backward()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM) to now
    base = status_mb("VmRSS")
    t0 = time.perf_counter()
    train_step()  # first step: memory (freed blocks of a warm-up could be reused)
    sync(dev)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else status_mb("VmHWM") - base
    if seconds < 60:  # a second step for the time, once start-up costs are paid; long steps keep the first
        model.zero_grad()
        t0 = time.perf_counter()
        train_step()
        sync(dev)
        seconds = time.perf_counter() - t0
    print(f"{peak:.0f} {seconds:.2f} {len(batch.edge_i)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="schnet,cgcnn,gemnet")
    p.add_argument("--systems", default="si64,al256")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per model and system (default 1200)")
    p.add_argument("--loss", default="energy", choices=["energy", "forces", "forces9"],
                   help="forces / forces9: also a step training on forces (1 or 9 heads), as a ratio to energy-only")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return step(*a.child[:2], a.device, a.child[2])
    models = a.models.split(",")
    print(f"# device {a.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; batch 32, "
          "hidden 128, 5 blocks, forward + backward")
    losses = ["energy"] + ([a.loss] if a.loss != "energy" else [])
    for system in a.systems.split(","):
        measured = {}
        for name in models:
            for loss in losses:
                result = child(a, name, system, loss)
                if result is None:
                    continue
                mb, seconds, pairs = result
                measured[name, loss] = (mb, seconds)
                peer = ("schnet", "energy") if loss == "energy" and name != "schnet" else (name, "energy")
                ratio = ""
                if peer in measured and peer != (name, loss):
                    base_mb, base_s = measured[peer]
                    ratio = (f"; x {'SchNet' if loss == 'energy' else 'energy-only'}: memory {mb / base_mb:.1f}, "
                             f"time {seconds / base_s:.1f}")
                print(f"{system} ({pairs} pairs) {name} [{loss}]: {mb:.0f} MB, {seconds:.2f} s per step{ratio}",
                      flush=True)
                if name in FUSED and a.device == "cpu":
                    torch_path = child(a, name, system, loss, {"KIMTRAIN_FUSED": "0"})
                    if torch_path is not None:
                        print(f"{system} ({pairs} pairs) {name} [{loss}, PyTorch path]: {torch_path[0]:.0f} MB, "
                              f"{torch_path[1]:.2f} s per step; fused x PyTorch path: memory "
                              f"{mb / torch_path[0]:.2f}, time {seconds / torch_path[1]:.2f}", flush=True)


def child(a, name, system, loss, env=None):
    """(MB, seconds, pairs) of one step in a fresh process (with `env` added to its environment), or
    None (printed why)."""
    try:
        out = subprocess.run([sys.executable, __file__, "--device", a.device, "--child", name, system, loss],
                             capture_output=True, text=True, timeout=a.timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        print(f"{system} {name} [{loss}]: no result within {a.timeout:.0f} s", flush=True)
        return None
    if out.returncode or not out.stdout.strip():
        print(f"{system} {name} [{loss}]: failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    mb, seconds, pairs = out.stdout.split()
    return float(mb), float(seconds), int(pairs)


if __name__ == "__main__":
    main()
