"""Vocoders: turn normalised log-mel `(B, n_mels, frames)` into audio `(B, 1, frames * hop)` on the mel's device.

`build(cfg)` looks the name up in {"griffinlim", "neural", "diffusion"}; `load_vocoder(dir)` reads a folder
written by `Vocoder.save` or the newest checkpoint of a vocoder training run.
"""
from __future__ import annotations

from typing import Any

from ..mel import MelContractError, MelSpec
from .base import Vocoder, VocoderError
from .griffinlim import GriffinLimVocoder
from .neural import NeuralVocoder


def _diffusion_cls():
    from .diffusion import DiffusionVocoder  # needs audiodiff.models.unet1d

    return DiffusionVocoder


VOCODERS = {
    "griffinlim": lambda: GriffinLimVocoder,
    "neural": lambda: NeuralVocoder,
    "diffusion": _diffusion_cls,
}


def vocoder_class(name: str) -> type[Vocoder]:
    """The class registered under `name`; unknown names raise listing the allowed ones."""
    if name not in VOCODERS:
        raise VocoderError(f"unknown vocoder {name!r}; allowed: {sorted(VOCODERS)}")
    return VOCODERS[name]()


def _as_mel(mel: Any) -> MelSpec:
    if isinstance(mel, MelSpec):
        return mel
    if mel is None:
        raise VocoderError("a vocoder needs a mel contract: pass mel=MelSpec(...) or a 'mel' dict in its config")
    if hasattr(mel, "items"):
        return MelSpec.from_dict(dict(mel))
    raise VocoderError(f"mel must be a MelSpec or a dict of its fields; got {type(mel).__name__}")


def build(cfg: dict, mel: MelSpec | dict | None = None) -> Vocoder:
    """Build a vocoder from `{"name": ..., **settings}` (settings as in `configs/vocoder/*.yaml`).

    Args:
        cfg: `name` plus constructor settings; may hold `mel` (a dict of MelSpec fields).
        mel: the mel contract; overrides `cfg["mel"]`.
    """
    cfg = dict(cfg)
    if "name" not in cfg:
        raise VocoderError(f"vocoder config needs a 'name'; allowed: {sorted(VOCODERS)}")
    cls = vocoder_class(cfg.pop("name"))
    cfg_mel = cfg.pop("mel", None)
    spec = _as_mel(mel if mel is not None else cfg_mel)
    try:
        return cls(spec, **cfg)
    except TypeError as e:
        import inspect

        allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "mel")]
        raise VocoderError(f"bad settings for vocoder {cls.name!r}: {e}; allowed settings: {allowed}") from None


def load_vocoder(path, device=None, step: int | None = None, ema: bool = True) -> Vocoder:
    """Load a vocoder from a folder written by `Vocoder.save`, or from a vocoder training run / checkpoint.

    Reading a run is the run format's job: this is :func:`audiodiff.runs.vocoder.load_vocoder` (see there for the
    arguments), kept here as the vocoders' public loader.
    """
    from ..runs.vocoder import load_vocoder as _load  # the one import from a layer above (tests/test_layering.py)

    return _load(path, device=device, step=step, ema=ema)


__all__ = ["Vocoder", "VocoderError", "MelContractError", "GriffinLimVocoder", "NeuralVocoder", "VOCODERS",
           "build", "load_vocoder", "vocoder_class"]
