"""Vocoders: turn normalised log-mel `(B, n_mels, frames)` into audio `(B, 1, frames * hop)` on the mel's device.

`build(cfg)` looks the name up in {"griffinlim", "neural", "diffusion"}; `Vocoder.from_pretrained(dir)` reads a
folder written by `Vocoder.save`. A vocoder training run (or such a folder) is loaded by the run format,
:func:`audiodiff.runs.vocoder.load_vocoder`; this package imports nothing above the modules layer.
"""
from __future__ import annotations

from ..mel import MelContractError
from .base import VOCODERS, Vocoder, VocoderError, build, from_state, vocoder_class
from .diffusion import DiffusionVocoder  # every built-in vocoder is imported here, so each is in VOCODERS
from .griffinlim import GriffinLimVocoder
from .neural import NeuralVocoder

__all__ = ["Vocoder", "VocoderError", "MelContractError", "GriffinLimVocoder", "NeuralVocoder", "DiffusionVocoder",
           "VOCODERS", "build", "from_state", "vocoder_class"]
