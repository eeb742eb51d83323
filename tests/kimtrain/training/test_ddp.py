"""`kimtrain fit` under torchrun: 2 CPU processes (gloo) train the model 1 process trains."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kimtrain import Calculator
from kimtrain.data.dataset import load_dataset
from kimtrain.data.splits import indices, read_split

RTOL = 1e-5  # float32 sums in another order: observed differences are about 3e-7 relative


def fit(cu, out, *launcher, extra=()):
    cmd = [*launcher, "kimtrain", "fit", "--data", cu["data"], "--split", cu["split"], "--config", cu["config"],
           "--epochs", "3", "--threads", "1", "--out", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_two_ranks_match_one_process_and_the_checkpoint_loads_in_the_calculator(cu, tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m"]
    one = fit(cu, tmp_path / "one", sys.executable, "-m")
    two = fit(cu, tmp_path / "two", *torchrun, extra=["--ddp"])
    h1, h2 = pd.read_csv(tmp_path / "one" / "history.csv"), pd.read_csv(tmp_path / "two" / "history.csv")
    assert len(h1) == len(h2) == 3
    for col in ("lr", "train_loss", "val_mae", "val_mae_per_atom"):
        np.testing.assert_allclose(h2[col], h1[col], rtol=RTOL, err_msg=col)
    for key in ("val_mae", "test_mae", "test_mae_per_atom"):
        np.testing.assert_allclose(two[key], one[key], rtol=RTOL, err_msg=key)
    assert two["best_epoch"] == one["best_epoch"] and two["n_test"] == one["n_test"]

    # the DDP checkpoint is a plain one: a single process scores it as rank 0 did
    data = load_dataset([cu["data"]])
    test = indices(read_split(cu["split"], len(data)), "test")
    calc = Calculator(tmp_path / "two", device="cpu")
    err = []
    for i in test:
        at = data.atoms[i].copy()
        at.calc = calc
        err.append(abs(at.get_potential_energy() - data.energy[i]))
    np.testing.assert_allclose(np.mean(err), two["test_mae"], rtol=1e-5)

    # --resume under torchrun continues the DDP run: a finished run stays the same
    shutil.copytree(tmp_path / "two", tmp_path / "again")
    again = fit(cu, tmp_path / "again", *torchrun, extra=["--resume"])
    np.testing.assert_allclose(again["test_mae"], two["test_mae"], rtol=1e-6)


def test_ddp_flag_outside_torchrun_is_refused(cu, tmp_path):
    done = subprocess.run([sys.executable, "-m", "kimtrain", "fit", "--data", cu["data"], "--split", cu["split"],
                           "--out", str(tmp_path / "x"), "--ddp"], capture_output=True, text=True)
    assert done.returncode == 2 and "--ddp: start kimtrain under torchrun" in done.stderr
    assert not (tmp_path / "x").exists()
