"""Data: JSONL manifests, waveform / mel datasets, and the built-in procedural note dataset.

`build_dataset(cfg, split)` (audiodiff/data/build.py) turns a `configs/data/*.yaml` section into a dataset.
"""
from audiodiff.data.build import build_dataset
from audiodiff.data.datasets import (
    CONDITION_KEYS, EpochSampler, MelDataset, Vocabulary, VocabularyError, WaveformDataset, batch_to_mel, collate,
    crop_rng,
)
from audiodiff.data.manifest import (
    AUDIO_EXTENSIONS, ManifestError, ManifestReport, build_manifest, read_manifest, split_manifest, write_manifest,
)
from audiodiff.data.synth import TIMBRES, SynthNotes, render_note, write_synth_dataset

build = build_dataset  # the package's `build(cfg)` (house style)

__all__ = [
    "AUDIO_EXTENSIONS", "ManifestError", "ManifestReport", "build_manifest", "read_manifest", "split_manifest",
    "write_manifest", "CONDITION_KEYS", "Vocabulary", "VocabularyError", "WaveformDataset", "MelDataset",
    "EpochSampler", "collate", "batch_to_mel", "crop_rng", "TIMBRES", "SynthNotes", "render_note",
    "write_synth_dataset", "build_dataset", "build",
]
