"""Denoiser networks: `build(cfg)` looks `cfg["name"]` up in NETWORKS; presets live in configs/model/*.yaml."""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from torch import nn

from ..errors import UsageError
from .unet1d import UNet1D
from .unet2d import UNet2D

NETWORKS: dict[str, type[nn.Module]] = {"unet1d": UNet1D, "unet2d": UNet2D}
AUTO = "auto"  # a model setting the data decides (`num_classes: auto`, `mel_bands: auto`)

__all__ = ["NETWORKS", "UNet1D", "UNet2D", "build", "from_data", "load_preset", "configs_dir"]


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


def from_data(cfg: dict, conditions=None, representation=None) -> dict:
    """A network config with what the data decides filled in, ready for :func:`build`.

    From the condition contract (:class:`audiodiff.conditions.ConditionSpec`, `net_kwargs()`): `num_classes` when
    the config leaves it 0, null or `auto` (an explicit count is kept), and `pitch: true` for a pitch condition.
    From the representation (:mod:`audiodiff.representations`, `network_kwargs()`): each setting the config leaves
    `auto`, e.g. `mel_bands: auto` becomes the mel contract's `n_mels`.

    Args:
        cfg: `{"name": ..., **kwargs}` (a preset, `model:` of a training config).
        conditions: the data's ConditionSpec, or None (nothing to fill; `num_classes: auto` becomes 0).
        representation: the data's representation, or None (a waveform: nothing to fill).
    Raises:
        UsageError: a setting left `auto` that the representation does not decide (one line naming it; for
            `mel_bands`, that the data is a waveform).
    """
    cfg = dict(cfg)
    kw = conditions.net_kwargs() if conditions is not None else {}
    if "num_classes" in kw and cfg.get("num_classes", 0) in (0, None, AUTO):
        cfg["num_classes"] = kw["num_classes"]
    elif cfg.get("num_classes") == AUTO:  # the data has no labels
        cfg["num_classes"] = 0
    if kw.get("pitch"):
        cfg["pitch"] = True
    for key, value in (representation.network_kwargs() if representation is not None else {}).items():
        if cfg.get(key) == AUTO:
            cfg[key] = value
    if cfg.get("mel_bands") == AUTO:
        raise UsageError("model.mel_bands=auto takes the data's mel bands, but the data is a waveform; allowed: "
                         "model.mel_bands=auto or an integer with data.representation=mel, 0 for a waveform")
    left = sorted(k for k, v in cfg.items() if v == AUTO)
    if left:
        raise UsageError(f"model.{left[0]}=auto is not decided by this data's representation; allowed: a value")
    return cfg


def narrow_top_level(cfg: dict) -> str | None:
    """Why a 1-D mel net's first level is too narrow for its bands, or None when it is not.

    With the bands as channels (`mel_bands` > 0) the net's first level carries each frame in `channels[0]`
    features and the output head maps them to the `mel_bands * patch` outputs of that frame: with fewer features
    than outputs every frame's prediction lies in a `channels[0]`-dimensional subspace, and the noise outside it
    can never be removed. Measured on piano (128 bands): 96 channels left speckle that reads as extra onsets
    (benchmarks/README.md "Fidelity").
    """
    bands = int(cfg.get("mel_bands") or 0) * int(cfg.get("patch") or 1) * int(cfg.get("in_channels") or 1)
    channels = cfg.get("channels") or []
    if cfg.get("name") != "unet1d" or bands <= 0 or not channels or int(channels[0]) >= bands:
        return None
    return (f"model.channels[0]={int(channels[0])} is narrower than the {bands} mel bands it carries per frame, so "
            f"each frame's output is limited to {int(channels[0])} directions; allowed without this warning: "
            f"model.channels[0] >= {bands}")


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
