"""Griffin-Lim vocoder: mel -> linear magnitude by clamped pseudo-inverse / NNLS, then fast Griffin-Lim.

Phase retrieval follows Perraudin, Balazs & Sondergaard 2013, "A fast Griffin-Lim algorithm" (FGLA):
alternate the projections onto consistent spectrograms (`stft(istft(.))`) and onto the target
magnitude, and extrapolate with momentum `alpha` (0.99 in the paper; 0 is Griffin & Lim 1984).
Everything runs batched on the mel's device with `torch.stft` / `torch.istft`.
"""
from __future__ import annotations

import math

import torch

from ..mel import MelContractError, MelSpec
from .base import Vocoder
from .pghi import pghi_phase

PHASE_INITS = ("random", "zeros", "pghi")

_PINV_CACHE: dict[tuple, torch.Tensor] = {}


def _pinv(mel: MelSpec, device) -> torch.Tensor:
    key = (mel.fingerprint(), str(device))
    if key not in _PINV_CACHE:
        fb = mel.filterbank(device=None, dtype=torch.float64)
        _PINV_CACHE[key] = torch.linalg.pinv(fb).float().to(device)
    return _PINV_CACHE[key]


def mel_to_linear(power_mel: torch.Tensor, mel: MelSpec, nnls_iters: int = 0) -> torch.Tensor:
    """Linear magnitude `(B, n_freqs, frames)` whose mel is `power_mel`: clamped pseudo-inverse, then NNLS.

    Solves `min_X ||fb X - M||^2, X >= 0` for `X = |S|**power`: starts from `max(pinv(fb) M, 0)` and, with
    `nnls_iters > 0`, refines with Lee & Seung's multiplicative NNLS updates (`X *= fb^T M / fb^T fb X`),
    which keep X non-negative and never increase the residual.

    Args:
        power_mel: `(B, n_mels, frames)` mel of magnitude**power (not log), non-negative.
        mel: the contract (filterbank, power).
        nnls_iters: multiplicative refinement steps (0 = pseudo-inverse with clamping only).
    Returns:
        `(B, n_fft // 2 + 1, frames)` magnitude.
    """
    if nnls_iters < 0:
        raise ValueError(f"nnls_iters must be >= 0; got {nnls_iters}")
    dev = power_mel.device
    B, n_mels, T = power_mel.shape
    # one (n_mels, B * T) matrix: each product below is then a single GEMM rather than B small ones
    M = power_mel.float().transpose(0, 1).reshape(n_mels, B * T)
    X = torch.matmul(_pinv(mel, dev), M).clamp_min(0.0)
    if nnls_iters:
        fb = mel.filterbank(dev)
        fbT = fb.t().contiguous()
        fbT_M = torch.matmul(fbT, M)
        tiny = 1e-12
        X = X + tiny  # multiplicative updates cannot leave exact zeros
        for _ in range(nnls_iters):  # fb^T (fb X): two thin products instead of the (F, F) Gram matrix
            X = X * fbT_M / (torch.matmul(fbT, torch.matmul(fb, X)) + tiny)
    if mel.power == 2.0:
        X = X.sqrt()
    return X.reshape(-1, B, T).transpose(0, 1).contiguous()


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None,
                n_iter: int = 32, momentum: float = 0.99, length: int | None = None, center: bool = True,
                pad_mode: str = "reflect", init: str = "random", generator: torch.Generator | None = None,
                ) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013): waveform whose STFT magnitude approximates `magnitude`.

    Iterates `c_n = P_mag(P_consistent(t_{n-1}))`, `t_n = c_n + momentum * (c_n - c_{n-1})` and returns
    `istft(c_N)`. `momentum=0` is the original Griffin-Lim algorithm.

    Args:
        magnitude: `(B, n_fft // 2 + 1, frames)` non-negative target magnitude.
        n_fft, hop_length, win_length, center, pad_mode: STFT settings (Hann window).
        n_iter: iterations (0 returns the initial phase's inverse).
        momentum: FGLA extrapolation, in [0, 1).
        length: output samples; default `frames * hop_length`. Must be at least `(frames - 1) * hop_length`.
        init: initial phase, `random` (uniform, from `generator`; seeded 0 when None), `zeros`, or `pghi` (phase
            from the magnitude's gradients, `audiodiff.vocoders.pghi`: far closer than either, so a few
            iterations reach what random phase needs many for).
    Returns:
        `(B, length)` float32 waveform on `magnitude`'s device.
    """
    if magnitude.dim() != 3 or magnitude.shape[1] != n_fft // 2 + 1:
        raise ValueError(f"griffin_lim: magnitude must be (B, {n_fft // 2 + 1}, frames); got {tuple(magnitude.shape)}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"griffin_lim: momentum must be in [0, 1); got {momentum}")
    if n_iter < 0:
        raise ValueError(f"griffin_lim: n_iter must be >= 0; got {n_iter}")
    if init not in PHASE_INITS:
        raise ValueError(f"griffin_lim: init {init!r} is not allowed; allowed: {PHASE_INITS}")
    B, F, frames = magnitude.shape
    length = frames * hop_length if length is None else int(length)
    if length < (frames - 1) * hop_length:
        raise ValueError(f"griffin_lim: length {length} < (frames - 1) * hop = {(frames - 1) * hop_length}")
    win_length = win_length or n_fft
    dev = magnitude.device
    S = magnitude.float()
    window = torch.hann_window(win_length, periodic=True, device=dev)

    def istft(X):
        return torch.istft(X, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                           center=center, length=length)

    def stft(y):
        Y = torch.stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                       center=center, pad_mode=pad_mode, return_complex=True)
        return Y[..., :frames]  # a longer signal yields extra trailing frames: they are unconstrained

    if init == "pghi":
        c = torch.polar(S, pghi_phase(S, n_fft, hop_length, win_length))
    elif init == "random":
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        phase = torch.rand((B, F, frames), generator=g, device=g.device) * (2 * math.pi)
        c = torch.polar(S, phase.to(dev))
    else:
        c = torch.complex(S, torch.zeros_like(S))
    t, eps = c, 1e-16
    for _ in range(n_iter):
        proj = stft(istft(t))
        c_new = S * proj / (proj.abs() + eps)
        t = c_new + momentum * (c_new - c)
        c = c_new
    return istft(c)


class GriffinLimVocoder(Vocoder):
    """Mel vocoder without training: clamped pseudo-inverse / NNLS mel inversion, then fast Griffin-Lim.

    Args:
        mel: the mel contract to invert.
        n_iter: Griffin-Lim iterations (32 is the benchmark setting).
        momentum: FGLA momentum (Perraudin et al. 2013 use 0.99; 0 = plain Griffin-Lim).
        nnls_iters: multiplicative NNLS refinement steps after the clamped pseudo-inverse.
        init: initial phase, `random`, `zeros` or `pghi` (phase-gradient integration: `audiodiff.vocoders.pghi`).
        seed: seed of the random initial phase (the output is deterministic for a given seed).
    """

    name = "griffinlim"
    trained = False

    def __init__(self, mel: MelSpec, n_iter: int = 32, momentum: float = 0.99, nnls_iters: int = 20,
                 init: str = "random", seed: int = 0):
        super().__init__(mel)
        if init not in PHASE_INITS:
            raise ValueError(f"griffinlim init {init!r} is not allowed; allowed: {PHASE_INITS}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"griffinlim momentum must be in [0, 1); got {momentum}")
        if n_iter < 0 or nnls_iters < 0:
            raise ValueError(f"griffinlim n_iter and nnls_iters must be >= 0; got {n_iter}, {nnls_iters}")
        if mel.hop_length > mel.n_fft // 2:
            raise MelContractError(f"griffinlim: hop_length {mel.hop_length} > n_fft / 2 ({mel.n_fft // 2}) "
                                   "cannot be inverted by overlap-add with a Hann window")
        self.n_iter, self.momentum, self.nnls_iters = int(n_iter), float(momentum), int(nnls_iters)
        self.init, self.seed = init, int(seed)

    def config(self) -> dict:
        return {"n_iter": self.n_iter, "momentum": self.momentum, "nnls_iters": self.nnls_iters,
                "init": self.init, "seed": self.seed}

    def linear_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """`(B, n_freqs, frames)` magnitude estimated from normalised log-mel `(B, n_mels, frames)`."""
        log_mel = self.mel.denormalize(mel.float())
        return mel_to_linear(log_mel.exp(), self.mel, self.nnls_iters)

    @torch.no_grad()
    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        m = self.mel
        frames = mel.shape[-1]
        if m.center and m.pad_mode == "reflect" and frames * m.hop_length <= m.n_fft // 2:
            raise MelContractError(f"griffinlim: a mel of {frames} frame(s) is too short to invert with reflect "
                                   f"padding; need frames * hop > n_fft / 2 ({m.n_fft // 2})")
        S = self.linear_magnitude(mel)
        wav = griffin_lim(S, m.n_fft, m.hop_length, m.window_length, n_iter=self.n_iter, momentum=self.momentum,
                          length=frames * m.hop_length, center=m.center, pad_mode=m.pad_mode, init=self.init,
                          generator=torch.Generator().manual_seed(self.seed))
        return wav.unsqueeze(1)
