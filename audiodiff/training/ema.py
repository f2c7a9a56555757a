"""Exponential moving average of model weights (Polyak averaging), with the warm-up of Karras et al. / DDPM++.

The effective decay is `min(decay, (1 + step) / (10 + step))`, so early averages are not dominated by the
random initialisation.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keep a shadow copy of `model` updated as `shadow = d * shadow + (1 - d) * param` after each step."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1); got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        src = dict(model.named_parameters())
        for name, p in self.model.named_parameters():
            p.lerp_(src[name].detach().to(p.dtype), 1 - d)
        bufs = dict(model.named_buffers())
        for name, b in self.model.named_buffers():
            b.copy_(bufs[name])
        self.num_updates += 1

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict, num_updates: int) -> None:
        self.model.load_state_dict(state)
        self.num_updates = int(num_updates)
