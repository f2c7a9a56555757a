"""A vocoder loaded from a folder written by `Vocoder.save` or from a checkpoint of a vocoder training run.

The run format knows both layouts; :func:`audiodiff.vocoders.load_vocoder` is this function under its
public name.
"""
from __future__ import annotations

from pathlib import Path

from ..mel import MelSpec
from ..vocoders import build
from ..vocoders.base import CONFIG_FILE, Vocoder, VocoderError, read_vocoder_dir
from .checkpoint import load_checkpoint


def load_vocoder(path, device=None, step: int | None = None, ema: bool = True) -> Vocoder:
    """Load a vocoder from a folder written by `Vocoder.save`, or from a vocoder training run / checkpoint.

    Args:
        path: a vocoder folder (`vocoder.json`, `mel.json`, `model.safetensors`), a run directory whose
            checkpoints were written by `vocoders.train.train_vocoder`, or one checkpoint directory.
        device: where to put it.
        step: a run's checkpoint step (default the newest).
        ema: use a checkpoint's EMA weights when it has them.
    Raises:
        RunKindError: `path` holds a diffusion run or a judge (the message names its meta.json and both kinds).
        VocoderError: a vocoder folder or checkpoint that is incomplete or does not fit its settings.
    """
    p = Path(path)
    if (p / CONFIG_FILE).is_file():
        spec, mel, state = read_vocoder_dir(p)
    else:
        ck = load_checkpoint(p, step=step, train_state=False, kind="vocoder")
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


def run_vocoder(cfg: dict | None, mel: MelSpec) -> Vocoder:
    """The vocoder a mel diffusion run's meta names (`meta["vocoder"]`): a trained one when it has a `path`, else
    built from its settings under the run's `mel` contract (None: Griffin-Lim)."""
    cfg = dict(cfg or {"name": "griffinlim"})
    if cfg.get("path"):
        return load_vocoder(cfg["path"])
    return build({**cfg, "mel": mel.to_dict()})
