"""`kimtrain experiment --quick` end to end on the bundled GPAW demo set: every piece really works."""
import numpy as np
import pandas as pd
import yaml

from kimtrain.cli import main

from conftest import demo_spec


def test_quick_experiment_on_demo_set(tmp_path):
    spec = demo_spec()
    spec["quick"] = {"epochs": 10, "classifier_epochs": 20, "pretrain_epochs": 5, "pool_max": 400,
                     "alphas": [0.1, 1.0]}
    spec["ablations"] = {"tukey": True, "tsne": True}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(spec))
    out = tmp_path / "exp"
    assert main(["experiment", str(config), "--out", str(out), "--quick"]) == 0
    df = pd.read_csv(out / "results.csv")
    for model in ("schnet", "soapnet"):
        runs = df[df.model == model].set_index("strategy")
        assert {"baseline", "la", "mp", "mp+la", "la (MSE, no Tukey)"} <= set(runs.index)
        assert np.isfinite(runs[["val_mae", "test_mae", "test_mae_per_atom"]].to_numpy()).all()
        la = runs.loc["la"]
        n_classes = len(la.eips.split(",")) + 1
        assert la.classifier_val_accuracy > 1.0 / n_classes      # above random guessing
        assert la.n_selected > 0 and la.label_normal > 0          # pool labels chosen, checked against hidden DFT
        mp = runs.loc["mp"]
        assert mp.pretrain_loss_last < mp.pretrain_loss_first     # pretraining learns
        assert runs.loc["mp+la"].pretrain_loss_first == mp.pretrain_loss_first  # one shared pretraining
    best = df[df.strategy == "best EIP"]  # the reference row: one per split, shown with every model
    assert len(best) == 1 and best.model.item() == "(EIP)" and best.eip.item() in la.eips.split(",")
    assert best.test_mae_per_atom.item() > 0
    table = (out / "results.md").read_text()
    assert "## si-demo / schnet" in table and "| baseline |" in table and table.count("| best EIP |") == 2
    assert (out / "si-demo" / "tsne_schnet.png").stat().st_size > 10_000

    # a second invocation for one model and strategy skips the finished run and keeps every other row
    n_rows = len(df)
    assert main(["experiment", str(config), "--out", str(out), "--quick", "--models", "schnet",
                 "--strategies", "baseline"]) == 0
    again = pd.read_csv(out / "results.csv")
    assert len(again) == n_rows and set(again.model) == {"schnet", "soapnet", "(EIP)"}
    assert "## si-demo / soapnet" in (out / "results.md").read_text()


def test_the_la_alphas_reuse_the_classifiers_kept_pool_predictions(tmp_path):
    """The classifier's pool and validation predictions are kept beside its best.pt and every LA
    alpha reads them; they are used only while that best.pt is the one that made them."""
    import os

    from kimtrain import strategies
    from kimtrain.strategies.la import train_classifier
    from kimtrain.config import load
    from kimtrain.training.context import load_context
    spec = demo_spec()
    spec["strategies"] = ["la"]
    spec["quick"] = {"epochs": 2, "classifier_epochs": 3, "pool_max": 120, "alphas": [0.1, 1.0], "models": ["schnet"]}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(spec))
    out = tmp_path / "exp"
    assert main(["experiment", str(config), "--out", str(out), "--quick"]) == 0
    seed_dir = out / "si-demo" / "schnet" / "seed0"
    folder = seed_dir / "shared" / "classifier"
    kept = dict(np.load(folder / "predictions.npz"))
    run = load(seed_dir / "la" / "config.yaml")
    ctx = load_context(run)
    assert np.array_equal(kept["pool"], ctx.idx["pool"]) and len(kept["pool_class"]) == len(ctx.idx["pool"])
    labels = strategies.get("la").prepare(ctx, run.out, True, seed_dir / "shared").labels

    def classes():
        return train_classifier(ctx, labels, folder, resume=True).pool_class

    (folder / "predictions.npz").unlink()
    assert np.array_equal(classes(), kept["pool_class"])  # classified again: the same classes, kept again
    other = dict(kept, pool_class=(kept["pool_class"] + 1) % (len(labels.names) + 1))
    np.savez(folder / "predictions.npz", **other)
    assert np.array_equal(classes(), other["pool_class"])  # read, not recomputed
    stamp = (folder / "best.pt").stat().st_mtime_ns
    os.utime(folder / "best.pt", ns=(stamp + 10**9, stamp + 10**9))  # a newer best.pt: predictions are stale
    assert np.array_equal(classes(), kept["pool_class"])
