"""CGCNN training throughput: kimtrain's CGCNN vs a stack of PyTorch Geometric's `CGConv` at the same settings.

Both: embedding of Z, 5 gated convolutions (hidden 128) on 50 Gaussians over [0, 5] Å, per-atom MLP
head, sum readout, the same per-species reference and scale, trained from the same seed on the same
batches of 64-atom Si cells (Si_fitsnap, ../shared/data), batch 32. PyG gets both directions of
kimtrain's neighbour list (radius_graph needs torch_cluster) and its Gaussian expansion; kimtrain's
messages also carry the cosine cutoff. Prints configurations/s, the ratio, validation MAE per seed,
and one step's peak memory and time on 32 x 256-atom Al cells at 7 Å.
    python bench/cgcnn_throughput.py [--steps 60] [--seeds 0,1,2] [--device cpu|cuda]
"""
import argparse
import subprocess
import sys

import numpy as np
import torch

from kimtrain.data import load_dataset
from kimtrain.graphs import build_graphs
from kimtrain.models import CGCNN
from kimtrain.models.common import mlp, sum_by
from kimtrain.reference import fit_species_reference
from train_throughput import DATA, memory_report, memory_step, train, val_mae

MODELS = ("kimtrain", "pyg")


class PygCGCNN(torch.nn.Module):
    """Embedding, CGConv x 5 (no batch norm; CGConv adds its input back), MLP head, sum readout."""

    def __init__(self, mu, scale, cutoff, hidden=128, n_layers=5, n_rbf=50):
        super().__init__()
        from torch_geometric.nn import CGConv
        self.embedding = torch.nn.Embedding(119, hidden)
        self.convs = torch.nn.ModuleList(CGConv(hidden, dim=n_rbf, aggr="add") for _ in range(n_layers))
        self.head = mlp([hidden, hidden // 2, 1])
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_rbf))
        self.gamma = 0.5 / (cutoff / (n_rbf - 1)) ** 2
        self.mu, self.scale = mu, scale

    def forward(self, batch):
        src = torch.cat([batch.edge_j, batch.edge_i])
        dst = torch.cat([batch.edge_i, batch.edge_j])
        d = batch.vectors().norm(dim=-1).repeat(2)
        rbf = torch.exp(-self.gamma * (d[:, None] - self.centers) ** 2)
        h = self.embedding(batch.numbers)
        for conv in self.convs:
            h = conv(h, torch.stack([src, dst]), rbf)
        return sum_by(self.head(h) * self.scale + self.mu, batch.batch, batch.n_configs)


def make_model(name, mu, scale, cutoff):
    if name == "pyg":
        return PygCGCNN(mu, scale, cutoff)
    model = CGCNN(hidden=128, n_layers=5, n_rbf=50, cutoff=cutoff)
    model.species_ref[14, 0] = model.species_ref[13, 0] = mu
    model.scale[0] = scale
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (model weights and batches)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.memory_child:
        return memory_step(*a.memory_child, factory=make_model)
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
    secs = {name: 0.0 for name in MODELS}
    for seed in seeds:
        maes = []
        for name in MODELS:
            torch.manual_seed(seed)
            dt, model = train(make_model(name, mu, scale, 5.0), g_tr, e[tr], n[tr], a.steps, device, seed)
            secs[name] += dt
            maes.append(f"{name} {1000 * val_mae(model, g_va, e[va], n[va], device):.1f}")
        print(f"seed {seed}: val MAE (meV/atom) " + ", ".join(maes), flush=True)
    speed = {name: 32 * a.steps * len(seeds) / secs[name] for name in MODELS}
    for name in MODELS:
        print(f"{name:9} {speed[name]:8.1f} configs/s")
    print(f"speed ratio kimtrain / PyG CGConv: {speed['kimtrain'] / speed['pyg']:.2f}")
    for name in MODELS:
        out = subprocess.run([sys.executable, __file__, "--device", a.device, "--memory-child", name, a.device],
                             capture_output=True, text=True)
        print(f"one step on 32 x 256-atom Al cells at 7 Å ({name}): {memory_report(out)}")


if __name__ == "__main__":
    main()
