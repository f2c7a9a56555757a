"""Pitch accuracy of pitch-conditioned samples: pYIN f0 (Mauch & Dixon 2014), median over voiced frames.

For each generated note we run `librosa.pyin`, take the median f0 of the frames it calls voiced,
convert to a (fractional) MIDI number and compare with the pitch that was asked for. An item is
correct when it lies within `tolerance_cents` (default 50, i.e. it rounds to the asked semitone);
an item with no voiced frame counts as wrong. The result keeps every per-item estimate, and
:func:`plot_pitch_scatter` draws asked vs. estimated pitch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import AudiodiffError

__all__ = ["estimate_pitch", "pitch_accuracy", "plot_pitch_scatter", "PitchError"]


class PitchError(AudiodiffError, ValueError):
    """Bad input to pitch estimation; the message says what was expected."""


def _to_list(audios) -> list[np.ndarray]:
    """`(B, 1, T)` / `(B, T)` tensor or array, or a list of `(T,)` / `(1, T)` -> list of 1-D float arrays."""
    if hasattr(audios, "detach"):
        audios = audios.detach().cpu().numpy()
    if isinstance(audios, np.ndarray):
        if audios.ndim == 3:
            if audios.shape[1] != 1:
                raise PitchError(f"pitch estimation takes mono audio (B, 1, T); got shape {audios.shape}")
            audios = audios[:, 0]
        if audios.ndim != 2:
            raise PitchError(f"audio batch must be (B, 1, T) or (B, T); got shape {audios.shape}")
        items = list(audios)
    else:
        items = []
        for a in audios:
            a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
            if a.ndim == 2 and a.shape[0] == 1:
                a = a[0]
            if a.ndim != 1:
                raise PitchError(f"each audio item must be (T,) or (1, T); got shape {a.shape}")
            items.append(a)
    out = []
    for i, a in enumerate(items):
        a = np.asarray(a, dtype=np.float64)
        if a.size == 0 or not np.isfinite(a).all():
            raise PitchError(f"audio item {i} is empty or contains NaN/inf")
        out.append(a)
    return out


def estimate_pitch(audio: np.ndarray, sample_rate: int, fmin: float, fmax: float,
                   frame_length: int | None = None) -> dict:
    """Median pYIN f0 over voiced frames of one `(T,)` signal.

    Args:
        audio: `(T,)` float array. fmin, fmax: pYIN search range in Hz.
        frame_length: pYIN frame; default the next power of two above both 64 ms and 2.5 periods of
            `fmin` (pYIN needs more than 2 periods of the lowest pitch in a frame).
    Returns:
        `{"f0_hz", "midi", "voiced_fraction"}`; `f0_hz`/`midi` are NaN when no frame is voiced.
    """
    import librosa

    if frame_length is None:
        frame_length = 2 ** math.ceil(math.log2(max(0.064 * sample_rate, 2.5 * sample_rate / fmin)))
    f0, voiced, _ = librosa.pyin(audio.astype(np.float32), fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=frame_length)
    good = voiced & np.isfinite(f0)
    if not good.any():
        return {"f0_hz": float("nan"), "midi": float("nan"), "voiced_fraction": 0.0}
    hz = float(np.median(f0[good]))
    return {"f0_hz": hz, "midi": float(librosa.hz_to_midi(hz)), "voiced_fraction": float(good.mean())}


def pitch_accuracy(audios, sample_rate: int, asked_midi: Sequence[float], tolerance_cents: float = 50.0,
                   fmin: float | None = None, fmax: float | None = None) -> dict:
    """Share of items whose pYIN pitch is within `tolerance_cents` of the asked MIDI pitch.

    Args:
        audios: `(B, 1, T)` tensor/array or a list of B `(T,)` signals at `sample_rate`.
        asked_midi: B asked pitches (MIDI note numbers, may be fractional).
        tolerance_cents: 50 = same nearest semitone.
        fmin, fmax: pYIN range in Hz; default one octave below the lowest / above the highest asked pitch
            (capped below Nyquist), so an octave error is still measured rather than ruled out.
    Returns:
        dict with `accuracy`, `n`, `n_unvoiced`, `octave_errors` (|error| within 50 cents of +-12 semitones),
        `median_abs_cents` (voiced items), `tolerance_cents`, and `items`: one dict per item with `asked_midi`,
        `estimated_midi`, `f0_hz`, `cents_error`, `voiced_fraction`, `correct`.
    """
    import librosa

    items = _to_list(audios)
    asked = np.asarray(asked_midi, dtype=np.float64).reshape(-1)
    if len(asked) != len(items):
        raise PitchError(f"got {len(items)} audio items but {len(asked)} asked pitches")
    if len(items) == 0:
        raise PitchError("no audio items to score")
    if not np.isfinite(asked).all():
        raise PitchError("asked_midi contains NaN or infinite values")
    if tolerance_cents <= 0:
        raise PitchError(f"tolerance_cents must be > 0; got {tolerance_cents}")
    nyquist = sample_rate / 2
    lo = float(librosa.midi_to_hz(asked.min() - 12)) if fmin is None else float(fmin)
    hi = float(librosa.midi_to_hz(asked.max() + 12)) if fmax is None else float(fmax)
    hi = min(hi, 0.95 * nyquist)
    lo = max(lo, 20.0) if fmin is None else lo
    if not 0 < lo < hi:
        raise PitchError(f"pYIN range fmin={lo:.1f} Hz, fmax={hi:.1f} Hz is empty (Nyquist {nyquist} Hz); "
                         f"asked pitches span MIDI {asked.min()}..{asked.max()}")
    rows = []
    for a, want in zip(items, asked):
        est = estimate_pitch(a, sample_rate, lo, hi)
        cents = 100.0 * (est["midi"] - want) if math.isfinite(est["midi"]) else float("nan")
        rows.append({"asked_midi": float(want), "estimated_midi": est["midi"], "f0_hz": est["f0_hz"],
                     "cents_error": cents, "voiced_fraction": est["voiced_fraction"],
                     "correct": bool(math.isfinite(cents) and abs(cents) <= tolerance_cents)})
    cents = np.array([r["cents_error"] for r in rows])
    voiced = np.isfinite(cents)
    octave = voiced & (np.abs(np.abs(np.where(voiced, cents, 0)) - 1200) <= 50)
    return {
        "accuracy": float(np.mean([r["correct"] for r in rows])),
        "n": len(rows),
        "n_unvoiced": int((~voiced).sum()),
        "octave_errors": int(octave.sum()),
        "median_abs_cents": float(np.median(np.abs(cents[voiced]))) if voiced.any() else float("nan"),
        "tolerance_cents": float(tolerance_cents),
        "fmin_hz": lo, "fmax_hz": hi,
        "items": rows,
    }


def plot_pitch_scatter(result: dict, path, title: str = "pitch: asked vs. estimated (pYIN)") -> Path:
    """Scatter asked vs. estimated MIDI pitch from :func:`pitch_accuracy`'s result; writes a PNG.

    The diagonal and the +-tolerance band are drawn; unvoiced items are marked on the bottom axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["items"]
    asked = np.array([r["asked_midi"] for r in rows])
    est = np.array([r["estimated_midi"] for r in rows])
    ok = np.array([r["correct"] for r in rows])
    voiced = np.isfinite(est)
    tol = result["tolerance_cents"] / 100
    lo = np.nanmin(np.concatenate([asked, est[voiced]])) - 2
    hi = np.nanmax(np.concatenate([asked, est[voiced]])) + 2
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    grid = np.array([lo, hi])
    ax.fill_between(grid, grid - tol, grid + tol, color="0.85", label=f"within {result['tolerance_cents']:.0f} cents")
    ax.plot(grid, grid, color="0.4", lw=0.8)
    ax.scatter(asked[voiced & ok], est[voiced & ok], s=14, c="tab:green", label="correct")
    ax.scatter(asked[voiced & ~ok], est[voiced & ~ok], s=14, c="tab:red", label="wrong")
    if (~voiced).any():
        ax.scatter(asked[~voiced], np.full((~voiced).sum(), lo + 0.5), marker="x", c="k", s=14, label="unvoiced")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("asked pitch (MIDI)")
    ax.set_ylabel("estimated pitch (MIDI)")
    ax.set_title(f"{title}\naccuracy {result['accuracy']:.1%} (n={result['n']})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    from ..plots import save_figure

    return save_figure(fig, path)
