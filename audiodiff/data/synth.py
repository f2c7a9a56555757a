"""Built-in procedural dataset: pitched notes from band-limited additive and FM synthesis with ADSR.

Every timbre is a sum of exact harmonics of `f0 = 440 * 2 ** ((pitch - 69) / 12)` (phase integrated
from the instantaneous frequency, so vibrato bends all partials together), kept below 0.95 x Nyquist,
so the fundamental is exactly the MIDI pitch and nothing aliases:

- `sine`: the fundamental alone;
- `square`: odd harmonics with amplitude 1/k (Fourier series of a square wave);
- `saw`: all harmonics with amplitude 1/k (Fourier series of a sawtooth);
- `fm_bell`: two-operator FM (Chowning 1973), carrier:modulator 1:3 (partials at 1, 2, 4, 5, 7... x f0)
  with a decaying index under a percussive envelope (a bright attack that mellows);
- `pluck`: harmonics 1/k, harmonic k decaying as exp(-(1.5 + 1.2 k) t) (a plucked string's spectrum
  that dulls over time, as Karplus-Strong's low-pass loop gives, without its fractional-delay tuning error).

Notes are deterministic given `(seed, index)`. `SynthNotes` renders on the fly (a Dataset);
`write_synth_dataset` writes files plus `manifest.jsonl` for the manifest-based pipeline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from audiodiff import audio as _audio
from audiodiff.conditions import Vocabulary, check_fields, item_conditions
from audiodiff.data.base import _split_index
from audiodiff.data.manifest import write_manifest

__all__ = ["TIMBRES", "ENVELOPES", "midi_to_hz", "adsr", "render_note", "SynthNotes", "write_synth_dataset"]

TIMBRES = ("sine", "square", "saw", "fm_bell", "pluck")

# (attack s, decay s, sustain level, release s) per timbre.
ENVELOPES = {
    "sine": (0.01, 0.10, 0.8, 0.10),
    "square": (0.01, 0.10, 0.7, 0.10),
    "saw": (0.02, 0.15, 0.7, 0.10),
    "fm_bell": (0.002, 0.60, 0.0, 0.05),
    "pluck": (0.002, 0.80, 0.0, 0.05),
}


def midi_to_hz(pitch: float) -> float:
    """Equal-tempered frequency of MIDI note `pitch` (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((float(pitch) - 69.0) / 12.0)


def adsr(num_samples: int, sample_rate: int, attack: float, decay: float, sustain: float,
         release: float) -> np.ndarray:
    """Linear-attack, exponential-decay ADSR envelope `(T,)` held until `release` s before the end.

    The decay approaches `sustain` with time constant `decay / 5` (about 99% there after `decay`); the
    release fades linearly from the held level to 0 at the last sample.
    """
    if not (attack >= 0 and decay > 0 and 0 <= sustain <= 1 and release >= 0):
        raise ValueError(f"bad ADSR ({attack}, {decay}, {sustain}, {release}): need attack >= 0, decay > 0, "
                         "0 <= sustain <= 1, release >= 0")
    t = np.arange(num_samples) / sample_rate
    env = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / (decay / 5.0))
    if attack > 0:
        env = np.where(t < attack, t / attack, env)
    n_rel = min(num_samples, int(round(release * sample_rate)))
    if n_rel > 0:
        env[num_samples - n_rel:] *= np.linspace(1.0, 0.0, n_rel)
    return env


def render_note(pitch: float, timbre: str = "sine", sample_rate: int = 16000, seconds: float = 1.0,
                velocity: float = 0.8, vibrato_cents: float = 0.0, vibrato_hz: float = 5.0, noise: float = 0.0,
                envelope: Sequence[float] | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one note `(T,)` float32, `T = round(seconds * sample_rate)`, peak = `velocity`.

    Args:
        pitch: MIDI note number (float allowed); its frequency must lie below 0.95 x Nyquist.
        timbre: one of :data:`TIMBRES`.
        velocity: peak amplitude in (0, 1].
        vibrato_cents: sinusoidal vibrato depth (cents, peak); `vibrato_hz` its rate.
        noise: white-noise standard deviation relative to the peak (added before scaling); needs `rng`.
        envelope: `(attack, decay, sustain, release)`; None uses :data:`ENVELOPES[timbre]`.
        rng: generator for the vibrato phase and the noise (None: phase 0, and noise must be 0).
    """
    if timbre not in TIMBRES:
        raise ValueError(f"unknown timbre {timbre!r}; allowed: {list(TIMBRES)}")
    if not 0 < velocity <= 1:
        raise ValueError(f"velocity must be in (0, 1]; got {velocity}")
    if seconds <= 0 or sample_rate <= 0:
        raise ValueError(f"seconds and sample_rate must be positive; got {seconds}, {sample_rate}")
    if noise < 0 or vibrato_cents < 0:
        raise ValueError(f"noise and vibrato_cents must be >= 0; got {noise}, {vibrato_cents}")
    if noise > 0 and rng is None:
        raise ValueError("noise > 0 needs an rng (np.random.Generator) so the note stays reproducible")
    f0 = midi_to_hz(pitch)
    limit = 0.95 * sample_rate / 2
    vib_ratio = 2.0 ** (vibrato_cents / 1200.0)
    if f0 * vib_ratio >= limit:
        raise ValueError(f"pitch {pitch} ({f0:.1f} Hz) is above 0.95 x Nyquist ({limit:.0f} Hz) at "
                         f"sample_rate {sample_rate}")
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    freq = np.full(n, f0)
    if vibrato_cents > 0:
        phase0 = rng.uniform(0, 2 * np.pi) if rng is not None else 0.0
        freq = f0 * 2.0 ** (vibrato_cents / 1200.0 * np.sin(2 * np.pi * vibrato_hz * t + phase0))
    # phase of the fundamental, integrated so that phase[0] = 0
    phase = 2 * np.pi * np.concatenate([[0.0], np.cumsum(freq[:-1])]) / sample_rate
    kmax = max(1, int(limit // (f0 * vib_ratio)))

    if timbre == "sine":
        x = np.sin(phase)
    elif timbre == "square":
        x = _harmonic_sum(phase, kmax, lambda k: 1.0 / k if k % 2 else 0.0)
    elif timbre == "saw":
        x = _harmonic_sum(phase, kmax, lambda k: (1.0 if k % 2 else -1.0) / k)
    elif timbre == "pluck":  # harmonic k decays as exp(-(1.5 + 1.2 k) t): higher partials die first
        x = _harmonic_sum(phase, kmax, lambda k: 1.0 / k, decay=np.exp(-1.2 * t)) * np.exp(-1.5 * t)
    else:  # fm_bell: sin(phase + I(t) sin(3 phase)); partials f0 |1 + 3j| are harmonics (no DC, no f0/2)
        # Carson's rule: the spectrum reaches about (I + 1) modulator multiples; cap I so nothing aliases
        i_max = max(0.0, limit / (3 * f0 * vib_ratio) - 1.0)
        index = np.minimum(0.4 + 2.0 * np.exp(-t / 0.15), i_max)
        x = np.sin(phase + index * np.sin(3 * phase))

    env = adsr(n, sample_rate, *(envelope if envelope is not None else ENVELOPES[timbre]))
    x = x * env
    if noise > 0:
        peak = np.abs(x).max()
        x = x + rng.normal(0.0, noise * peak, size=n) * np.minimum(1.0, env * 4)
    peak = np.abs(x).max()
    if peak > 0:
        x = x * (velocity / peak)
    return x.astype(np.float32)


def _harmonic_sum(phase: np.ndarray, kmax: int, weight, decay: np.ndarray | None = None) -> np.ndarray:
    """`sum_k weight(k) * decay**k * sin(k * phase)` for k = 1..kmax.

    sin(k phase) comes from the Chebyshev recurrence `s_{k+1} = 2 cos(phase) s_k - s_{k-1}` (one
    multiply-add per harmonic instead of a `sin`; float64 error ~1e-12 for a few hundred harmonics).
    """
    c2 = 2.0 * np.cos(phase)
    prev, cur = np.zeros_like(phase), np.sin(phase)
    nxt = np.empty_like(phase)
    out = np.zeros_like(phase)
    gain = None if decay is None else decay.copy()
    for k in range(1, kmax + 1):
        w = weight(k)
        if w:
            out += (w * gain * cur) if gain is not None else (w * cur)
        np.multiply(c2, cur, out=nxt)
        nxt -= prev
        prev, cur, nxt = cur, nxt, prev
        if gain is not None:
            gain *= decay
    return out


def _param_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED, int(index)])


class SynthNotes(Dataset):
    """Procedural pitched notes, item `i` fixed by `(seed, i)`: `{"audio": (1, T), "pitch": float, "labels": int}`.

    Args:
        n: number of notes.
        sample_rate, seconds: rendering rate and note length.
        pitches: MIDI notes to draw from (uniformly).
        timbres: subset of :data:`TIMBRES` to draw from; the `labels` vocabulary is their sorted names.
        vibrato: maximum vibrato depth in cents (each note draws uniformly in [0, vibrato]); 0 = none.
        noise: maximum relative noise level (each note draws in [0, noise]); 0 = none.
        velocity: `(low, high)` peak amplitude range (draw uniformly), or one float.
        conditions: network keyword -> note field (`"pitch"`, `"timbre"`); default pitch and timbre labels.
        seed: dataset seed.
    The easy demo setting: `SynthNotes(n, timbres=("sine",), seconds=0.5, velocity=0.8)`.
    """

    FIELDS = ("pitch", "timbre")

    def __init__(self, n: int, sample_rate: int = 16000, seconds: float = 1.0, pitches=range(48, 73),
                 timbres: Sequence[str] = TIMBRES, vibrato: float = 0.0, noise: float = 0.0,
                 velocity: float | Sequence[float] = (0.6, 1.0),
                 conditions: Mapping[str, str] | None = None, seed: int = 0):
        if n <= 0:
            raise ValueError(f"n must be positive; got {n}")
        timbres = tuple(timbres)
        bad = [t for t in timbres if t not in TIMBRES]
        if bad or not timbres:
            raise ValueError(f"unknown timbre(s) {bad}; allowed: {list(TIMBRES)}")
        self.pitches = [int(p) for p in pitches]
        if not self.pitches:
            raise ValueError("pitches is empty")
        top = max(self.pitches) + vibrato / 100.0
        if midi_to_hz(top) >= 0.95 * sample_rate / 2:
            raise ValueError(f"pitch {max(self.pitches)} (with vibrato) is above 0.95 x Nyquist at {sample_rate} Hz")
        if isinstance(velocity, (int, float)):
            velocity = (float(velocity), float(velocity))
        if not 0 < velocity[0] <= velocity[1] <= 1:
            raise ValueError(f"velocity range must satisfy 0 < low <= high <= 1; got {velocity}")
        self.conditions = check_fields({"pitch": "pitch", "labels": "timbre"} if conditions is None else conditions)
        for key, fld in self.conditions.items():
            if fld not in self.FIELDS:
                raise ValueError(f"SynthNotes condition {key!r} -> {fld!r}: allowed fields {list(self.FIELDS)}")
        self.n, self.sample_rate, self.seconds = int(n), int(sample_rate), float(seconds)
        self.segment_samples = int(round(seconds * sample_rate))
        self.timbres, self.vibrato, self.noise = timbres, float(vibrato), float(noise)
        self.velocity = (float(velocity[0]), float(velocity[1]))
        self.seed = int(seed)
        lab = self.conditions.get("labels")
        self.vocab = Vocabulary(self.pitches if lab == "pitch" else timbres, name=lab) if lab else None
        self.failures: dict[str, str] = {}

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        """Notes do not change between epochs (present for the training loop's uniform interface)."""

    def params(self, index: int) -> dict:
        """The note parameters of item `index`: pitch (int MIDI), timbre, velocity, vibrato_cents, noise."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for SynthNotes of {self.n}")
        r = _param_rng(self.seed, index)
        return {
            "pitch": self.pitches[int(r.integers(len(self.pitches)))],
            "timbre": self.timbres[int(r.integers(len(self.timbres)))],
            "velocity": float(r.uniform(*self.velocity)),
            "vibrato_cents": float(r.uniform(0, self.vibrato)) if self.vibrato > 0 else 0.0,
            "noise": float(r.uniform(0, self.noise)) if self.noise > 0 else 0.0,
        }

    def render(self, index: int) -> np.ndarray:
        p = self.params(index)
        rng = _param_rng(self.seed + 1, index)
        return render_note(p["pitch"], p["timbre"], self.sample_rate, self.seconds, velocity=p["velocity"],
                           vibrato_cents=p["vibrato_cents"], noise=p["noise"], rng=rng)

    def __getitem__(self, idx) -> dict:
        index, _ = _split_index(idx)
        if index < 0:
            index += self.n
        p = self.params(index)
        return {"audio": torch.from_numpy(self.render(index))[None], **item_conditions(self.conditions, self.vocab, p)}


def write_synth_dataset(folder, n: int, format: str = "flac", **kwargs) -> Path:
    """Render `SynthNotes(n, **kwargs)` to `folder/notes/*.{flac,wav}` and write `folder/manifest.jsonl`.

    Entries carry `pitch` (int MIDI), `timbre`, `velocity`, `vibrato_cents`, `noise`. Returns the manifest path.
    """
    if format not in ("flac", "wav"):
        raise ValueError(f"format must be 'flac' or 'wav'; got {format!r}")
    ds = SynthNotes(n, **kwargs)
    folder = Path(folder)
    (folder / "notes").mkdir(parents=True, exist_ok=True)
    entries = []
    width = max(5, len(str(n - 1)))
    for i in range(n):
        p = ds.params(i)
        path = folder / "notes" / f"{i:0{width}d}_{p['timbre']}_{p['pitch']}.{format}"
        _audio.save(path, ds.render(i)[None], ds.sample_rate)
        entries.append({"path": str(path.resolve()), "duration": ds.segment_samples / ds.sample_rate,
                        "sample_rate": ds.sample_rate, **p})
    return write_manifest(entries, folder / "manifest.jsonl")
