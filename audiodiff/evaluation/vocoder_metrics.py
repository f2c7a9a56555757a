"""Resynthesis metrics for vocoders: the spectral distances, PESQ and speed.

- The spectral distances (mel L1, multi-resolution STFT distance, log-spectral distance) are in
  :mod:`audiodiff.losses`, where the vocoder trainer reads them too; :func:`resynthesis_metrics` reports them.
- PESQ (ITU-T P.862) through the optional `pesq` package, STOI and ESTOI through `pystoi`
  (`pip install audiodiff[metrics]`); None when the package is not installed.
- Speed: :func:`real_time_factor`.

Waveforms are `(B, T)`, `(B, 1, T)` or `(T,)`. Reference and estimate may differ in length by at most
`max_length_diff` samples (a vocoder returns `frames * hop`, which can exceed the source by < one hop);
both are then cut to the shorter length. A larger difference raises.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

from ..losses import align, resynthesis_distances


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


STOI_MIN_SECONDS = 0.4  # pystoi's 384 ms analysis segments: a shorter clip has none (it warns and returns 1e-5)


def stoi_score(ref, est, sample_rate: int, extended: bool = False) -> float | None:
    """Mean STOI (Taal et al. 2011) or, with `extended`, ESTOI (Jensen & Taal 2016) over the batch, in [0, 1].

    None when the `pystoi` package is not installed or a clip is shorter than `STOI_MIN_SECONDS` (after removing
    silent frames pystoi would have no segment to score). pystoi resamples to 10 kHz itself.
    """
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        return None
    ref, est = align(ref, est)
    r = ref.detach().cpu().double().reshape(-1, ref.shape[-1]).numpy()
    e = est.detach().cpu().double().reshape(-1, est.shape[-1]).numpy()
    if r.shape[-1] < STOI_MIN_SECONDS * sample_rate:
        return None
    return float(sum(_stoi(a, b, sample_rate, extended=extended) for a, b in zip(r, e)) / len(r))


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
    """All distances of one batch as floats: `mel_l1`, `mrstft`, `lsd`, `pesq`, `stoi`, `estoi` (each None
    without its package; `stoi`/`estoi` also None for clips under `STOI_MIN_SECONDS`). `with_pesq=False` skips
    the three perceptual scores (the slow ones), leaving them None."""
    out = resynthesis_distances(ref, est, mel_spec)
    sr = mel_spec.sample_rate
    out["pesq"] = pesq_score(ref, est, sr) if with_pesq else None
    out["stoi"] = stoi_score(ref, est, sr) if with_pesq else None
    out["estoi"] = stoi_score(ref, est, sr, extended=True) if with_pesq else None
    return out


__all__ = ["pesq_score", "real_time_factor", "resynthesis_metrics", "stoi_score"]
