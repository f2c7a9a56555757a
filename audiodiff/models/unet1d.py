"""Waveform denoiser: a patched 1-D residual U-Net (ADM/EDM blocks; patching as in Hoogeboom et al. 2023).

Why it is shaped this way (the GPU target is bf16 training on 16 x 65,536-sample clips):

- Patching: the first op folds `patch` consecutive samples into channels, (B, C, T) -> (B, C*patch, T/patch).
  A waveform U-Net such as audio-diffusion-pytorch's UNetV0 spends most of its time and memory in
  its first levels (8-64 channels at 65,536-4,096 steps): there the convolutions are too thin for the
  tensor cores and the normalisation / activation passes are bound by memory bandwidth, and every
  activation kept for backward is huge. Folding 16 samples into channels replaces those levels by
  one 128-channel level at 4,096 steps: the same receptive field and the same bottleneck length, a
  fraction of the bytes moved, and matrix shapes that fill the tensor cores.
- Few high-resolution channels, more low-resolution ones: width (and the parameters) sit where the
  sequence is short.
- Attention only at the low-resolution levels (<= 256 steps at the GPU target), through SDPA (flash).
- Channel counts are multiples of 64 in the presets (tensor-core tiles, head_dim 64).
- No Python-side loop over time; the only loops are over levels and blocks.

Depth and size are kept comparable to UNetV0 (see configs/model/unet1d_large.yaml and benchmarks/README.md).

The same net also denoises a mel spectrogram with its bands as channels (`mel_bands = n_mels`): x (B, C, n_mels,
frames) is folded to (B, C * n_mels, frames), a 1-D U-Net over frames. On a CPU this is the fastest mel
denoiser at a given size: a 5 M-parameter `unet1d_mel_small` runs about 3x the training steps per minute of the
5 M `unet2d_small` on 64 x 64 mels, because the 2-D net convolves every (band, frame) position while the 1-D
net mixes all bands in one matrix product per frame (benchmarks/README.md, "levers"). What it gives up is
translation equivariance along the mel axis, which the measured quality per step did not need.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConditionEmbedding, LocalEncoder
from .body import UNetBody, UNetShell


class UNet1D(UNetShell):
    """Denoiser network for waveforms (B, C, T): patching + residual U-Net with attention and conditioning.

    Call: `net(x, c_noise, labels=None, pitch=None, vector=None, local=None, drop=None) -> (B, C, T)`.

    Args:
        in_channels: audio channels C of x (1 mono, 2 stereo).
        out_channels: output channels (default in_channels).
        patch: samples folded into channels before the first convolution (the main speed lever).
        channels: channels per level.
        factors: downsampling factor entering each level (1 = none), same length as channels.
        blocks: residual blocks per level.
        attention: per level, whether each block is followed by self-attention.
        head_dim: attention head width.
        emb_dim: condition embedding width (default 4 * channels[0]).
        num_classes: class labels for `labels` (0 = no labels); a learned null label serves CFG.
        pitch: take a MIDI pitch `pitch` (B,) float.
        vector_dim: width of a continuous condition `vector` (B, vector_dim) (0 = none).
        local_channels: channels of a frame-rate local condition `local` (B, local_channels, frames),
            e.g. a mel for a diffusion vocoder (0 = none); it is interpolated to the waveform rate inside.
        local_dim: width of the local features (default channels[0]).
        dropout: dropout in residual blocks.
        kernel_size: convolution kernel size (odd).
        checkpointing: recompute blocks during backward to save memory.
        mel_bands: 0 for a waveform x (B, C, T); n_mels for a mel x (B, C, n_mels, frames), whose bands become
            channels of a 1-D net over frames (the module docstring says why).
        top_norm: normalisation of the first level and the output head: "group" (GroupNorm, the default, so that
            configs stored before this option rebuild the same net) or "position" (LayerNorm over channels at
            each position; the presets use it). With patch > 1 use "position": GroupNorm's mean over time hides
            the frequencies k * sample_rate / patch from the net, and samples keep noise lines there
            (layers.PositionNorm explains).
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, patch: int = 1,
                 channels: Sequence[int] = (64, 128, 256), factors: Sequence[int] = (1, 4, 4),
                 blocks: Sequence[int] = (1, 1, 1), attention: Sequence[bool] = (False, False, True),
                 head_dim: int = 64, emb_dim: int | None = None, num_classes: int = 0, pitch: bool = False,
                 vector_dim: int = 0, local_channels: int = 0, local_dim: int | None = None,
                 dropout: float = 0.0, kernel_size: int = 3, checkpointing: bool = False, top_norm: str = "group",
                 mel_bands: int = 0):
        super().__init__()
        if isinstance(mel_bands, bool) or not isinstance(mel_bands, int) or mel_bands < 0:
            raise ValueError(f"mel_bands must be 0 (waveform) or the number of mel bands, got {mel_bands!r}")
        for name, val in (("factors", factors),):
            if any(isinstance(f, (list, tuple)) for f in val):
                raise ValueError(f"UNet1D {name} must be a list of ints, got {list(val)}")
        if int(patch) < 1:
            raise ValueError(f"patch must be a positive int, got {patch}")
        out_channels = in_channels if out_channels is None else out_channels
        emb_dim = 4 * channels[0] if emb_dim is None else emb_dim
        local_dim = (channels[0] if local_dim is None else local_dim) if local_channels else 0
        self.config = dict(name="unet1d", in_channels=in_channels, out_channels=out_channels, patch=int(patch),
                           channels=[int(c) for c in channels], factors=[int(f) for f in factors],
                           blocks=[int(b) for b in blocks], attention=[bool(a) for a in attention],
                           head_dim=head_dim, emb_dim=emb_dim, num_classes=num_classes, pitch=bool(pitch),
                           vector_dim=vector_dim, local_channels=local_channels, local_dim=local_dim or None,
                           dropout=dropout, kernel_size=kernel_size, checkpointing=bool(checkpointing),
                           top_norm=top_norm)
        if mel_bands:  # stored only when set, so that waveform configs stay as they were
            self.config["mel_bands"] = mel_bands
        self.mel_bands = mel_bands
        fold = max(mel_bands, 1)
        self.in_channels, self.out_channels, self.patch = in_channels, out_channels, int(patch)
        self.local_channels = local_channels
        self.cond = ConditionEmbedding(emb_dim, num_classes=num_classes, pitch=pitch, vector_dim=vector_dim)
        self.local_enc = LocalEncoder(local_channels, local_dim) if local_channels else None
        self.body = UNetBody(1, in_channels * fold * self.patch, out_channels * fold * self.patch, channels, factors, blocks,
                             attention, emb_dim, head_dim=head_dim, local_dim=local_dim, dropout=dropout,
                             kernel_size=kernel_size, checkpointing=checkpointing, top_norm=top_norm)
        self.multiple = self.patch * self.body.multiple()[0]

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None,
                pitch: torch.Tensor | None = None, vector: torch.Tensor | None = None,
                local: torch.Tensor | None = None, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the network output F(x) of the same shape as x.

        Args:
            x: (B, C, T) noisy waveform, any T >= 1 (padded to a multiple of `self.multiple`, cropped back);
                with `mel_bands`, (B, C, mel_bands, frames) noisy mel.
            c_noise: (B,) noise conditioning (log(sigma) / 4 from objectives.Denoiser).
            labels: (B,) long in [0, num_classes) or None (= null label).
            pitch: (B,) float MIDI note numbers or None.
            vector: (B, vector_dim) float or None.
            local: (B, local_channels, frames) frame-rate condition; required when local_channels > 0.
            drop: (B,) bool; True replaces labels / pitch / vector by learned nulls.
        Returns:
            (B, out_channels, T), or (B, out_channels, mel_bands, frames).
        """
        if self.mel_bands:
            if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] != self.mel_bands:
                raise ValueError(f"x must be (B, C={self.in_channels}, n_mels={self.mel_bands}, frames), got "
                                 f"{tuple(x.shape)}; a mel net is built for its mel_bands (model.mel_bands)")
            B, C, M, T = x.shape
            y = self._forward(x.reshape(B, C * M, T), c_noise, labels, pitch, vector, local, drop,
                              self.out_channels * M)
            return y.reshape(B, self.out_channels, M, T)
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be (B, C={self.in_channels}, T), got {tuple(x.shape)}")
        return self._forward(x, c_noise, labels, pitch, vector, local, drop, self.out_channels)

    def _forward(self, x, c_noise, labels, pitch, vector, local, drop, out_channels: int) -> torch.Tensor:
        """The patched U-Net on (B, C', T) with C' = in_channels (x mel_bands); returns (B, out_channels', T)."""
        B, C, T = x.shape
        emb, feat = self.conditions(x, c_noise, labels, pitch, vector, local, drop)
        m, p = self.multiple, self.patch
        Tp = -(-T // m) * m
        h = F.pad(x, (0, Tp - T))
        h = h.reshape(B, C, Tp // p, p).transpose(2, 3).reshape(B, C * p, Tp // p)   # patch: fold p samples
        h = self.body(h, emb, local=feat, valid=-(-T // p))
        h = h.reshape(B, out_channels, p, Tp // p).transpose(2, 3).reshape(B, out_channels, Tp)
        return h[..., :T]

