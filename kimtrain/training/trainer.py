"""The training loop: Adam, linear or slanted-triangular learning rate, gradient clipping,
best-validation and last checkpoints, exact resume, CSV + TensorBoard logs, progress bars."""
from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kimlabel import replacing

from . import ddp
from ..config import TrainConfig
from ..data.graphs import collate


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class LabelledSet:
    """Graphs with targets (n, k): energies in eV (NaN = missing) or class indices (k = 1), and
    optionally per-configuration forces (n_i, k, 3) in eV/Å (NaN = masked)."""
    graphs: list
    targets: np.ndarray
    forces: list | None = None

    def __len__(self):
        return len(self.graphs)

    @property
    def n_atoms(self):
        return np.array([len(g.numbers) for g in self.graphs])

    def batch_forces(self, idx) -> torch.Tensor:
        """Forces of configurations idx, atoms concatenated in batch order: (sum n_i, k, 3) float32, eV/Å."""
        return torch.from_numpy(np.concatenate([self.forces[i] for i in idx])).float()


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def batches(data: LabelledSet, batch_size: int, generator: torch.Generator | None = None, rank: int = 0,
            world: int = 1):
    """(Batch, targets tensor, weight) per step: rank `rank`'s share of each global batch of
    `batch_size` (all of it on one process), shuffled when a generator is given.

    weight = share size * world / global batch size: a loss that is a mean over the share, times
    weight, averaged over ranks (as DDP averages gradients), is the mean over the global batch. A
    rank left without configurations takes one with weight 0, so it still joins the step.
    """
    order = torch.randperm(len(data), generator=generator).numpy() if generator is not None else np.arange(len(data))
    for start in range(0, len(data), batch_size):
        idx = order[start:start + batch_size]
        mine = idx[rank::world]
        weight = len(mine) * world / len(idx)
        if not len(mine):
            mine, weight = idx[:1], 0.0
        batch = collate([data.graphs[i] for i in mine])
        if data.forces is not None:
            batch.forces = data.batch_forces(mine)
        yield batch, as_targets(data.targets[mine]), weight


def as_targets(values: np.ndarray) -> torch.Tensor:
    """float32 energies or int64 class indices."""
    t = torch.as_tensor(values)
    return t.float() if t.is_floating_point() else t.long()


def lr_factor(step: int, total: int, lr: float, lr_end: float, warmup: float = 0.0) -> float:
    """Multiplier of lr: linear warm-up from lr_end over `warmup` of the steps, then linear decay to lr_end."""
    total = max(total, 1)
    low = lr_end / lr
    w = int(warmup * total)
    if step < w:
        return low + (1 - low) * step / w
    return 1.0 - (1.0 - low) * min(1.0, (step - w) / max(total - w, 1))


def duration(seconds: float) -> str:
    """'1h02m', '3m05s', '12s'."""
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def epoch_line(out, metrics: dict, select: str, epochs: int, done_here: int, elapsed: float) -> str:
    """One plain progress line: run, epoch, losses, the selection metric, elapsed time and ETA."""
    eta = elapsed / done_here * (epochs - metrics["epoch"])
    return (f"{out} epoch {metrics['epoch']}/{epochs} train_loss {metrics['train_loss']:.4g} "
            f"{select} {metrics[select]:.4g} elapsed {duration(elapsed)} ETA {duration(eta)}")


class Trainer:
    """Trains `model` with objective(model, batch, targets, step) -> loss tensor (a mean over the batch).

    validate(model) -> dict of metrics; `select` names the one to minimise for best.pt. Under
    torchrun (kimtrain.training.ddp) each rank trains on its share of every global batch through
    DistributedDataParallel; validation runs once, on rank 0, on the full set, and rank 0 alone
    writes checkpoints and logs (plain state dicts, readable by a single process).
    """

    def __init__(self, model, cfg: TrainConfig, out_dir, objective, validate, select: str,
                 epochs: int | None = None, warmup: float = 0.0, meta: dict | None = None):
        self.model, self.cfg = model, cfg
        self.out = Path(out_dir)
        self.objective, self.validate, self.select = objective, validate, select
        self.epochs = cfg.epochs if epochs is None else epochs
        self.warmup = warmup
        self.meta = meta or {}
        self.device = pick_device(ddp.init(cfg.device))

    def _save(self, path: Path, state: dict):
        if not ddp.is_main():
            return
        with replacing(path) as tmp:
            torch.save(state, tmp)

    def _wrapped(self, model):
        """The module the objective calls: model itself, or its DDP wrapper under torchrun."""
        if ddp.world_size() == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids,
                                       find_unused_parameters=getattr(model, "leaves_parameters_unused", False))

    def fit(self, train: LabelledSet, resume: bool = False) -> dict:
        """Train for self.epochs; returns the best validation metrics. Writes best.pt, last.pt, history.csv."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        torch.manual_seed(self.cfg.seed)
        model = self.model.to(self.device)
        net, rank, world = self._wrapped(model), ddp.rank(), ddp.world_size()
        opt = torch.optim.Adam(model.parameters(), lr=self.cfg.lr)
        steps_per_epoch = math.ceil(len(train) / self.cfg.batch_size)
        total = steps_per_epoch * self.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, total, self.cfg.lr, self.cfg.lr_end, self.warmup))
        gen = torch.Generator().manual_seed(self.cfg.seed)
        start, best, history, best_state = 0, {self.select: math.inf}, [], None
        last = self.out / "last.pt"
        if resume and last.exists():
            state = torch.load(last, weights_only=False, map_location=self.device)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"].cpu())  # map_location moved the RNG states too
            torch.set_rng_state(state["torch_rng"].cpu())
            start, best, history = state["epoch"], state["best"], state["history"]
        writer = self._tensorboard() if ddp.is_main() else None
        on_terminal = self.cfg.progress and sys.stderr.isatty() and ddp.is_main()
        bar = tqdm(range(start, self.epochs), desc=self.out.name, unit="epoch", disable=not on_terminal,
                   initial=start, total=self.epochs, leave=False)
        t0 = time.perf_counter()
        for epoch in bar:
            model.train()
            loss_sum, n_steps = 0.0, 0
            for batch, targets, weight in batches(train, self.cfg.batch_size, gen, rank, world):
                loss = self.objective(net, batch.to(self.device), targets.to(self.device), sched.last_epoch) * weight
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"{self.out}: loss is {loss.item()} at epoch {epoch + 1}; "
                                           "lower the learning rate or check the labels for outliers")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
                opt.step()
                sched.step()
                loss_sum, n_steps = loss_sum + loss.item(), n_steps + 1
            model.eval()
            metrics = {"epoch": epoch + 1, "lr": sched.get_last_lr()[0],
                       "train_loss": ddp.total(loss_sum, self.device) / world / n_steps,
                       **ddp.share(self.validate(model) if ddp.is_main() else None)}
            history.append(metrics)
            if metrics[self.select] < best[self.select]:
                best = dict(metrics)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                self._save(self.out / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1,
                                                  "metrics": metrics, **self.meta})
            self._save(last, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                              "scheduler": sched.state_dict(), "generator": gen.get_state(),
                              "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "best": best,
                              "history": history, **self.meta})
            if ddp.is_main():
                self._log(writer, metrics, history)
            bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if k in ("train_loss", self.select)})
            if self.cfg.progress and not on_terminal and ddp.is_main():  # batch jobs, logs: one plain line per epoch
                print(epoch_line(self.out, metrics, self.select, self.epochs, epoch + 1 - start,
                                 time.perf_counter() - t0), file=sys.stderr, flush=True)
        bar.close()
        if writer:
            writer.close()
        if best_state is None:  # resumed after the best epoch
            best_state = torch.load(self.out / "best.pt", weights_only=False, map_location=self.device)["model"]
        model.load_state_dict(best_state)
        return best

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional at run time
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def _log(self, writer, metrics, history):
        with open(self.out / "history.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)
        if writer:
            for k, v in metrics.items():
                if k != "epoch":
                    writer.add_scalar(k, v, metrics["epoch"])
