"""Vocoders: turn normalised log-mel `(B, n_mels, frames)` into audio `(B, 1, frames * hop)` on the mel's device.

`build(cfg)` looks the name up in {"griffinlim", "neural", "diffusion"}; `load_vocoder(dir)` reads a folder
written by `Vocoder.save` or the newest checkpoint of a vocoder training run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..mel import MelContractError, MelSpec
from .base import CONFIG_FILE, Vocoder, VocoderError, read_vocoder_dir
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

    Args:
        path: a vocoder folder (`vocoder.json`, `mel.json`, `model.safetensors`), a run directory whose
            checkpoints were written by `vocoders.train.train_vocoder`, or one checkpoint directory.
        device: where to put it.
        step: a run's checkpoint step (default the newest).
        ema: use a checkpoint's EMA weights when it has them.
    """
    p = Path(path)
    if (p / CONFIG_FILE).is_file():
        spec, mel, state = read_vocoder_dir(p)
    else:
        from ..training.checkpoint import load_checkpoint

        ck = load_checkpoint(p, step=step, train_state=False)
        meta = ck["meta"] or {}
        if "vocoder" not in meta or ck["mel"] is None:
            raise VocoderError(f"{ck['dir']}: not a vocoder checkpoint (meta.json lacks 'vocoder' or mel.json is missing)")
        spec, mel = meta["vocoder"], ck["mel"]
        state = ck["ema"] if (ema and ck["ema"] is not None) else ck["model"]
    voc = build({"name": spec["name"], **spec.get("config", {})}, mel=mel)
    own = voc.state_dict()
    shapes = [f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}" for k, v in state.items()
              if k in own and v.shape != own[k].shape]
    if shapes:
        raise VocoderError(f"{path}: weights do not fit a {spec['name']!r} vocoder with config {spec.get('config')}: "
                           f"shapes {shapes[:3]}")
    missing, unexpected = voc.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VocoderError(f"{path}: weights do not fit a {spec['name']!r} vocoder with config {spec.get('config')}: "
                           f"missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
    voc.eval()
    return voc.to(device) if device is not None else voc


__all__ = ["Vocoder", "VocoderError", "MelContractError", "GriffinLimVocoder", "NeuralVocoder", "VOCODERS",
           "build", "load_vocoder", "vocoder_class"]
