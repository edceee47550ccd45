"""One run on several processes: DistributedDataParallel under torchrun.

    torchrun --nproc_per_node=N -m regx train [OVERRIDES…]

Every process runs the Hydra app; `regx.app.torchrun` joins the process group before
Hydra starts and gives all ranks rank 0's run directory.

In the run, `trainer.batch_size` stays the global batch: each step, the batch a single
process would take is split between the ranks (batch_size / N images each, on its own
device), DDP averages the gradients, so a step equals the single-process step on the same
images (up to BatchNorm statistics, which stay per rank). Training metrics are averaged
over ranks; rank 0 validates and broadcasts the result, so every rank takes the same
early-stopping and best-checkpoint decisions; only rank 0 writes files, loggers included.
"""

from __future__ import annotations

import os
from typing import Any


def launched_by_torchrun() -> bool:
    """torchrun (torch.distributed.elastic) sets RANK and WORLD_SIZE for each process."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return rank() == 0


def init_process_group() -> None:
    """Join the group torchrun describes in the environment (MASTER_ADDR/PORT, RANK, …)."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available() and dist.is_nccl_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "cpu:gloo,cuda:nccl"  # CPU tensors (metrics, objects) go through gloo
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (any picklable object)."""
    if not active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the ranks (exact for per-rank means over equal-sized shards)."""
    if not active() or not values:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {**values, **dict(zip(keys, t.tolist()))}


def device_for_rank(device: Any) -> Any:
    """`cuda` (no index) means this process's GPU, cuda:LOCAL_RANK, when several run."""
    import torch

    if active() and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def wrap_model(model: Any, device: Any) -> Any:
    """The model to train with: DistributedDataParallel around `model` when several ranks run.

    DDP broadcasts rank 0's weights at construction, so every rank starts from the same model.
    """
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def check_batch_size(batch_size: int) -> None:
    """Equal shards keep DDP's gradient average equal to the single-process batch mean."""
    n = world_size()
    if active() and batch_size % n:
        from regx.errors import ConfigError

        raise ConfigError(
            "trainer.batch_size",
            batch_size,
            f"must be divisible by the number of processes ({n}): it is the global batch, "
            "split equally between them",
        )


def seed_rank_streams(seed: int, epoch: int) -> None:
    """Different augmentation/mixing random streams per rank (same model: DDP syncs it)."""
    if active():
        import torch

        torch.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank())
