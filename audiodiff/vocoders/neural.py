"""Neural vocoder in the style of Vocos (Siuzdenko et al. 2023): ConvNeXt backbone + inverse-STFT head.

The generator keeps the mel's frame rate throughout (no transposed-convolution upsampling): a stack of
ConvNeXt blocks (Liu et al. 2022) maps each mel frame to a complex STFT frame, whose magnitude is
`exp(log_mag)` clamped and whose phase is given as `(cos p, sin p)`; `torch.istft` turns it into audio.
Adversarial training uses HiFi-GAN's multi-period discriminator (Kong et al. 2020) and a multi-resolution
spectrogram discriminator (Jang et al. 2021, UnivNet), both defined here and used by the vocoder task
(:mod:`audiodiff.training.vocoder`).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..mel import MelSpec
from .base import Vocoder

MAX_MAGNITUDE = 100.0  # the head's exp(log magnitude) is clamped here (Vocos clips at 1e2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block (Liu et al. 2022) on `(B, C, frames)`: depthwise conv, LayerNorm, MLP, layer scale, residual.

    Args:
        dim: channels C. intermediate_dim: MLP width. kernel_size: depthwise kernel (odd).
        layer_scale: initial per-channel residual scale (Touvron et al. 2021, CaiT).
    """

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int = 7, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, frames, C)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class ISTFTHead(nn.Module):
    """Project `(B, frames, dim)` features to a complex spectrogram and invert it with `torch.istft`.

    The linear layer predicts `n_fft // 2 + 1` log magnitudes and as many phases; the magnitude is
    `exp(.)` clamped to MAX_MAGNITUDE and the spectrum is `mag * (cos p + i sin p)`.
    """

    def __init__(self, dim: int, n_fft: int, hop_length: int, win_length: int | None = None):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.win_length = win_length or n_fft
        if hop_length > self.win_length // 2:
            raise ValueError(f"ISTFTHead: hop_length {hop_length} must be <= win_length / 2 ({self.win_length // 2})")
        self.out = nn.Linear(dim, n_fft + 2)
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True), persistent=False)

    def spectrum(self, h: torch.Tensor) -> torch.Tensor:
        """Complex spectrogram `(B, n_fft // 2 + 1, frames)` (float32) from features `(B, frames, dim)`."""
        x = self.out(h).float().transpose(1, 2)
        log_mag, phase = x.chunk(2, dim=1)
        mag = torch.exp(log_mag.clamp(max=math.log(MAX_MAGNITUDE)))
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        S = self.spectrum(h)
        frames = S.shape[-1]
        return torch.istft(S, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                           window=self.window, center=True, length=frames * self.hop_length)


class NeuralVocoder(Vocoder):
    """Vocos-style GAN vocoder: normalised log-mel -> ConvNeXt backbone -> inverse-STFT head -> waveform.

    Args:
        mel: the mel contract (its hop is the head's hop: one STFT frame per mel frame).
        dim: backbone channels. intermediate_dim: ConvNeXt MLP width (default 3 * dim).
        num_layers: ConvNeXt blocks. kernel_size: depthwise kernel.
        n_fft: the head's FFT size (default the mel's n_fft); win_length defaults to n_fft.
        layer_scale: initial ConvNeXt layer scale (default 1 / num_layers, as Vocos).
        autocast: run the backbone in bfloat16 on CUDA at inference (the head and iSTFT stay float32).
    """

    name = "neural"

    def __init__(self, mel: MelSpec, dim: int = 384, intermediate_dim: int | None = None, num_layers: int = 8,
                 kernel_size: int = 7, n_fft: int | None = None, win_length: int | None = None,
                 layer_scale: float | None = None, autocast: bool = True):
        super().__init__(mel)
        if dim < 1 or num_layers < 0 or kernel_size % 2 == 0:
            raise ValueError(f"neural vocoder: need dim >= 1, num_layers >= 0, odd kernel_size; "
                             f"got {dim}, {num_layers}, {kernel_size}")
        self.dim, self.num_layers, self.kernel_size = int(dim), int(num_layers), int(kernel_size)
        self.intermediate_dim = int(intermediate_dim or 3 * dim)
        self.n_fft = int(n_fft or mel.n_fft)
        self.win_length = int(win_length or self.n_fft)
        self.layer_scale = float(layer_scale if layer_scale is not None else 1.0 / max(num_layers, 1))
        self.autocast = bool(autocast)
        self.embed = nn.Conv1d(mel.n_mels, dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, self.intermediate_dim, kernel_size, self.layer_scale) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = ISTFTHead(dim, self.n_fft, mel.hop_length, self.win_length)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def config(self) -> dict:
        return {"dim": self.dim, "intermediate_dim": self.intermediate_dim, "num_layers": self.num_layers,
                "kernel_size": self.kernel_size, "n_fft": self.n_fft, "win_length": self.win_length,
                "layer_scale": self.layer_scale, "autocast": self.autocast}

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """Backbone features `(B, frames, dim)` of normalised log-mel `(B, n_mels, frames)`."""
        x = self.embed(mel)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x.transpose(1, 2))

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        ctx = nullcontext()
        if self.autocast and mel.is_cuda and not torch.is_grad_enabled():
            ctx = torch.autocast("cuda", dtype=torch.bfloat16)
        with ctx:
            h = self.features(mel.float())
        return self.head(h.float()).unsqueeze(1)


# ---------------------------------------------------------------------------- discriminators
class PeriodDiscriminator(nn.Module):
    """HiFi-GAN period discriminator (Kong et al. 2020): audio folded to `(B, 1, T / p, p)`, 2-D convs over time."""

    def __init__(self, period: int, channels: Sequence[int] = (32, 128, 512, 1024), kernel_size: int = 5,
                 stride: int = 3):
        super().__init__()
        self.period = period
        chans = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(chans[i], chans[i + 1], (kernel_size, 1), (stride, 1), (kernel_size // 2, 0)))
            for i in range(len(channels)))
        self.convs.append(weight_norm(nn.Conv2d(chans[-1], chans[-1], (kernel_size, 1), 1, (kernel_size // 2, 0))))
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, (1, 0)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        B, C, T = wav.shape
        if T % self.period:
            wav = F.pad(wav, (0, self.period - T % self.period), mode="reflect")
        return _features(self.convs, self.post, wav.view(B, C, -1, self.period))


def _features(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run a discriminator's conv stack (leaky ReLU 0.1 after each conv, none after `post`).

    Returns `(logits flattened per item, every layer's output)`: the feature maps feed the feature-matching loss.
    """
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN's MPD: one :class:`PeriodDiscriminator` per (prime) period."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 128, 512, 1024)):
        super().__init__()
        self.discs = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, wav: torch.Tensor):
        return [d(wav) for d in self.discs]


class ResolutionDiscriminator(nn.Module):
    """UnivNet resolution discriminator: 2-D convs over one STFT magnitude `(B, 1, frames, freqs)`."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, channels: int = 32, num_layers: int = 4):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        layers = [weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4)))]
        layers += [weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)))
                   for _ in range(num_layers - 1)]
        layers.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(layers)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor):
        S = torch.stft(wav[:, 0].float(), self.n_fft, self.hop_length, self.win_length, self.window,
                       center=True, return_complex=True).abs()
        return _features(self.convs, self.post, S.transpose(1, 2).unsqueeze(1))


class MultiResolutionDiscriminator(nn.Module):
    """One :class:`ResolutionDiscriminator` per `(n_fft, hop, win)` resolution."""

    def __init__(self, resolutions: Sequence[Sequence[int]] = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512)),
                 channels: int = 32):
        super().__init__()
        self.discs = nn.ModuleList(ResolutionDiscriminator(*map(int, r), channels=channels) for r in resolutions)

    def forward(self, wav: torch.Tensor):
        return [d(wav) for d in self.discs]
