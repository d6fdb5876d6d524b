r"""Sharding over processes (``torchrun`` / ``accelerate launch``): rank, world size, device."""

from __future__ import annotations

import os
from datetime import timedelta

import torch

__all__ = ["device", "distributed_context"]


def distributed_context(rank: int | None, world_size: int | None) -> tuple[int, int, bool]:
    """Rank and world size (from torchrun's environment unless given); whether we set up dist."""
    import torch.distributed as dist

    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    if rank is not None or world_size is not None:
        return rank or 0, world_size or 1, False
    if env_world > 1 and dist.is_available() and not dist.is_initialized():
        # Only a barrier is exchanged, so gloo serves CPU and GPU runs alike; shards may finish
        # hours apart, hence the long timeout.
        dist.init_process_group("gloo", timeout=timedelta(days=7))
        return dist.get_rank(), dist.get_world_size(), True
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    return int(os.environ.get("RANK", "0")), env_world, False


def device() -> torch.device:
    if torch.cuda.is_available():
        # One device per process; more processes than devices share them round-robin.
        index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")
