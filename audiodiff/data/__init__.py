"""Data: JSONL manifests, waveform / mel datasets, and the built-in procedural note dataset."""
from __future__ import annotations

from typing import Any, Mapping

from audiodiff.data.datasets import (
    CONDITION_KEYS, EpochSampler, MelDataset, Vocabulary, VocabularyError, WaveformDataset, batch_to_mel, collate,
    crop_rng,
)
from audiodiff.data.manifest import (
    AUDIO_EXTENSIONS, ManifestError, ManifestReport, build_manifest, read_manifest, split_manifest, write_manifest,
)
from audiodiff.data.synth import TIMBRES, SynthNotes, render_note, write_synth_dataset

__all__ = [
    "AUDIO_EXTENSIONS", "ManifestError", "ManifestReport", "build_manifest", "read_manifest", "split_manifest",
    "write_manifest", "CONDITION_KEYS", "Vocabulary", "VocabularyError", "WaveformDataset", "MelDataset",
    "EpochSampler", "collate", "batch_to_mel", "crop_rng", "TIMBRES", "SynthNotes", "render_note",
    "write_synth_dataset", "build", "DATASETS",
]


def _plain(cfg) -> dict:
    """A Mapping or an OmegaConf DictConfig -> a plain (resolved) dict."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if not isinstance(cfg, Mapping):
        raise TypeError(f"data config must be a mapping; got {type(cfg).__name__}")
    return dict(cfg)


def _take(cfg: dict, allowed: dict[str, Any], name: str) -> dict:
    unknown = sorted(set(cfg) - set(allowed) - {"name"})
    if unknown:
        raise ValueError(f"data '{name}': unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return {k: cfg.get(k, v) for k, v in allowed.items()}


_SYNTH_KEYS = {"n": 2000, "valid_n": 0, "sample_rate": 16000, "seconds": 1.0, "pitch_range": [48, 72],
               "pitches": None, "timbres": list(TIMBRES), "vibrato": 0.0, "noise": 0.0, "velocity": [0.6, 1.0],
               "conditions": None, "seed": 0}


def _build_synth(cfg: dict, mel=None):
    c = _take(cfg, _SYNTH_KEYS, "synth")
    pitches = c["pitches"] if c["pitches"] is not None else range(c["pitch_range"][0], c["pitch_range"][1] + 1)
    kw = dict(sample_rate=c["sample_rate"], seconds=c["seconds"], pitches=pitches, timbres=c["timbres"],
              vibrato=c["vibrato"], noise=c["noise"], velocity=c["velocity"], conditions=c["conditions"])
    train = SynthNotes(c["n"], seed=c["seed"], **kw)
    # validation notes come from another seed, so they are new notes of the same distribution
    valid = SynthNotes(c["valid_n"], seed=c["seed"] + 1_000_003, **kw) if c["valid_n"] else None
    return train, valid


_MANIFEST_KEYS = {"manifest": None, "valid_manifest": None, "valid_fraction": 0.0, "split_seed": 0,
                  "group_by": None, "features": "waveform", "sample_rate": None, "segment_seconds": None,
                  "random_crop": True, "loudness_db": None, "mono": True, "conditions": None, "vocab": None,
                  "seed": 0, "cache_dir": None, "device": "cpu", "max_failure_fraction": 0.1}
FEATURES = ("waveform", "mel")


def _build_manifest(cfg: dict, mel=None):
    c = _take(cfg, _MANIFEST_KEYS, "manifest")
    if not c["manifest"] or c["manifest"] == "???":
        raise ValueError("data 'manifest': set `manifest` to a JSONL manifest path (e.g. data.manifest=...)")
    if c["features"] not in FEATURES:
        raise ValueError(f"data 'manifest': features={c['features']!r}; allowed: {list(FEATURES)}")
    entries = read_manifest(c["manifest"])
    if c["valid_manifest"]:
        train_e, valid_e = entries, read_manifest(c["valid_manifest"])
    else:
        train_e, valid_e = split_manifest(entries, c["valid_fraction"], c["split_seed"], c["group_by"])
    conditions = c["conditions"]
    vocab = Vocabulary.load(c["vocab"]) if c["vocab"] else None
    if vocab is None and conditions and "labels" in conditions:
        vocab = Vocabulary.from_entries(entries + (valid_e if c["valid_manifest"] else []), conditions["labels"])

    def make(es, random_crop):
        if not es:
            return None
        common = dict(random_crop=random_crop, loudness_db=c["loudness_db"], conditions=conditions, vocab=vocab,
                      seed=c["seed"], max_failure_fraction=c["max_failure_fraction"])
        if c["features"] == "mel":
            if mel is None:
                raise ValueError("data features='mel' needs the model's MelSpec: build(cfg, mel=MelSpec(...))")
            return MelDataset(es, mel, segment_seconds=c["segment_seconds"], device=c["device"],
                              cache_dir=c["cache_dir"], **common)
        if c["sample_rate"] is None:
            raise ValueError("data 'manifest': set `sample_rate` (the model's rate)")
        return WaveformDataset(es, c["sample_rate"], segment_seconds=c["segment_seconds"], mono=c["mono"], **common)

    return make(train_e, c["random_crop"]), make(valid_e, False)


DATASETS = {"synth": _build_synth, "manifest": _build_manifest}


def build(cfg, mel=None):
    """Build `(train, valid)` datasets from a config naming one of :data:`DATASETS` (`valid` may be None).

    Args:
        cfg: mapping with `name` ("synth" or "manifest") and that builder's keys (see configs/data/*.yaml).
        mel: the model's :class:`audiodiff.mel.MelSpec`, needed for `features: mel`.
    """
    cfg = _plain(cfg)
    name = cfg.get("name")
    if name not in DATASETS:
        raise ValueError(f"unknown data name {name!r}; allowed: {sorted(DATASETS)}")
    return DATASETS[name](cfg, mel=mel)
