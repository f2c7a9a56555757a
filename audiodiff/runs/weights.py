"""A diffusion run's network rebuilt from its checkpoint: full weights, LoRA merged at save, or LoRA adapters.

A run's `meta.json` says how its weights are stored (`weights`): `full` (every tensor), `merged` (LoRA folded
into full weights at the end of a fine-tune) or `adapters` (only the LoRA `down` / `up` weights and any new label
rows, plus `init_from` / `init_weights` / `init_sha256`: the base checkpoint they were trained on, checked by
sha256). Older LoRA runs hold the adapters inside full weights (`lora` set, `weights` missing). Training writes
these formats (:mod:`audiodiff.training.loop`); the pipeline reads them through :func:`diffusion_net`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .. import models
from ..errors import UsageError
from ..models.lora import apply_lora, merge_lora
from .checkpoint import load_checkpoint


class FinetuneError(UsageError):
    """A fine-tune config or fine-tuned run that does not fit its base run; the message names the setting or file."""


def file_digest(path) -> str:
    """sha256 of a file (the base weights a LoRA run's adapters were trained on)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extend_label_rows(state: dict, old: int, new: int) -> dict:
    """Label-embedding tables `(old + 1, D)` -> `(new + 1, D)`: rows kept, new rows copy the null row (last)."""
    if new == old:
        return state
    out = dict(state)
    for key, w in state.items():
        if key.endswith("label_emb.weight") and w.shape[0] == old + 1:
            null = w[old:old + 1]
            out[key] = torch.cat([w[:old], null.expand(new - old, -1), null], 0).clone()
    return out


def lora_net(net, meta: dict, adapters: dict, where) -> torch.nn.Module:
    """The network of a LoRA run that stores adapters only: its base's weights + `adapters`, merged.

    Args:
        net: the run's network as built from `meta["model"]` (not yet loaded).
        meta: the run's meta (`init_from`, `init_weights`, `init_sha256`, `lora`).
        adapters: the run's saved tensors (LoRA `down` / `up` weights, and new label rows).
        where: the run's checkpoint folder (for messages).
    """
    base_dir = Path(meta["init_from"])
    if not base_dir.exists():
        raise FinetuneError(f"{where}: is a LoRA run that stores adapters only; its base checkpoint {base_dir} is "
                            "missing: restore it, or retrain with lora.merge=true to store full weights")
    base = load_checkpoint(base_dir, train_state=False, kind="diffusion")
    kind = meta.get("init_weights", "ema")
    path = Path(base["dir"]) / f"{kind}.safetensors"
    if meta.get("init_sha256") and file_digest(path) != meta["init_sha256"]:
        raise FinetuneError(f"{where}: its base weights {path} changed since the adapters were trained on them "
                            "(sha256 differs); use the base checkpoint it was trained from")
    weights = base[kind] if base[kind] is not None else base["model"]
    weights = extend_label_rows(weights, base["meta"]["model"].get("num_classes") or 0,
                                meta["model"].get("num_classes") or 0)
    net.load_state_dict(weights)
    lora = {k: v for k, v in (meta.get("lora") or {}).items() if k != "merge"}
    apply_lora(net, **lora)
    own = net.state_dict()
    unknown = sorted(set(adapters) - set(own))
    if unknown:
        raise FinetuneError(f"{where}: adapters {unknown[:3]} do not fit the base network of {base_dir}")
    net.load_state_dict({**own, **adapters})
    return merge_lora(net)


def diffusion_net(ck: dict, use_ema: bool = True) -> torch.nn.Module:
    """The denoising network of a diffusion checkpoint (`load_checkpoint` output), weights loaded, LoRA merged.

    Args:
        ck: a diffusion checkpoint as read by :func:`~audiodiff.runs.checkpoint.load_checkpoint`.
        use_ema: the EMA weights when the checkpoint has them, else the raw training weights.
    """
    meta = ck["meta"]
    net = models.build(meta["model"])
    weights = ck["ema"] if (use_ema and ck["ema"] is not None) else ck["model"]
    if meta.get("weights") == "adapters":  # a LoRA fine-tune that stores adapters + a reference to its base
        return lora_net(net, meta, weights, ck["dir"])
    if meta.get("lora") and meta.get("weights") != "merged":  # adapters inside full weights (older runs)
        apply_lora(net, **{k: v for k, v in meta["lora"].items() if k != "merge"})
        net.load_state_dict(weights)
        return merge_lora(net)
    net.load_state_dict(weights)
    return net
