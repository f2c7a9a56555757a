"""Phase from magnitude alone: phase-gradient integration (after Prusa, Balazs & Sondergaard 2017, PGHI).

For a Gaussian window `g(u) = exp(-pi u^2 / lam)` (u in samples) and the STFT referenced to the window's centre,
the phase `phi` and the log-magnitude `s` of any signal are tied (Portnoff; the STFT is analytic up to a factor):

    d phi / d x     = 2 pi w + (1 / lam) * d s / d w      (x: time in samples, w: frequency in cycles per sample)
    d phi / d w     = -lam * d s / d x

Check on a tone `exp(2 pi i f t)`: `s = -pi lam (w - f)^2 + c`, so `d phi / d x = 2 pi f`; on an impulse at `t0`:
`s = -pi (t0 - x)^2 / lam + c`, so `d phi / d w = -2 pi (t0 - x)`. A Hann window of length `L` behaves like a
Gaussian with `lam = 0.25645 L^2` (the paper's fit). Both gradients come from finite differences of `log |S|`.

Integration. The paper integrates the gradient over the time-frequency plane in order of decreasing magnitude (a
heap); that is a loop per cell, too slow in Python for a batch of clips. This module integrates frame by frame,
vectorised over the batch and the bins: in each frame, every spectral peak (a local maximum of the magnitude)
takes the previous frame's phase at its bin plus the time gradient (the trapezoid of the two frames), and every
other bin takes its peak's phase plus the frequency gradient summed from the peak to it (bins between two peaks
belong to the larger side of the minimum between them). This follows the heap's order where it matters (from each
peak outward, high to low) and costs one pass of tensor operations per frame.

The result is an initial phase: by itself it is already far more consistent than random or zero phase, and a few
iterations of fast Griffin-Lim (`griffin_lim(..., init="pghi")`) then refine it.
"""
from __future__ import annotations

import math

import torch

HANN_LAMBDA = 0.25645  # lam / L^2 of the Gaussian that best matches a Hann window of length L (Prusa et al. 2017)


def pghi_phase(magnitude: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None,
               tol_db: float = 120.0) -> torch.Tensor:
    """Phase `(B, n_fft // 2 + 1, frames)` for `magnitude`, in `torch.stft`'s convention (frames centred).

    Args:
        magnitude: `(B, n_fft // 2 + 1, frames)` non-negative STFT magnitude (Hann window, `center=True` frames).
        n_fft, hop_length, win_length: the STFT's settings.
        tol_db: the log-magnitude is floored this far below the clip's loudest bin, so that near-silent bins
            (digital zeros) do not turn into huge gradients.
    """
    if magnitude.dim() != 3 or magnitude.shape[1] != n_fft // 2 + 1:
        raise ValueError(f"pghi_phase: magnitude must be (B, {n_fft // 2 + 1}, frames); got {tuple(magnitude.shape)}")
    if tol_db <= 0:
        raise ValueError(f"pghi_phase: tol_db must be > 0; got {tol_db}")
    B, F, T = magnitude.shape
    M, a = float(n_fft), float(hop_length)
    lam = HANN_LAMBDA * float(win_length or n_fft) ** 2
    S = magnitude.float().clamp_min(0)
    floor = S.amax(dim=(1, 2), keepdim=True).clamp_min(1e-30) * 10.0 ** (-tol_db / 20)
    s = torch.log(torch.maximum(S, floor))

    # finite differences: per cycle/sample along frequency, per sample along time (one-sided at the edges)
    ds_dw = torch.gradient(s, dim=1)[0] * M
    ds_dx = torch.gradient(s, dim=2)[0] / a if T > 1 else torch.zeros_like(s)
    bins = torch.arange(F, dtype=s.dtype, device=s.device).view(1, F, 1)
    phi_x = 2 * math.pi * bins / M + ds_dw / lam  # radians per sample
    phi_w = -lam * ds_dx  # radians per (cycle/sample)
    step_t = a * 0.5 * (phi_x[..., 1:] + phi_x[..., :-1])  # frame n-1 -> n, (B, F, T-1)
    step_f = 0.5 * (phi_w[:, 1:] + phi_w[:, :-1]) / M  # bin m -> m+1, (B, F-1, T)
    # C[:, m, n]: the frequency integral from bin 0 to bin m
    C = torch.cat([torch.zeros_like(step_f[:, :1]), torch.cumsum(step_f, dim=1)], dim=1)

    # each bin's peak, per frame: local maxima; a bin climbs to the larger of its neighbours until a maximum.
    # Work frame-major, (B, T, F): every gather below is then along the contiguous last dimension.
    owner = _peak_owner(S.transpose(1, 2).contiguous())  # (B, T, F): the bin this bin's phase comes from
    Ct = C.transpose(1, 2).contiguous()
    stepped = torch.cat([torch.zeros_like(step_t[..., :1]), step_t], dim=2).transpose(1, 2).contiguous()
    # everything that does not depend on the previous frame, for all frames at once: the time step at each bin's
    # peak plus the frequency integral from the peak to the bin
    at_peak = stepped.gather(2, owner) + Ct - Ct.gather(2, owner)
    centred = torch.empty_like(at_peak)
    prev = torch.zeros(B, F, dtype=s.dtype, device=s.device)
    for n in range(T):  # phase(n) = phase(n - 1) at the peak + its time step + the frequency integral from it
        prev = torch.remainder(prev.gather(1, owner[:, n]) + at_peak[:, n], 2 * math.pi)
        centred[:, n] = prev
    centred = centred.transpose(1, 2)
    # torch.stft frames start half a window before their centre: a factor exp(-i pi m) for an n_fft window
    phase = centred + math.pi * bins
    return torch.remainder(phase, 2 * math.pi).to(magnitude.dtype if magnitude.is_floating_point() else torch.float32)


def _peak_owner(S: torch.Tensor) -> torch.Tensor:
    """For each bin of `S` `(..., F)`, the spectral peak it belongs to: follow the larger neighbour uphill until a
    local maximum. Pointer jumping (`owner = owner[owner]`, at most log2(F) rounds, stopping when nothing moves)
    makes it a few gathers instead of a walk."""
    F = S.shape[-1]
    idx = torch.arange(F, device=S.device).expand_as(S)
    # break ties (a click's frame is flat across bins): a rise of 1e-4 over the band makes a plateau one peak
    S = S * (1 + 1e-4 * idx / F)
    left = torch.cat([S[..., :1] - 1, S[..., :-1]], dim=-1)  # the edge bins have no outside neighbour
    right = torch.cat([S[..., 1:], S[..., -1:] - 1], dim=-1)
    up = torch.where(right > left, idx + 1, idx - 1)
    nxt = torch.where(torch.maximum(left, right) > S, up, idx)  # a local maximum points at itself
    for _ in range(max(1, math.ceil(math.log2(max(F, 2)))) + 1):
        jumped = nxt.gather(-1, nxt)
        if torch.equal(jumped, nxt):
            break
        nxt = jumped
    return nxt
