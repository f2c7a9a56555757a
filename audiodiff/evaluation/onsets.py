"""Onsets of generated notes: does a note start once and decay, or does it click and strike again?

A struck or blown note has one onset. A generated note can have more: broadband clicks, a second attack in the
decay, noise bursts. :func:`note_onsets` counts them with spectral flux, the standard onset function: the
half-wave-rectified frame-to-frame rise of the log-power mel spectrogram, summed over bands
(`librosa.onset.onset_strength`), normalised to the clip's strongest rise and peak-picked
(`librosa.onset.onset_detect`).

The threshold `delta` is relative: a rise counts as an onset when it stands `delta` above its neighbourhood on a
scale where the clip's strongest rise is 1. The default 0.3 was chosen on real recordings, never on a model's
samples: the 150 real piano notes of `../shared/data/piano` (first 2 s at 16 kHz) read as exactly one onset in 147
cases at 0.3, in 132 at 0.2 and 57 at librosa's 0.07 (its default is tuned for music with many notes, where the
decay's beating of a single note is a weak rise worth reporting). Scoring real notes the same way beside the
generated ones (the benchmarks' real row) keeps the measure honest whatever the threshold.

A note is *clean* when it has exactly one onset and at least one frame pYIN calls voiced (the pitch measure's
`voiced_fraction > 0`, :mod:`audiodiff.evaluation.pitch`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .pitch import PitchError, _to_list

__all__ = ["note_onsets", "onset_times", "DEFAULT_DELTA"]

DEFAULT_DELTA = 0.3
HOP_SECONDS = 0.016   # 16 ms frames (hop 256 at 16 kHz)
WAIT_SECONDS = 0.05   # two onsets closer than this are one


def onset_times(audio: np.ndarray, sample_rate: int, delta: float = DEFAULT_DELTA) -> np.ndarray:
    """Onset times in seconds of one `(T,)` signal (spectral flux, peak-picked; see the module docstring).

    A silent signal (no rise anywhere) has no onset.
    """
    import librosa

    if not 0 < delta < 1:
        raise PitchError(f"onset delta must be in (0, 1) (a share of the clip's strongest rise); got {delta}")
    y = np.asarray(audio, dtype=np.float32)
    hop = max(1, int(round(HOP_SECONDS * sample_rate)))
    env = librosa.onset.onset_strength(y=y, sr=sample_rate, hop_length=hop)
    if not np.isfinite(env).all() or env.max() - env.min() <= 1e-8:
        return np.zeros(0)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=hop, delta=delta,
                                        wait=max(1, int(round(WAIT_SECONDS * sample_rate / hop))))
    return librosa.frames_to_time(frames, sr=sample_rate, hop_length=hop)


def note_onsets(audios, sample_rate: int, voiced_fraction: Sequence[float] | None = None,
                delta: float = DEFAULT_DELTA) -> dict:
    """Onset counts of a batch of notes and the share that are clean (one onset, a voiced frame).

    Args:
        audios: `(B, 1, T)` tensor/array or a list of B `(T,)` signals at `sample_rate`.
        voiced_fraction: B voiced shares from the pitch measure (`pitch_accuracy(...)["items"][i]
            ["voiced_fraction"]`); without them `clean_notes` is not computed.
        delta: the peak-picking threshold (module docstring).
    Returns:
        `{"n", "one_onset" (share with exactly one onset), "no_onset", "multi_onset" (shares), "mean_onsets",
        "clean_notes" (share with one onset and a voiced frame, or None), "delta", "items": [{"onsets": [s, ...],
        "n_onsets"}]}`.
    """
    items = _to_list(audios)
    if not items:
        raise PitchError("no audio items to score")
    if voiced_fraction is not None and len(voiced_fraction) != len(items):
        raise PitchError(f"got {len(items)} audio items but {len(voiced_fraction)} voiced fractions")
    rows = []
    for a in items:
        t = onset_times(a, sample_rate, delta)
        rows.append({"onsets": [round(float(s), 3) for s in t], "n_onsets": int(len(t))})
    counts = np.array([r["n_onsets"] for r in rows])
    clean = None
    if voiced_fraction is not None:
        voiced = np.asarray(voiced_fraction, dtype=np.float64) > 0
        clean = float(np.mean((counts == 1) & voiced))
    return {"n": len(rows), "one_onset": float(np.mean(counts == 1)), "no_onset": float(np.mean(counts == 0)),
            "multi_onset": float(np.mean(counts > 1)), "mean_onsets": float(counts.mean()),
            "clean_notes": clean, "delta": float(delta), "items": rows}
