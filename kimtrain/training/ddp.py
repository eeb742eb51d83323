"""Data-parallel training under torchrun: the process group, this process's rank, and the few
collective steps the trainer needs. Without torchrun (WORLD_SIZE unset or 1) every function here
is the single-process case and nothing is initialised.

    torchrun --nproc-per-node 2 -m kimtrain fit --config run.yaml ...

gloo on CPU, nccl on CUDA (each rank takes the GPU LOCAL_RANK). Ranks must see the same files
(one machine, or a shared filesystem): every rank reads the data, rank 0 alone writes.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """True when torchrun (or another launcher) started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init(device: str = "auto") -> str:
    """Join the process group torchrun set up (once); returns the device this rank trains on."""
    if not launched():
        return device
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if not active():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def share(obj):
    """Rank 0's `obj` on every rank (a picklable object: metrics, a decision)."""
    if not active():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def total(value: float, device) -> float:
    """Sum of a float over ranks."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def shutdown():
    if active():
        dist.destroy_process_group()
