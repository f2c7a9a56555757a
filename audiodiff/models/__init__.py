"""Denoiser networks: `build(cfg)` looks `cfg["name"]` up in NETWORKS; presets live in configs/model/*.yaml."""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from torch import nn

from .unet1d import UNet1D
from .unet2d import UNet2D

NETWORKS: dict[str, type[nn.Module]] = {"unet1d": UNet1D, "unet2d": UNet2D}

__all__ = ["NETWORKS", "UNet1D", "UNet2D", "build", "load_preset", "configs_dir"]


def build(cfg: dict) -> nn.Module:
    """Build a network from a config dict `{"name": <one of NETWORKS>, **kwargs}` (e.g. a preset or `net.config`).

    Raises:
        ValueError: unknown name (lists the allowed names) or unknown keyword (lists the allowed keywords).
    """
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in NETWORKS:
        raise ValueError(f"unknown network name {name!r}; allowed: {sorted(NETWORKS)}")
    cls = NETWORKS[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for network {name!r}; allowed: {allowed}")
    return cls(**cfg)


def configs_dir() -> Path:
    """Return the configs folder: $AUDIODIFF_CONFIGS if set, else <repo root>/configs."""
    env = os.environ.get("AUDIODIFF_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "configs"      # == Path(audiodiff.__file__).parents[1]


def load_preset(name: str) -> dict:
    """Read configs/model/<name>.yaml and return its dict (`{"name": "unet1d", **kwargs}`), ready for build()."""
    import yaml

    folder = configs_dir() / "model"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise FileNotFoundError(f"no model preset {name!r} at {path}; available: {have}")
    cfg = yaml.safe_load(path.read_text())
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ValueError(f"{path}: a model preset must be a mapping with a 'name' key, got {type(cfg).__name__}")
    return cfg
