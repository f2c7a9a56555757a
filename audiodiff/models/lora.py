"""LoRA adapters for fine-tuning (Hu et al. 2021): `W x + (alpha / r) * B(A(x))`, with B initialised to zero.

Works on `nn.Linear`, `nn.Conv1d` and `nn.Conv2d`: A has the layer's kernel and `r` output channels, B is a
1x1 map from `r` to the layer's outputs. After `apply_lora` only adapter weights train; `merge_lora`
folds them into the base weights for inference at no extra cost.

Module code (the network layer): training applies it (`train.lora`), the run format
(:mod:`audiodiff.runs.weights`) rebuilds a LoRA run's network with it at load time.
"""
from __future__ import annotations

import re

import torch
from torch import nn

_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


class LoRA(nn.Module):
    """A frozen base layer plus a trainable low-rank update of rank `rank`, scaled by `alpha / rank`."""

    def __init__(self, base: nn.Module, rank: int = 8, alpha: float = 16.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1; got {rank}")
        self.base = base.requires_grad_(False)
        self.scale = alpha / rank
        if isinstance(base, nn.Linear):
            self.down = nn.Linear(base.in_features, rank, bias=False)
            self.up = nn.Linear(rank, base.out_features, bias=False)
        else:
            conv = type(base)
            self.down = conv(base.in_channels, rank, base.kernel_size, base.stride, base.padding, base.dilation,
                             groups=1, bias=False, padding_mode=base.padding_mode)
            self.up = conv(rank, base.out_channels, 1, bias=False)
            if base.groups != 1:
                raise ValueError("LoRA does not support grouped convolutions")
        nn.init.kaiming_uniform_(self.down.weight, a=5 ** 0.5)
        nn.init.zeros_(self.up.weight)

    def forward(self, x):
        return self.base(x) + self.scale * self.up(self.down(x))

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """The base layer with the adapter folded into its weight."""
        if isinstance(self.base, nn.Linear):
            delta = self.up.weight @ self.down.weight
        else:
            # up is 1x1: (out, r, 1..) ; down: (r, in, k..) -> (out, in, k..)
            delta = torch.einsum("or,ri...->oi...", self.up.weight.flatten(1), self.down.weight)
        self.base.weight += self.scale * delta.to(self.base.weight.dtype)
        return self.base.requires_grad_(True)


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, targets: str = r".*") -> list[str]:
    """Freeze `model` and wrap every supported layer whose qualified name matches regex `targets` with LoRA.

    Returns the wrapped layer names; raises if none matched (a silent no-op fine-tune would be a bug).
    """
    pattern = re.compile(targets)
    model.requires_grad_(False)
    names = [n for n, m in model.named_modules() if isinstance(m, _SUPPORTED) and n and pattern.fullmatch(n)
             and getattr(m, "groups", 1) == 1]
    if not names:
        raise ValueError(f"LoRA targets {targets!r} matched no Linear/Conv layer of {type(model).__name__}")
    for name in names:
        parent, _, child = name.rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        setattr(holder, child, LoRA(getattr(holder, child), rank, alpha))
    return names


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRA wrapper in `model` by its merged base layer (in place)."""
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRA):
            parent, _, child = name.rpartition(".")
            holder = model.get_submodule(parent) if parent else model
            setattr(holder, child, m.merged())
    return model


def lora_parameters(model: nn.Module):
    return [p for n, p in model.named_parameters() if p.requires_grad]
