"""CGCNN training throughput: kimtrain's CGCNN vs a stack of PyTorch Geometric's `CGConv` at the same settings.

Both: embedding of Z, 5 gated convolutions (hidden 128) on 50 Gaussians over [0, 5] Å, per-atom MLP
head, sum readout, the same per-species reference and scale, trained from the same seed on the same
batches of 64-atom Si cells (Si_fitsnap, ../shared/data), batch 32. PyG gets both directions of
kimtrain's neighbour list (radius_graph needs torch_cluster) and its Gaussian expansion; kimtrain's
messages also carry the cosine cutoff. "before" is kimtrain's CGCNN as it was before its fused
loops: the edge term evaluated on every pair, the convolution on the PyTorch path (filter
"direct"). Prints configurations/s, the ratios, validation MAE per seed, and one step's peak memory
and time on 32 x 256-atom Al cells at 7 Å.
    python bench/cgcnn_throughput.py [--steps 60] [--seeds 0,1,2] [--device cpu|cuda]
"""
import torch

from kimtrain.models import CGCNN
from kimtrain.models.common import mlp, sum_by
from train_throughput import compare

MODELS = ("kimtrain", "before", "pyg")


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
    model = CGCNN(hidden=128, n_layers=5, n_rbf=50, cutoff=cutoff, filter="direct" if name == "before" else "tabulated")
    model.species_ref[14, 0] = model.species_ref[13, 0] = mu
    model.scale[0] = scale
    return model


def main():
    compare(__file__, __doc__.splitlines()[0], MODELS, make_model,
            lambda speed: f"speed ratio kimtrain / PyG CGConv: {speed['kimtrain'] / speed['pyg']:.2f}; kimtrain / "
                          f"before: {speed['kimtrain'] / speed['before']:.2f}", default_steps=60)


if __name__ == "__main__":
    main()
