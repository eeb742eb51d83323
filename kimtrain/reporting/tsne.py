"""t-SNE of pooled representations before and after multi-task pretraining, coloured by DFT energy."""
from __future__ import annotations

import numpy as np
import torch

from ..training.inference import predict
from ..models.factory import model_from_meta, new_model


def pooled(model, graphs, batch_size=64) -> np.ndarray:
    """(n, hidden) sum-pooled representations."""
    return predict(model, graphs, batch_size, output=lambda m, batch: m.pooled(batch))


def tsne_before_after(ctx, pretrain_dir, path, max_points: int = 1000):
    """Two t-SNE panels (random-init vs pretrained representation) of labelled configurations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    ids = np.concatenate([ctx.idx[m] for m in ("train", "val", "test")])
    ids = ids[np.isfinite(ctx.dft[ids])][:max_points]
    graphs = [ctx.graphs[i] for i in ids]
    state = torch.load(f"{pretrain_dir}/best.pt", weights_only=False, map_location="cpu")
    after = model_from_meta(state)
    after.load_state_dict(state["model"])
    before = new_model(ctx.run.model, after.n_out, ctx.graphs, graphs, ctx.run.train.seed)
    color = ctx.dft[ids] / ctx.data.n_atoms[ids]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), dpi=120)
    for ax, model, title in zip(axes, (before, after), ("before pretraining", "after multi-task pretraining")):
        xy = TSNE(perplexity=min(30, len(ids) - 1), random_state=0).fit_transform(pooled(model, graphs))
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=color, s=8, cmap="viridis")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes, label="DFT energy (eV/atom)")
    fig.savefig(path)
    plt.close(fig)
