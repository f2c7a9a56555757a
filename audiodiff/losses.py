"""Spectral distances shared by training (vocoder GAN / regression losses, vocoder validation) and evaluation
(resynthesis distances).

- Multi-resolution STFT distance (Yamamoto et al. 2020, Parallel WaveGAN): at each `(n_fft, hop, win)`
  resolution, spectral convergence `||S - S^||_F / ||S||_F` plus the mean absolute log-magnitude
  difference; averaged over resolutions.
- Log-spectral distance (Gray & Markel 1976): per frame, the RMS over frequency of the difference of the
  power spectra in dB; averaged over frames. Scaling a signal by `a` gives exactly `|20 log10 a|`.
- Mel L1: mean absolute difference of natural-log mel spectrograms under a :class:`~audiodiff.mel.MelSpec`.

All functions are pure torch (differentiable) and take `(B, T)`, `(B, 1, T)` or `(T,)` waveforms. Reference
and estimate may differ in length by at most `max_length_diff` samples (a vocoder returns `frames * hop`, which
can exceed the source by < one hop); both are then cut to the shorter length. A larger difference raises.
:func:`resynthesis_distances` gives the three as floats (the vocoder trainer's validation;
:func:`audiodiff.evaluation.vocoder_metrics.resynthesis_metrics` adds PESQ).
"""
from __future__ import annotations

from typing import Sequence

import torch

DEFAULT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() == 1:
        x = x[None]
    elif x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"{name}: expected mono (B, 1, T); got {tuple(x.shape)}")
        x = x[:, 0]
    elif x.dim() != 2:
        raise ValueError(f"{name}: expected (T,), (B, T) or (B, 1, T); got {tuple(x.shape)}")
    return x.float()


def align(ref: torch.Tensor, est: torch.Tensor, max_length_diff: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as `(B, T)` float, cut to the shorter length; raise if batch sizes or lengths disagree too much."""
    ref, est = _as_batch(ref, "ref"), _as_batch(est, "est")
    if ref.shape[0] != est.shape[0]:
        raise ValueError(f"ref and est batch sizes differ: {ref.shape[0]} != {est.shape[0]}")
    diff = abs(ref.shape[-1] - est.shape[-1])
    if diff > max_length_diff:
        raise ValueError(f"ref ({ref.shape[-1]} samples) and est ({est.shape[-1]}) differ in length by {diff} "
                         f"> max_length_diff={max_length_diff}")
    n = min(ref.shape[-1], est.shape[-1])
    return ref[:, :n], est[:, :n].to(ref.device)


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None) -> torch.Tensor:
    """`|STFT|` `(B, n_fft // 2 + 1, frames)` of `wav (B, T)` (Hann window, centred, reflect padding)."""
    win_length = win_length or n_fft
    window = torch.hann_window(win_length, device=wav.device)
    return torch.stft(wav, n_fft, hop_length, win_length, window, center=True, return_complex=True).abs()


def spectral_convergence(ref_mag: torch.Tensor, est_mag: torch.Tensor) -> torch.Tensor:
    """Per item `||ref - est||_F / ||ref||_F` over magnitudes `(B, F, frames)` -> `(B,)`."""
    num = (ref_mag - est_mag).flatten(1).norm(dim=1)
    den = ref_mag.flatten(1).norm(dim=1).clamp_min(1e-12)
    return num / den


def log_magnitude_distance(ref_mag: torch.Tensor, est_mag: torch.Tensor, floor: float = 1e-5) -> torch.Tensor:
    """Per item mean `|log(max(ref, floor)) - log(max(est, floor))|` -> `(B,)`."""
    d = (ref_mag.clamp_min(floor).log() - est_mag.clamp_min(floor).log()).abs()
    return d.flatten(1).mean(dim=1)


def mrstft_distance(ref, est, resolutions: Sequence[Sequence[int]] = DEFAULT_RESOLUTIONS, reduce: bool = True,
                    max_length_diff: int = 1024) -> torch.Tensor:
    """Multi-resolution STFT distance: mean over resolutions of spectral convergence + log-magnitude L1.

    Args:
        ref, est: waveforms `(B, T)` / `(B, 1, T)` / `(T,)`.
        resolutions: `(n_fft, hop, win)` triples.
        reduce: batch mean (scalar) or per item `(B,)`.
    """
    ref, est = align(ref, est, max_length_diff)
    total = 0.0
    for n_fft, hop, win in resolutions:
        R, E = stft_magnitude(ref, n_fft, hop, win), stft_magnitude(est, n_fft, hop, win)
        total = total + spectral_convergence(R, E) + log_magnitude_distance(R, E)
    out = total / len(resolutions)
    return out.mean() if reduce else out


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


def mel_l1(ref, est, mel_spec, reduce: bool = True, max_length_diff: int = 1024) -> torch.Tensor:
    """Mean absolute difference of natural-log mel spectrograms (`mel_spec.log_mel`) of ref and est."""
    ref, est = align(ref, est, max_length_diff)
    d = (mel_spec.log_mel(ref) - mel_spec.log_mel(est)).abs().flatten(1).mean(dim=1)
    return d.mean() if reduce else d


def resynthesis_distances(ref, est, mel_spec) -> dict[str, float]:
    """`{"mel_l1", "mrstft", "lsd"}` of one batch as floats (batch means, no gradient)."""
    with torch.no_grad():
        return {"mel_l1": float(mel_l1(ref, est, mel_spec)), "mrstft": float(mrstft_distance(ref, est)),
                "lsd": float(log_spectral_distance(ref, est))}


__all__ = ["DEFAULT_RESOLUTIONS", "align", "stft_magnitude", "spectral_convergence", "log_magnitude_distance",
           "mrstft_distance", "log_spectral_distance", "mel_l1", "resynthesis_distances"]
