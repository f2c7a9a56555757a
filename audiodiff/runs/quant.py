"""Small weights for the shipped bases: int8 per-output-channel weight storage, read back as float32.

A tensor of two or more dimensions with at least `min_numel` values is stored as int8 `q` and a float32 scale per
output channel (dimension 0), `w ~ q * scale` with `scale = max|w[c]| / 127` (symmetric absmax, the weight-only
scheme of LLM.int8 and of PyTorch's dynamic quantisation, without outlier handling); every other floating tensor as
float16. The largest error of a value is half a step, `scale / 2`. A checkpoint stored this way says so in its
meta (`"storage": "int8"`) and :func:`~audiodiff.runs.checkpoint.load_checkpoint` returns float32 tensors, so
nothing above the run format sees the difference.
"""
from __future__ import annotations

import torch

SCALE_SUFFIX = ":scale"
STORAGE = "int8"

__all__ = ["quantize_state", "dequantize_state", "SCALE_SUFFIX", "STORAGE"]


def quantize_state(state: dict, min_numel: int = 1024) -> dict:
    """`state` with large weight tensors as int8 + per-channel scales (`<key>:scale`), other floats as float16."""
    out = {}
    for k, w in state.items():
        if not w.is_floating_point():
            out[k] = w
        elif w.dim() >= 2 and w.numel() >= min_numel:
            w = w.detach().float()
            amax = w.abs().reshape(w.shape[0], -1).amax(dim=1).clamp_min(1e-12)
            scale = (amax / 127.0).reshape(-1, *([1] * (w.dim() - 1)))
            out[k] = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
            out[k + SCALE_SUFFIX] = scale
        else:
            out[k] = w.detach().to(torch.float16)
    return out


def dequantize_state(state: dict) -> dict:
    """The float32 state dict of a :func:`quantize_state` output."""
    out = {}
    for k, v in state.items():
        if k.endswith(SCALE_SUFFIX):
            continue
        scale = state.get(k + SCALE_SUFFIX)
        if scale is not None:
            out[k] = v.float() * scale.float()
        else:
            out[k] = v.float() if v.is_floating_point() else v
    return out
