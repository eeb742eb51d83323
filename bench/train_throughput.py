"""SchNet training throughput: kimtrain vs PyTorch Geometric's SchNet, same data, batches and settings.

Three models, trained from the same seed on the same batches: kimtrain's SchNet (tabulated filters),
"before" (the same network as kimtrain computed it until 2026-11-23: the filter network on every
pair and x[j] gathers; BeforeSchNet below) and PyG's SchNet. 64-atom Si cells (Si_fitsnap VASP
frames from ../shared/data), batch 32, hidden 128, 5 interaction blocks, 50 Gaussians, cutoff 5 A;
PyG gets its edges from the same neighbour list (full list, both directions), since radius_graph
needs torch_cluster. All learn per-atom energies with the same per-species reference and scale. Prints configurations/s, the ratio, and validation MAE after the
same number of steps; then peak memory of one training step on 256-atom Al cells at 7 A, batch 32.
Speeds are summed over the seeds; validation MAE is printed per seed, so that equal accuracy
can be judged against the seed-to-seed spread.
    python bench/train_throughput.py [--steps 100] [--seeds 0,1,2] [--device cpu|cuda]
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kimtrain.data.dataset import load_dataset
from kimtrain.data.graphs import build_graphs, collate
from kimtrain.models import SchNet
from kimtrain.data.reference import fit_species_reference

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Si_fitsnap.extxyz.gz"


class BeforeSchNet(SchNet):
    """kimtrain's SchNet as it was before the training-speed work: filters evaluated on every pair,
    messages gathered with x[j] (whose backward is a slow index_put_ on CPU)."""

    def __init__(self, **kw):
        super().__init__(filter="direct", **kw)

    def atom_features(self, batch):
        d = batch.vectors().norm(dim=-1)
        i, j = batch.edge_i, batch.edge_j
        h = self.embedding(batch.numbers)
        for b, w in enumerate(self.filter_values(d)):
            x = self.in2f[b](h)
            agg = torch.zeros_like(x).index_add_(0, i, x[j] * w).index_add_(0, j, x[i] * w)
            h = h + self.f2out[b](agg)
        return h


MODELS = ("kimtrain", "before", "pyg")


def make_model(name, mu, scale, cutoff):
    if name == "pyg":
        return PygModel(mu, scale, cutoff)
    model = (SchNet if name == "kimtrain" else BeforeSchNet)(hidden=128, n_blocks=5, n_rbf=50, cutoff=cutoff)
    model.species_ref[14, 0], model.scale[0] = mu, scale
    return model


class PeriodicEdges(torch.nn.Module):
    """PyG interaction graph: the current batch's pairs in both directions, distances from positions."""

    def use(self, batch):
        self.src = torch.cat([batch.edge_j, batch.edge_i])
        self.dst = torch.cat([batch.edge_i, batch.edge_j])
        self.shift = torch.cat([batch.shift, -batch.shift])

    def forward(self, pos, _batch):
        return torch.stack([self.src, self.dst]), (pos[self.src] - pos[self.dst] + self.shift).norm(dim=-1)


class PygModel(torch.nn.Module):
    """torch_geometric SchNet fed with the periodic edges of a kimtrain Batch."""

    def __init__(self, mu, scale, cutoff):
        super().__init__()
        from torch_geometric.nn.models import SchNet as PygSchNet
        atomref = torch.zeros(100, 1)
        atomref[14] = mu
        self.edges = PeriodicEdges()
        self.net = PygSchNet(hidden_channels=128, num_filters=128, num_interactions=5, num_gaussians=50,
                             cutoff=cutoff, interaction_graph=self.edges, mean=0.0, std=scale, atomref=atomref)

    def forward(self, batch):
        self.edges.use(batch)
        return self.net(batch.numbers, batch.positions, batch.batch)


def train(model, graphs, energies, n_atoms, steps, device, seed=0):
    """`steps` Adam steps on per-atom MSE with batches of 32; returns (seconds, model)."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    rng = np.random.default_rng(seed)
    batches = [rng.choice(len(graphs), 32, replace=False) for _ in range(steps)]
    pre = [(collate([graphs[i] for i in b]).to(device), torch.tensor(energies[b] / n_atoms[b], dtype=torch.float32,
                                                                    device=device)) for b in batches]
    for batch, target in pre[:3]:  # warm-up
        loss = ((model(batch).view(-1) / batch.n_atoms - target) ** 2).mean()
        loss.backward()
        opt.zero_grad()
    sync(device)
    t0 = time.perf_counter()
    for batch, target in pre:
        loss = ((model(batch).view(-1) / batch.n_atoms - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0, model


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def val_mae(model, graphs, energies, n_atoms, device):
    model.eval()
    pred = np.concatenate([model(collate(graphs[s:s + 32]).to(device)).view(-1).cpu().numpy()
                           for s in range(0, len(graphs), 32)])
    return float(np.mean(np.abs(pred - energies) / n_atoms))


def memory_step(which: str, device: str, factory=None):
    """Child process: one training step of factory(which, mu, scale, cutoff) on 32 rattled 256-atom Al
    cells at 7 A; prints the growth of the resident set during the step (peak minus before, MB;
    GPU: peak allocated) and the step's seconds."""
    from ase.build import bulk
    frames = []
    for k in range(32):
        at = bulk("Al", "fcc", a=4.05, cubic=True).repeat((4, 4, 4))
        at.rattle(0.05, seed=k)
        frames.append(at)
    graphs = build_graphs(frames, 7.0)
    dev = torch.device(device)
    model = (factory or make_model)(which, -3.7, 0.05, 7.0).to(dev)
    batch = collate(graphs).to(dev)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set (VmHWM) to now
    base = status_mb("VmRSS")
    t0 = time.perf_counter()
    model(batch).sum().backward()
    sync(dev)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else status_mb("VmHWM") - base
    print(f"{peak:.0f} {seconds:.2f}")


def status_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), MB."""
    line = next(v for v in Path("/proc/self/status").read_text().splitlines() if v.startswith(key + ":"))
    return int(line.split()[1]) / 1024


def compare(script: str, description: str, models, factory, ratio_line, default_steps: int):
    """The benchmark both throughput scripts run: parse the command line; train each of `models`
    (factory(name, mu, scale, cutoff)) from the same seeds on the same 64-atom Si batches; print
    configs/s, validation MAE per seed and ratio_line(configs/s per model); then one step of each on
    the 256-atom Al cells, each in a child process of `script` (which lands in memory_step)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=default_steps)
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (model weights and batches)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.memory_child:
        return memory_step(*a.memory_child, factory=factory)
    if not DATA.exists():
        sys.exit(f"{DATA} not found: the benchmark uses the Si_fitsnap set of ../shared/data")
    device, seeds = torch.device(a.device), [int(s) for s in a.seeds.split(",")]
    data = load_dataset([DATA])
    keep = np.random.default_rng(0).permutation(np.flatnonzero(data.n_atoms == 64))
    tr, va = keep[:512], keep[512:768]
    graphs = dict(zip(keep, build_graphs([data.atoms[i] for i in keep], 5.0, key=data.key + "|bench64")))
    mu = fit_species_reference([data.atoms[i] for i in tr], data.energy[tr], ["Si"])["Si"]
    scale = float(np.std(data.energy[tr] / 64 - mu))
    e, n = data.energy, data.n_atoms
    g_tr, g_va = [graphs[i] for i in tr], [graphs[i] for i in va]
    print(f"# device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; 64-atom Si_fitsnap "
          f"cells, batch 32, {a.steps} steps, seeds {seeds}")
    secs = {name: 0.0 for name in models}
    for seed in seeds:
        maes = []
        for name in models:
            torch.manual_seed(seed)
            dt, model = train(factory(name, mu, scale, 5.0), g_tr, e[tr], n[tr], a.steps, device, seed)
            secs[name] += dt
            maes.append(f"{name} {1000 * val_mae(model, g_va, e[va], n[va], device):.1f}")
        print(f"seed {seed}: val MAE (meV/atom) " + ", ".join(maes), flush=True)
    speed = {name: 32 * a.steps * len(seeds) / secs[name] for name in models}
    for name in models:
        print(f"{name:9} {speed[name]:8.1f} configs/s")
    print(ratio_line(speed))
    for name in models:
        out = subprocess.run([sys.executable, script, "--device", a.device, "--memory-child", name, a.device],
                             capture_output=True, text=True)
        print(f"one step on 32 x 256-atom Al cells at 7 A ({name}): {memory_report(out)}")


def main():
    compare(__file__, __doc__.splitlines()[0], MODELS, make_model,
            lambda speed: f"speed ratio kimtrain / PyG: {speed['kimtrain'] / speed['pyg']:.2f}; kimtrain / before: "
                          f"{speed['kimtrain'] / speed['before']:.2f}", default_steps=100)


def memory_report(out) -> str:
    """The memory child's answer in words."""
    if out.returncode or not out.stdout.strip():
        return f"failed: {out.stderr.strip().splitlines()[-1:]}"
    peak, seconds = out.stdout.split()
    return f"peak memory {peak} MB, {seconds} s"


if __name__ == "__main__":
    main()
