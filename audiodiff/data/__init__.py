"""Data: JSONL manifests, waveform / mel datasets, and the built-in procedural note dataset.

`build_dataset(cfg, split)` (audiodiff/data/build.py) turns a `configs/data/*.yaml` section into a dataset and
the run's :class:`audiodiff.conditions.ConditionSpec`. One module per job: manifest.py, check.py (bad files),
base.py (what the datasets share), waveform.py, mel_dataset.py (+ its cache), collate.py, sampler.py, synth.py.
"""
from audiodiff.conditions import CONDITION_KEYS, Vocabulary, VocabularyError
from audiodiff.data.base import crop_rng
from audiodiff.data.build import build_dataset
from audiodiff.data.collate import collate, split_batch
from audiodiff.data.mel_dataset import MelDataset
from audiodiff.data.sampler import EpochSampler
from audiodiff.data.waveform import WaveformDataset
from audiodiff.data.manifest import (
    AUDIO_EXTENSIONS, ManifestError, ManifestReport, build_manifest, read_manifest, split_manifest, write_manifest,
)
from audiodiff.data.synth import TIMBRES, SynthNotes, render_note, write_synth_dataset

build = build_dataset  # the package's `build(cfg)` (house style)

__all__ = [
    "AUDIO_EXTENSIONS", "ManifestError", "ManifestReport", "build_manifest", "read_manifest", "split_manifest",
    "write_manifest", "CONDITION_KEYS", "Vocabulary", "VocabularyError", "WaveformDataset", "MelDataset",
    "EpochSampler", "collate", "split_batch", "crop_rng", "TIMBRES", "SynthNotes", "render_note",
    "write_synth_dataset", "build_dataset", "build",
]
