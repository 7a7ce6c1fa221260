"""Data-parallel training of one fold across the processes that ``torchrun`` starts.

``torchrun --nproc_per_node=N -m skinnet train ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; the
trainer then runs one process per device: NCCL with ``cuda:LOCAL_RANK`` on GPUs, gloo on CPU. Conventions:

- ``train.batch_size`` is per process: N processes train with an effective batch of N × batch_size.
- ``train.lr`` is used as given, never scaled with N (scale it yourself, e.g. linearly, if you wish).
- Each process trains on its own shard of the training images (``DistributedSampler``, reshuffled every
  epoch); gradients are averaged by DDP, so the replicas stay identical.
- Batch norm is synchronised over processes on GPUs (``SyncBatchNorm``). On CPU, where torch has no
  SyncBatchNorm, each process normalises with its own batch and DDP copies rank 0's running statistics to
  the others before every forward pass.
- Rank 0 alone validates, writes the log, checkpoints and predictions; it sends the validation scores to
  the others so that every process takes the same learning-rate and best-model decisions.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) everything here is a no-op around the single process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from skinnet.devices import resolve_device

T = TypeVar("T")


@dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) training job.

    Args:
        rank: global rank; 0 is the process that writes files.
        local_rank: rank on this machine (selects the GPU).
        world_size: number of processes.
        device: this process's device.
        owns_group: this context created the process group, so :meth:`close` destroys it.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for all processes (no-op in a single process)."""
        if self.distributed:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on rank 0 first, then on the others: rank 0 builds caches and files they reuse."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model to train: DDP around ``model`` (converted to SyncBatchNorm on GPUs) or ``model`` itself.

        ``model`` keeps its parameters (the optimizer's), so save and validate ``model``, train the result.
        """
        if not self.distributed:
            return model
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def train_loader(self, dataset: Dataset, batch_size: int, seed: int, epoch: int,
                     num_workers: int = 0) -> DataLoader:
        """Shuffled batches of this process's share of ``dataset`` for ``epoch`` (seeded, so resumable).

        A last batch of one image is dropped (batch norm cannot train on it); in a distributed job every
        process gets the same number of batches, as DDP requires.

        Args:
            dataset: the training set.
            batch_size: images per batch and process.
            seed: base seed of the shuffling; the order depends on ``seed`` and ``epoch`` only.
            epoch: the epoch about to run.
            num_workers: DataLoader worker processes.
        """
        if not self.distributed:
            generator = torch.Generator().manual_seed(seed + epoch)
            return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) > batch_size,
                              generator=generator, num_workers=num_workers)
        sampler = DistributedSampler(dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                     seed=seed)
        sampler.set_epoch(epoch)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=len(sampler) > batch_size,
                          num_workers=num_workers)

    def mean_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        """Average a dict of numbers over processes (every process has equally many training images)."""
        if not self.distributed:
            return values
        keys = sorted(values)
        tensor = torch.tensor([values[key] for key in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return {key: float(value) / self.world_size for key, value in zip(keys, tensor.tolist(), strict=True)}

    def from_main(self, compute: Callable[[], T]) -> T:
        """Run ``compute`` on rank 0 only and hand its result to every process.

        Raises:
            Exception: what ``compute`` raised on rank 0; other ranks raise a ``RuntimeError`` naming it.
        """
        if not self.distributed:
            return compute()
        message: list[Any] = [None]
        if self.is_main:
            try:
                message = [(True, compute())]
            except Exception as err:
                # Tell the other ranks before raising, or they would wait in the broadcast until the timeout.
                dist.broadcast_object_list([(False, f"{type(err).__name__}: {err}")], src=0)
                raise
        dist.broadcast_object_list(message, src=0)
        ok, value = message[0]
        if not ok:
            raise RuntimeError(f"rank 0 failed: {value}")
        return value

    def close(self) -> None:
        """Wait for every process, then destroy the process group if this context created it."""
        if self.distributed:
            dist.barrier()
            if self.owns_group:
                dist.destroy_process_group()


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment, or run as one process.

    Args:
        device: ``train.device``. In a distributed job every process uses ``cuda:LOCAL_RANK`` when CUDA is
            available and ``device`` is not ``"cpu"``, else the CPU; alone, ``device`` is used as given.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(device=resolve_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
    else:
        torch_device = torch.device("cpu")
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                device_id=torch_device if use_cuda else None)
    return DistContext(rank, local_rank, world_size, torch_device, owns_group)
