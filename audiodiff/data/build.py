"""`build_dataset(cfg)`: the data section of a training config turned into a Dataset and what the run must store.

Config (``configs/data/*.yaml``)::

    kind: synth | manifest          # built-in procedural notes, or a JSONL manifest of recordings
    sample_rate: 16000              # the model's rate (files are resampled to it)
    segment_seconds: 1.0
    representation: waveform | mel  # mel: the loop computes MelSpec(**mel) on the training device
    mel: {...}                      # MelSpec fields (mel representation)
    precompute_mel: false           # mel: compute all mels once (MelDataset), cached under cache_dir
    cache_dir: null
    conditions: {pitch: pitch}      # network keyword -> manifest / note field
    manifest: path/to/manifest.jsonl   (kind: manifest)
    valid_fraction: 0.1             # held out deterministically (kind: manifest)
    loudness_db: null               # RMS normalisation of each file, dBFS
    check_files: true               # kind: manifest: decode every file once before training; bad ones are
                                    # left out with one warning, too many fail here (not at step 1)
    max_failure_fraction: 0.1       # more bad files than this fraction (and more than one) is an error
    pitch_shift: []                 # pitch-conditioned manifests: training copies of each note resampled by
                                    # these semitones (e.g. [-1, 1]), their pitch shifted with them, kept inside
                                    # the recorded range: teaches the pitches between sparse recorded ones
    synth: {n: 2000, pitches: [...], timbres: [...], vibrato: 0, noise: 0, velocity: 0.8, seed: 0}
"""
from __future__ import annotations

from .. import representations
from ..conditions import ConditionSpec
from ..errors import UsageError
from .check import check_entries
from .manifest import read_manifest, split_manifest
from .mel_dataset import MelDataset
from .synth import SynthNotes
from .waveform import WaveformDataset

KINDS = ("synth", "manifest")
# the data section's own keys; a representation adds its settings (`mel` for Mel: its settings_keys)
DATA_KEYS = {"kind", "sample_rate", "segment_seconds", "representation", "precompute_mel", "cache_dir",
             "conditions", "manifest", "valid_fraction", "loudness_db", "synth", "random_crop", "group_by", "name",
             "check_files", "max_failure_fraction", "pitch_shift"}

__all__ = ["build_dataset", "KINDS", "data_keys"]


def data_keys() -> set:
    """Every key a data section may hold: :data:`DATA_KEYS` and each registered representation's settings."""
    return DATA_KEYS.union(*(cls.settings_keys for cls in representations.REPRESENTATIONS.values()))


def pitch_shifts(value, conditions: dict) -> list[float]:
    """`data.pitch_shift` checked: a list of non-zero semitone shifts within an octave, for pitch-conditioned data."""
    if value in (None, [], ()):
        return []
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(k, (int, float)) and not isinstance(k, bool) and k != 0 and abs(k) <= 12 for k in value)
    if not ok:
        raise UsageError(f"data.pitch_shift={value!r}; allowed: a list of non-zero semitone shifts in [-12, 12], "
                         "e.g. [-1, 1], or []")
    if "pitch" not in conditions:
        raise UsageError(f"data.pitch_shift={list(value)} shifts the pitch condition, but data.conditions "
                         f"{conditions} has no pitch; allowed: [] for this data")
    return sorted({float(k) for k in value})


def shifted_copies(part: list[dict], field: str, shifts: list[float], entries: list[dict]) -> list[dict]:
    """`part` followed by one copy of each entry per shift, `pitch_shift` set and its pitch moved with it; copies
    outside the recorded range of `entries` (the whole manifest) are left out, so the pitch contract stays the
    data's."""
    pitches = [float(e[field]) for e in entries if e.get(field) is not None]
    if not pitches:
        return part
    lo, hi = min(pitches), max(pitches)
    out = list(part)
    for k in shifts:
        for e in part:
            if e.get(field) is None:
                continue
            p = float(e[field]) + k
            if lo <= p <= hi:
                out.append({**e, field: p, "pitch_shift": k})
    return out


def build_dataset(cfg: dict, split: str = "train", seed: int = 0, device: str = "cpu", vocab=None) -> dict:
    """Dataset for `split` ("train" or "valid") and `info` for the checkpoint's meta: sample_rate, segment_samples,
    channels, num_classes and the condition contract the data makes (conditions, vocab values, pitch_range: the
    fields of :meth:`ConditionSpec.to_dict`, so `ConditionSpec.from_meta(info)` reads it back).

    `vocab`: label values in id order (a fine-tune passes its base run's); None builds the sorted vocabulary of
    the manifest's labels."""
    vocab_values = None if vocab is None else list(vocab)
    cfg = dict(cfg)
    allowed = data_keys()
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise UsageError(f"unknown data settings {unknown}; allowed: {sorted(allowed)}")
    kind = cfg.get("kind", "manifest")
    if kind not in KINDS:
        raise UsageError(f"data.kind={kind!r}; allowed: {KINDS}")
    representations.representation_class(cfg.get("representation", "waveform"))  # a known name, else one line
    if split not in ("train", "valid"):
        raise UsageError(f"split={split!r}; allowed: ('train', 'valid')")
    sr = int(cfg["sample_rate"])
    seconds = float(cfg["segment_seconds"])
    conditions = dict(cfg.get("conditions") or {})
    rep = representations.from_data(cfg)  # what the network sees (its settings checked here)

    if kind == "synth":
        if cfg.get("pitch_shift"):
            raise UsageError(f"data.pitch_shift={cfg['pitch_shift']!r} shifts recordings of a manifest; allowed "
                             "with data.kind=synth: [] (its notes are made at any pitch)")
        s = dict(cfg.get("synth") or {})
        s_seed = s.pop("seed", 0)
        n = int(s.pop("n", 1000))
        if split == "valid":  # a disjoint set of notes: another seed
            s_seed, n = s_seed + 1_000_003, max(1, n // 10)
        ds = SynthNotes(n, sample_rate=sr, seconds=seconds, conditions=conditions, seed=s_seed, **s)
        if vocab_values is not None and ds.vocab is not None and list(ds.vocab.values) != vocab_values:
            raise UsageError(f"data.kind=synth makes the labels {list(ds.vocab.values)}, not the given vocabulary "
                             f"{vocab_values}; fine-tune on a manifest, or with the base run's synth settings")
        spec = ConditionSpec(ds.conditions, None if ds.vocab is None else ds.vocab.values,
                             (min(ds.pitches), max(ds.pitches)))  # the notes' range, whatever the conditions
    else:
        if not cfg.get("manifest"):
            raise UsageError("data.kind=manifest needs data.manifest (a JSONL manifest; build one with "
                             "`audiodiff prepare source=<folder> out=<manifest.jsonl>`)")
        entries = read_manifest(cfg["manifest"])
        train, valid = split_manifest(entries, float(cfg.get("valid_fraction", 0.1)), seed=0,
                                      group_by=cfg.get("group_by"))
        part = train if split == "train" else valid
        shifts = pitch_shifts(cfg.get("pitch_shift"), conditions)
        check = cfg.get("check_files", True)
        if not isinstance(check, bool):
            raise UsageError(f"data.check_files={check!r}; allowed: true or false")
        frac = cfg.get("max_failure_fraction", 0.1)
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac <= 1:
            raise UsageError(f"data.max_failure_fraction={frac!r}; allowed: a number in [0, 1]")
        precompute = rep.precomputable and cfg.get("precompute_mel")
        if check and not precompute:  # MelDataset decodes every file itself (or reads its cache)
            part, _ = check_entries(part, source=cfg["manifest"], max_failure_fraction=float(frac))
        common = dict(conditions=conditions, seed=seed, random_crop=bool(cfg.get("random_crop", True)),
                      loudness_db=cfg.get("loudness_db"), max_failure_fraction=float(frac),
                      source=cfg["manifest"])
        # made from every entry of the manifest, so train and valid share label ids and the pitch range
        spec = ConditionSpec.from_entries(entries, conditions, vocab=vocab_values)
        if shifts and split == "train":  # after the file check: a copy reads the file its original read
            part = shifted_copies(part, conditions["pitch"], shifts, entries)
        if precompute:
            ds = MelDataset(part, rep.contract, segment_seconds=seconds, vocab=spec.vocabulary, device=device,
                            cache_dir=cfg.get("cache_dir"), **common)
        else:
            ds = WaveformDataset(part, sr, segment_seconds=seconds, vocab=spec.vocabulary, **common)
    info = {
        "sample_rate": sr,
        "segment_samples": int(round(seconds * sr)),
        "channels": 1,
        **spec.to_dict(),
        "num_classes": spec.num_classes or None,
    }
    return {"dataset": ds, "info": info}
