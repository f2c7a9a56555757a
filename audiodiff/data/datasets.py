"""The datasets' old import path: every name that lived here, now in the module of its job.

- :mod:`audiodiff.conditions`: `Vocabulary`, `VocabularyError`, `CONDITION_KEYS` (the condition contract);
- :mod:`.check`: `check_entries`, `DatasetError` (bad files found before training);
- :mod:`.base`: `crop_rng` (what the datasets share); :mod:`.waveform`: `WaveformDataset`;
  :mod:`.mel_dataset`: `MelDataset` (and its cache); :mod:`.collate`: `collate`, `split_batch`;
  :mod:`.sampler`: `EpochSampler`.
"""
from ..conditions import CONDITION_KEYS, Vocabulary, VocabularyError
from .base import crop_rng
from .check import DatasetError, check_entries
from .collate import collate, split_batch
from .mel_dataset import MelDataset
from .sampler import EpochSampler
from .waveform import WaveformDataset

__all__ = [
    "CONDITION_KEYS", "VocabularyError", "DatasetError", "Vocabulary", "WaveformDataset", "MelDataset",
    "EpochSampler", "check_entries", "collate", "split_batch", "crop_rng",
]
