"""A vocoder loaded from a folder written by `Vocoder.save` or from a checkpoint of a vocoder training run.

The run format knows both layouts: :func:`load_vocoder` is the public loader (README, recipes, the pipeline's
`vocoder=`); `audiodiff.vocoders` reads only the first (`Vocoder.from_pretrained`) and never imports this layer.
"""
from __future__ import annotations

from pathlib import Path

from ..mel import MelSpec
from ..vocoders import build
from ..vocoders.base import CONFIG_FILE, Vocoder, VocoderError, from_state, read_vocoder_dir, vocoder_class
from .checkpoint import load_checkpoint


def load_vocoder(path, device=None, step: int | None = None, ema: bool = True) -> Vocoder:
    """Load a vocoder from a folder written by `Vocoder.save`, or from a vocoder training run / checkpoint.

    Args:
        path: a vocoder folder (`vocoder.json`, `mel.json`, `model.safetensors`), a run directory whose
            checkpoints were written by `training.vocoder.train_vocoder`, or one checkpoint directory.
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
    voc = from_state(spec, mel, state, where=path)
    return voc.to(device) if device is not None else voc


def check_run_vocoder(cfg: dict | None) -> None:
    """A mel diffusion run's vocoder setting names a vocoder it can build: a trained one by its `path`, or one
    without weights (Griffin-Lim) by its settings; VocoderError naming the way out otherwise."""
    if not cfg or cfg.get("path"):
        return
    cls = vocoder_class(cfg.get("name"))
    if cls.trained:
        raise VocoderError(f"vocoder {cls.name!r} learns its weights: train one (a vocoder experiment, e.g. "
                           "experiment=fsdd_vocoder) and name it with vocoder.path=runs/<that run>/vocoder, or use "
                           "vocoder.name=griffinlim")


def run_vocoder(cfg: dict | None, mel: MelSpec) -> Vocoder:
    """The vocoder a mel diffusion run's meta names (`meta["vocoder"]`): a trained one when it has a `path`, else
    built from its settings under the run's `mel` contract (None: Griffin-Lim)."""
    cfg = dict(cfg or {"name": "griffinlim"})
    if cfg.get("path"):
        return load_vocoder(cfg["path"])
    check_run_vocoder(cfg)
    return build({**cfg, "mel": mel.to_dict()})
