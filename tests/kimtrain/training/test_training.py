"""Real training on the Cu-Ag-Au VASP set (../shared/data): exact resume, LA with nothing selected.
(Every model's own training checks are in test_model_suite.py.)"""
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from kimtrain.config import from_dict
from kimtrain.training.inference import energy_validator
from kimtrain.models.factory import model_meta, new_model
from kimtrain.data.reference import set_reference
from kimtrain.training.context import energy_objective, load_context
from kimtrain.training.trainer import Trainer

@pytest.fixture
def one_thread():
    """Bitwise reproducibility needs a fixed reduction order: parallel CPU kernels on a loaded
    machine may split sums differently from run to run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_interrupted_run_resumes_exactly(cu, tmp_path, one_thread):
    raw = yaml.safe_load(open(cu["config"]))
    run = from_dict({**raw, "data": [cu["data"]], "split": cu["split"],
                     "train": {"epochs": 4, "progress": False, "batch_size": 64}})
    ctx = load_context(run)
    tr = ctx.idx["train"]
    train = ctx.subset(tr, ctx.dft[tr])
    validate = energy_validator(ctx.subset(ctx.idx["val"], ctx.dft[ctx.idx["val"]]), 64)

    def train_once(out, interrupt_at=None, resume=False):
        torch.manual_seed(0)
        model = new_model(run.model, 1, ctx.graphs, train.graphs)
        set_reference(model, [ctx.data.atoms[i] for i in tr], ctx.dft[tr], ctx.species)
        base = energy_objective(True)

        def objective(m, batch, targets, step):
            if step == interrupt_at:
                raise KeyboardInterrupt
            return base(m, batch, targets, step)
        Trainer(model, run.train, out, objective, validate, "val_mae_per_atom",
                meta=model_meta(run.model, 1, ctx.graphs, ctx.species)).fit(train, resume)
        return model

    full = train_once(tmp_path / "full")
    steps_per_epoch = -(-len(train) // 64)
    with pytest.raises(KeyboardInterrupt):
        train_once(tmp_path / "cut", interrupt_at=2 * steps_per_epoch + 3)
    assert len(pd.read_csv(tmp_path / "cut" / "history.csv")) == 2
    resumed = train_once(tmp_path / "cut", resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / "history.csv"),
                                  pd.read_csv(tmp_path / "cut" / "history.csv"))


def test_label_augmentation_with_no_selected_label_trains_like_baseline(cu, tmp_path):
    """A classifier that picks no EIP for any pool configuration leaves nothing to augment."""
    raw = yaml.safe_load(open(cu["config"]))
    run = from_dict({**raw, "data": [cu["data"]], "split": cu["split"], "train": {"epochs": 2, "progress": False}})
    ctx = load_context(run)
    empty = ctx.subset(np.array([], dtype=int), np.array([]))
    assert len(empty) == 0 and empty.targets.shape == (0, 1)
    from kimtrain.training.context import train_energy
    _, best = train_energy(ctx, tmp_path / "la_empty", aux=empty, alpha=1.0)
    assert np.isfinite(best["val_mae_per_atom"])
