"""Data-parallel training across processes (torchrun): gloo on CPU, NCCL on GPU.

`torchrun --nproc_per_node N` (or `mtrec train-recommender` with
`recommender.train.nproc: N`, which starts torchrun itself) runs N copies of
the same training. Every process builds the same model from the same seed;
each epoch's batch order is the same on all of them (a function of seed and
epoch), and process r trains on batches r, r + N, r + 2N, ... (the list padded
by wrapping round so every process takes the same number of steps). After
each backward pass the gradients of every trainable parameter are averaged
across processes (one all-reduce over a flat buffer), so all copies take the
same optimiser step and stay identical: the semantics of PyTorch's
DistributedDataParallel. The wrapper itself is not used because the losses
read parameters outside `forward` (the catalogue softmax uses the item table)
and some own parameters of their own (PNFRec's negative encoder); averaging
the gradients of the parameter list the optimiser holds covers both.
Validation, checkpoints, early stopping and every file are rank 0's; its
decisions are broadcast.

Across machines the same command runs under torchrun's rendezvous, e.g. on
each of 2 nodes: `torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d
--rdzv_endpoint HOST:29400 -m mtrec.cli train-recommender ...`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env() -> World:
    """Join the process group torchrun set up (once); a single process otherwise."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) < 2:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend=backend)
    return current_world()


def current_world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def shard_batches(batches, world: World) -> Iterator:
    """This process's share of one epoch's batches (`batches` has a len, e.g. a
    DataLoader): every world.size-th from world.rank, the list padded by
    wrapping round to a multiple of world.size so every process takes the same
    number of optimiser steps. Streams: only the few padding batches are kept."""
    if not world.distributed:
        yield from batches
        return
    n = len(batches)
    pad = (-n) % world.size
    wrapped = {k for k in range(pad) if (n + k) % world.size == world.rank}
    kept = []
    for index, batch in enumerate(batches):
        if index in wrapped:
            kept.append(batch)
        if index % world.size == world.rank:
            yield batch
    yield from kept


def steps_per_epoch(n_batches: int, world: World) -> int:
    return -(-n_batches // world.size)


def check_in_sync(parameters: Sequence[torch.nn.Parameter], world: World) -> None:
    """Every process must hold the same weights; a drift (a loss that changed
    parameters outside the averaged step) fails loudly instead of training on."""
    if not world.distributed:
        return
    checksum = torch.stack([p.detach().double().sum() for p in parameters]).cpu()
    low, high = checksum.clone(), checksum.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.allclose(low, high, rtol=1e-6, atol=1e-6):
        raise RuntimeError(f"process {world.rank}: weights differ across processes")


def average_gradients(parameters: Sequence[torch.nn.Parameter], world: World) -> None:
    """Mean of each parameter's gradient over the processes (zeros where a
    process produced none), in one all-reduce."""
    if not world.distributed:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world.size
    offset = 0
    for parameter, grad in zip(parameters, grads, strict=True):
        n = grad.numel()
        parameter.grad = flat[offset : offset + n].view_as(grad).clone()
        offset += n


def broadcast(value, world: World):
    """Rank 0's `value` on every process (any picklable object)."""
    if not world.distributed:
        return value
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def device_for(world: World, requested: torch.device) -> torch.device:
    """Each process its own GPU (LOCAL_RANK) when training on CUDA."""
    if world.distributed and requested.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return requested


def finish(world: World) -> None:
    """Leave the process group (torchrun's processes then exit cleanly)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
