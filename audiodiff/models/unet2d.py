"""Mel-spectrogram denoiser: a patched 2-D residual U-Net (ADM/EDM blocks; patching as in Hoogeboom et al. 2023).

The usual image U-Net on a 256 x 256 mel (diffusers' UNet2DModel audio-diffusion config) spends about
60 % of its FLOPs and most of its activation memory in its first level (128 channels at full
256 x 256 resolution). Folding a 2 x 2 patch into channels first drops that level while keeping the
same bottleneck resolution (8 x 8 for a 256 x 256 input), the same channel widths below it and a
comparable parameter count; attention stays at 16 x 16 and 8 x 8 through SDPA (flash). Any number of
mel bins and frames is padded to the net's multiple and cropped back.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConditionEmbedding, LocalEncoder, _tuple
from .body import UNetBody, UNetShell


class UNet2D(UNetShell):
    """Denoiser network for mel spectrograms (B, C, n_mels, frames): patching + residual U-Net with conditioning.

    Call: `net(x, c_noise, labels=None, pitch=None, vector=None, local=None, drop=None) -> x.shape`.

    Args:
        in_channels: image channels C of x (1 for a mel).
        out_channels: output channels (default in_channels).
        patch: int or [mel, time] patch folded into channels first.
        channels: channels per level.
        factors: per level, an int or [mel, time] downsampling factor entering that level (1 = none).
        blocks: residual blocks per level.
        attention: per level, whether each block is followed by self-attention.
        head_dim: attention head width.
        emb_dim: condition embedding width (default 4 * channels[0]).
        num_classes: class labels (0 = none); a learned null label serves CFG.
        pitch: take a MIDI pitch (B,) float.
        vector_dim: width of a continuous condition vector (0 = none).
        local_channels: channels of a frame-rate condition (B, local_channels, frames'), interpolated along
            time to the spectrogram's frames and broadcast over mel bins (0 = none).
        local_dim: width of the local features (default channels[0]).
        dropout: dropout in residual blocks.
        kernel_size: convolution kernel size (odd).
        checkpointing: recompute blocks during backward to save memory.
        top_norm: normalisation of the first level and the output head: "group" (GroupNorm, the default, so that
            configs stored before this option rebuild the same net) or "position" (LayerNorm over channels at
            each position). With GroupNorm the mean over the mel x frame plane hides from the net any pattern
            repeated in every patch cell (stripes / a checkerboard at the patch period), the 2-D twin of the
            waveform net's lines at k * sample_rate / patch (layers.PositionNorm explains). The 2-D presets
            still use "group": the fix was measured on the waveform net only.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, patch=1,
                 channels: Sequence[int] = (64, 128, 256), factors: Sequence = (1, 2, 2),
                 blocks: Sequence[int] = (1, 1, 1), attention: Sequence[bool] = (False, False, True),
                 head_dim: int = 64, emb_dim: int | None = None, num_classes: int = 0, pitch: bool = False,
                 vector_dim: int = 0, local_channels: int = 0, local_dim: int | None = None,
                 dropout: float = 0.0, kernel_size: int = 3, checkpointing: bool = False, top_norm: str = "group"):
        super().__init__()
        self.patch = _tuple(patch, 2, "patch")
        out_channels = in_channels if out_channels is None else out_channels
        emb_dim = 4 * channels[0] if emb_dim is None else emb_dim
        local_dim = (channels[0] if local_dim is None else local_dim) if local_channels else 0
        self.config = dict(name="unet2d", in_channels=in_channels, out_channels=out_channels,
                           patch=list(self.patch) if self.patch[0] != self.patch[1] else self.patch[0],
                           channels=[int(c) for c in channels],
                           factors=[list(f) if isinstance(f, (list, tuple)) else int(f) for f in factors],
                           blocks=[int(b) for b in blocks], attention=[bool(a) for a in attention],
                           head_dim=head_dim, emb_dim=emb_dim, num_classes=num_classes, pitch=bool(pitch),
                           vector_dim=vector_dim, local_channels=local_channels, local_dim=local_dim or None,
                           dropout=dropout, kernel_size=kernel_size, checkpointing=bool(checkpointing),
                           top_norm=top_norm)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.local_channels = local_channels
        ph, pw = self.patch
        self.cond = ConditionEmbedding(emb_dim, num_classes=num_classes, pitch=pitch, vector_dim=vector_dim)
        self.local_enc = LocalEncoder(local_channels, local_dim) if local_channels else None
        self.body = UNetBody(2, in_channels * ph * pw, out_channels * ph * pw, channels, factors, blocks,
                             attention, emb_dim, head_dim=head_dim, local_dim=local_dim, dropout=dropout,
                             kernel_size=kernel_size, checkpointing=checkpointing, top_norm=top_norm)
        mh, mw = self.body.multiple()
        self.multiple = (ph * mh, pw * mw)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None,
                pitch: torch.Tensor | None = None, vector: torch.Tensor | None = None,
                local: torch.Tensor | None = None, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the network output F(x) of the same shape as x.

        Args:
            x: (B, C, n_mels, frames) noisy mel, any sizes (padded to `self.multiple`, cropped back).
            c_noise: (B,) noise conditioning (log(sigma) / 4 from objectives.Denoiser).
            labels: (B,) long in [0, num_classes) or None (= null label).
            pitch: (B,) float MIDI note numbers or None.
            vector: (B, vector_dim) float or None.
            local: (B, local_channels, frames') frame-rate condition; required when local_channels > 0.
            drop: (B,) bool; True replaces labels / pitch / vector by learned nulls.
        Returns:
            (B, out_channels, n_mels, frames).
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be (B, C={self.in_channels}, n_mels, frames), got {tuple(x.shape)}")
        B, C, H, W = x.shape
        emb, feat = self.conditions(x, c_noise, labels, pitch, vector, local, drop)
        (mh, mw), (ph, pw) = self.multiple, self.patch
        Hp, Wp = -(-H // mh) * mh, -(-W // mw) * mw
        h = F.pad(x, (0, Wp - W, 0, Hp - H))
        h = (h.reshape(B, C, Hp // ph, ph, Wp // pw, pw).permute(0, 1, 3, 5, 2, 4)
             .reshape(B, C * ph * pw, Hp // ph, Wp // pw))                       # patch: fold ph x pw cells
        h = self.body(h, emb, local=feat, valid=-(-W // pw))
        O = self.out_channels
        h = h.reshape(B, O, ph, pw, Hp // ph, Wp // pw).permute(0, 1, 4, 2, 5, 3).reshape(B, O, Hp, Wp)
        return h[..., :H, :W]
