"""SchNet keeps its filter tables between eval-mode calls (MD and relaxations call it thousands of
times with the same weights) and recomputes them when the weights change or in training."""
import torch

from kimtrain.data.graphs import collate
from kimtrain.models.factory import prepare_graphs

from conftest import rattled, tiny_model


def test_cached_tables_equal_fresh_ones_and_follow_the_weights():
    frames = rattled("Si", n=4, seed=1)
    model, cfg = tiny_model("schnet", frames, ["Si"])
    batch = collate(prepare_graphs(frames, cfg, ["Si"]), dtype=torch.float64)
    first = model(batch).detach().clone()
    assert model._grid_cache is not None
    assert torch.equal(model(batch).detach(), first)                 # from the kept tables
    model.train()
    assert torch.equal(model(batch).detach(), first) and model._grid_cache is None  # recomputed with their graph
    model.eval()
    with torch.no_grad():
        model.filter_in.weight.mul_(1.01)                             # as an optimizer step does, in place
    changed = model(batch).detach().clone()
    model.train()
    assert torch.equal(model(batch).detach(), changed) and not torch.equal(changed, first)
