"""A batch: items stacked by :func:`collate`, and split by :func:`split_batch` into the diffusion target and the
network's condition keywords (:data:`audiodiff.conditions.NETWORK_KEYS`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..conditions import network_inputs

__all__ = ["collate", "split_batch"]


def collate(items: Sequence[dict]) -> dict:
    """Stack a list of item dicts into a batch: tensors -> `(B, ...)`, ints -> long `(B,)`, floats -> `(B,)`.

    Raises:
        ValueError: items with different keys, or tensors of different shapes (names the key and shapes).
    """
    if not items:
        raise ValueError("collate got an empty list")
    keys = list(items[0])
    for it in items[1:]:
        if list(it) != keys:
            raise ValueError(f"collate: items have different keys: {keys} vs {list(it)}")
    out = {}
    for k in keys:
        vals = [it[k] for it in items]
        v0 = vals[0]
        if isinstance(v0, torch.Tensor):
            shapes = {tuple(v.shape) for v in vals}
            if len(shapes) > 1:
                raise ValueError(f"collate: '{k}' tensors differ in shape {sorted(shapes)}; "
                                 "set a segment length (segment_seconds) to batch them")
            out[k] = torch.stack(vals)
        elif isinstance(v0, (bool, np.bool_)):
            out[k] = torch.tensor(vals, dtype=torch.bool)
        elif isinstance(v0, (int, np.integer)):
            out[k] = torch.tensor(vals, dtype=torch.long)
        elif isinstance(v0, (float, np.floating)):
            out[k] = torch.tensor(vals, dtype=torch.float32)
        elif isinstance(v0, np.ndarray):
            out[k] = torch.from_numpy(np.stack(vals))
        else:
            out[k] = vals
    return out



def split_batch(batch: dict, representation):
    """`(x0, cond)`: the diffusion target in the representation's model space and the network's condition keywords.

    `representation` (:mod:`audiodiff.representations`) reads the batch: a waveform model's audio as it is, a mel
    model's precomputed mels or, from a waveform dataset, the mel computed here on the batch's device.
    """
    return representation.target(batch), network_inputs(batch)
