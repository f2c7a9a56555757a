"""Resynthesis distances for vocoders: mel L1, multi-resolution STFT distance, log-spectral distance, speed, PESQ.

- Multi-resolution STFT distance (Yamamoto et al. 2020, Parallel WaveGAN): at each `(n_fft, hop, win)`
  resolution, spectral convergence `||S - S^||_F / ||S||_F` plus the mean absolute log-magnitude
  difference; averaged over resolutions.
- Log-spectral distance (Gray & Markel 1976): per frame, the RMS over frequency of the difference of the
  power spectra in dB; averaged over frames. Scaling a signal by `a` gives exactly `|20 log10 a|`.
- Mel L1: mean absolute difference of natural-log mel spectrograms under a :class:`~audiodiff.mel.MelSpec`.
- PESQ (ITU-T P.862) through the optional `pesq` package; None when it is not installed.

All functions are pure torch (the losses among them live in :mod:`audiodiff.losses`, re-exported here)
and take `(B, T)`, `(B, 1, T)` or `(T,)` waveforms. Reference and estimate may differ in length by at most
`max_length_diff` samples (a vocoder returns `frames * hop`, which can exceed the source by < one hop);
both are then cut to the shorter length. A larger difference raises.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

# the differentiable distances are losses too (vocoder training): they live in audiodiff/losses.py
from ..losses import (DEFAULT_RESOLUTIONS, _as_batch, align, log_magnitude_distance, mel_l1,  # noqa: F401
                      mrstft_distance, spectral_convergence, stft_magnitude)


def log_spectral_distance(ref, est, n_fft: int = 2048, hop_length: int = 512, eps: float = 1e-10,
                          reduce: bool = True, max_length_diff: int = 1024) -> torch.Tensor:
    """Log-spectral distance in dB: mean over frames of the RMS over frequency of `10 log10(P_ref / P_est)`.

    `eps` is added to both power spectra, so bins silent in both contribute 0.
    """
    ref, est = align(ref, est, max_length_diff)
    P = stft_magnitude(ref, n_fft, hop_length).pow(2) + eps
    Q = stft_magnitude(est, n_fft, hop_length).pow(2) + eps
    d = 10 * (torch.log10(P) - torch.log10(Q))
    per_frame = d.pow(2).mean(dim=1).sqrt()  # (B, frames)
    out = per_frame.mean(dim=1)
    return out.mean() if reduce else out


def pesq_score(ref, est, sample_rate: int, mode: str | None = None) -> float | None:
    """Mean PESQ (ITU-T P.862) over the batch, or None when the `pesq` package is not installed.

    Audio is resampled to 16 kHz (wide band) or, for `mode="nb"` / 8 kHz input, 8 kHz (narrow band).
    """
    try:
        from pesq import pesq as _pesq
    except ImportError:
        return None
    from ..audio import resample

    ref, est = align(ref, est)
    mode = mode or ("nb" if sample_rate < 16000 else "wb")
    if mode not in ("wb", "nb"):
        raise ValueError(f"pesq mode {mode!r} is not allowed; allowed: ('wb', 'nb')")
    target = 16000 if mode == "wb" else 8000
    r = resample(ref.cpu(), sample_rate, target).numpy()
    e = resample(est.cpu(), sample_rate, target).numpy()
    return float(sum(_pesq(target, a, b, mode) for a, b in zip(r, e)) / len(r))


def _sync(device) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def real_time_factor(fn: Callable[[], object], audio_seconds: float, repeats: int = 3, warmup: int = 1,
                     device=None) -> dict:
    """Time `fn()` (which synthesises `audio_seconds` of audio) and report its speed.

    Returns:
        `{"seconds": median wall time per call, "rtf": seconds / audio_seconds,
        "x_real_time": audio_seconds / seconds}`; CUDA is synchronised around each call when `device` is CUDA.
    """
    if audio_seconds <= 0 or repeats < 1 or warmup < 0:
        raise ValueError(f"need audio_seconds > 0, repeats >= 1, warmup >= 0; got {audio_seconds}, {repeats}, {warmup}")
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
    sec = sorted(times)[len(times) // 2]
    return {"seconds": sec, "rtf": sec / audio_seconds, "x_real_time": audio_seconds / sec if sec > 0 else math.inf}


def resynthesis_metrics(ref, est, mel_spec, with_pesq: bool = True) -> dict:
    """All distances of one batch as floats: `mel_l1`, `mrstft`, `lsd`, `pesq` (None without the package)."""
    with torch.no_grad():
        out = {"mel_l1": float(mel_l1(ref, est, mel_spec)), "mrstft": float(mrstft_distance(ref, est)),
               "lsd": float(log_spectral_distance(ref, est))}
    out["pesq"] = pesq_score(ref, est, mel_spec.sample_rate) if with_pesq else None
    return out


__all__ = ["DEFAULT_RESOLUTIONS", "align", "stft_magnitude", "spectral_convergence", "log_magnitude_distance",
           "mrstft_distance", "log_spectral_distance", "mel_l1", "pesq_score", "real_time_factor",
           "resynthesis_metrics"]
