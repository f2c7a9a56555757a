"""Representations: what the denoiser sees, made from audio and turned back into audio (`Waveform`, `Mel`).

A run's representation is an object, not a string (DESIGN.md, "Representations"): the data section describes it
(`representation` + its settings, e.g. `mel`), the run stores its name in `meta.json` and its contract beside the
weights (`mel.json`), and data, statistics, training, fine-tuning and the pipeline ask it for what they need
(encode, decode, lengths, the network's inputs, what to store). :data:`REPRESENTATIONS` is the one place that maps
a name to a class; a new representation registers itself here (or from a test, with :func:`register`).
"""
from __future__ import annotations

from .base import Representation, RepresentationError
from .mel import MEL_CONTRACTS, Mel
from .waveform import Waveform

REPRESENTATIONS: dict[str, type[Representation]] = {"waveform": Waveform, "mel": Mel}

__all__ = ["Representation", "RepresentationError", "Waveform", "Mel", "MEL_CONTRACTS", "REPRESENTATIONS",
           "register", "representation_class", "from_data", "from_meta", "for_model"]


def register(cls: type[Representation]) -> type[Representation]:
    """Add a representation class under its `name` (usable as a decorator)."""
    if not cls.name:
        raise RepresentationError(f"{cls.__name__} has no name to register under")
    REPRESENTATIONS[cls.name] = cls
    return cls


def representation_class(name) -> type[Representation]:
    """The class registered under `name`; an unknown name names the allowed ones."""
    if name not in REPRESENTATIONS:
        raise RepresentationError(f"data.representation={name!r}; allowed: {tuple(REPRESENTATIONS)}")
    return REPRESENTATIONS[name]


def from_data(data: dict) -> Representation:
    """The representation a data section describes (`representation`, default waveform, and its settings)."""
    return representation_class(data.get("representation", "waveform")).from_settings(data)


def from_meta(meta: dict, contract=None) -> Representation:
    """The representation a run stored: its meta's `representation` (format 0 runs: waveform) and its contract."""
    return representation_class(meta.get("representation", "waveform")).from_meta(meta, contract)


def for_model(model: dict) -> type[Representation]:
    """The representation a network config is made for (`representation: auto`): the first that takes it."""
    for cls in REPRESENTATIONS.values():
        if cls.takes(model):
            return cls
    raise RepresentationError(f"no representation takes model {model.get('name')!r}; allowed representations: "
                              f"{tuple(REPRESENTATIONS)} (set data.representation)")
