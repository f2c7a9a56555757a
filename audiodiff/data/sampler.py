"""`EpochSampler`: a resumable, shardable permutation per `(seed, epoch)` (the runtime's batch order uses it)."""
from __future__ import annotations

import math
from typing import Iterator, Mapping

import torch
from torch.utils.data import Sampler

__all__ = ["EpochSampler"]


class EpochSampler(Sampler):
    """Resumable, shardable sampler: a permutation per `(seed, epoch)`, started at any position.

    With `with_epoch=True` it yields `(epoch, index)` pairs, which the datasets here accept, so the crop
    seed reaches DataLoader workers even when they are persistent (where `dataset.set_epoch` would not).

    Args:
        n: dataset length. shuffle: permute (else 0..n-1). seed: permutation seed.
        num_replicas, rank: shard for DistributedDataParallel (every rank gets ceil(n / num_replicas)
            items; the permutation is padded by wrapping, as torch's DistributedSampler does).
    """

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 with_epoch: bool = True):
        if n <= 0:
            raise ValueError(f"EpochSampler needs n > 0; got {n}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}); got {rank}")
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.num_replicas, self.rank, self.with_epoch = int(num_replicas), int(rank), bool(with_epoch)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch `epoch` from position `start` (items of this rank already consumed)."""
        self.epoch, self.start = int(epoch), int(start)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

    def load_state_dict(self, state: Mapping) -> None:
        self.seed = int(state.get("seed", self.seed))
        self.set_epoch(state["epoch"], state.get("start", 0))

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for `epoch` (before `start` is applied)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        per = math.ceil(self.n / self.num_replicas)
        total = per * self.num_replicas
        perm = (perm * math.ceil(total / self.n))[:total]
        return perm[self.rank:total:self.num_replicas]

    def __len__(self) -> int:
        return math.ceil(self.n / self.num_replicas) - self.start

    def __iter__(self) -> Iterator:
        for i in self.order(self.epoch)[self.start:]:
            yield (self.epoch, i) if self.with_epoch else i
