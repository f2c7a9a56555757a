"""The U-Net body shared by UNet1D and UNet2D: the resolution pyramid (:class:`UNetBody`) and what both nets
do around it (:class:`UNetShell`: condition embedding and checks, the checkpointing switch)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (NORMS, Downsample, ResBlock, SelfAttention, Upsample, _tuple, batch_noise, checkpoint_call,
                     conv_nd, make_norm, zero_)

__all__ = ["UNetBody", "UNetShell"]


class UNetBody(nn.Module):
    """The resolution pyramid of a residual U-Net (Ronneberger et al. 2015; ADM, Dhariwal & Nichol 2021).

    Level i first resamples by factors[i] (to channels[i]), then runs blocks[i] residual blocks, each
    followed by self-attention where attention[i]; every block output is a skip. A middle block pair
    with attention sits at the bottom. The decoder mirrors it: blocks[i] blocks each eating one skip
    (concatenated), then a transposed resampling back to level i-1. Local (frame-rate) features are
    added at the start of every encoder and decoder level after linear interpolation along the last
    (time) axis to that level's valid length, then zero-padded to the level's padded length.

    Args:
        dims: 1 or 2.
        in_ch, out_ch: channels of the (patched) input and output.
        channels, factors, blocks, attention: per-level lists of equal length.
        emb_dim: condition embedding width.
        head_dim: attention head width.
        local_dim: width of the local features (0: none).
        dropout, kernel_size: residual block settings.
        checkpointing: recompute blocks in backward.
        top_norm: normalisation of level 0 (its blocks and attention) and of the output head: "group"
            (GroupNorm, as in every other level) or "position" (PositionNorm: needed behind a patch, see there).
    """

    def __init__(self, dims: int, in_ch: int, out_ch: int, channels: Sequence[int], factors: Sequence,
                 blocks: Sequence[int], attention: Sequence[bool], emb_dim: int, head_dim: int = 64,
                 local_dim: int = 0, dropout: float = 0.0, kernel_size: int = 3, checkpointing: bool = False,
                 top_norm: str = "group"):
        super().__init__()
        n = len(channels)
        if not (n == len(factors) == len(blocks) == len(attention)) or n == 0:
            raise ValueError(f"channels, factors, blocks, attention must be non-empty lists of one length; got "
                             f"{len(channels)}, {len(factors)}, {len(blocks)}, {len(attention)}")
        if any(int(c) < 1 for c in channels) or any(int(b) < 1 for b in blocks):
            raise ValueError(f"channels and blocks must be positive, got {list(channels)} and {list(blocks)}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if top_norm not in NORMS:
            raise ValueError(f"unknown top_norm {top_norm!r}; allowed: {list(NORMS)}")
        self.dims, self.checkpointing = dims, checkpointing
        self.factors = [_tuple(f, dims, f"factors[{i}]") for i, f in enumerate(factors)]
        rb = dict(emb_dim=emb_dim, dropout=dropout, kernel_size=kernel_size)
        self.stem = conv_nd(dims, in_ch, channels[0], kernel_size, padding=kernel_size // 2)
        self.down_sample, self.down_blocks, self.down_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.up_sample, self.up_blocks, self.up_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.local_down, self.local_up = nn.ModuleList(), nn.ModuleList()
        prev = channels[0]
        for i, (ch, f, nb, att) in enumerate(zip(channels, self.factors, blocks, attention)):
            resample = any(a > 1 for a in f)
            rb["norm"] = top_norm if i == 0 else "group"
            self.down_sample.append(Downsample(dims, prev, ch, f) if resample or prev != ch else nn.Identity())
            self.up_sample.append(Upsample(dims, ch, prev, f) if resample or prev != ch else nn.Identity())
            self.down_blocks.append(nn.ModuleList(ResBlock(dims, ch, ch, **rb) for _ in range(nb)))
            self.up_blocks.append(nn.ModuleList(ResBlock(dims, 2 * ch, ch, **rb) for _ in range(nb)))
            mk_attn = (lambda: SelfAttention(ch, head_dim, norm=rb["norm"])) if att else nn.Identity
            self.down_attn.append(nn.ModuleList(mk_attn() for _ in range(nb)))
            self.up_attn.append(nn.ModuleList(mk_attn() for _ in range(nb)))
            if local_dim:
                self.local_down.append(nn.Conv1d(local_dim, ch, 1))
                self.local_up.append(nn.Conv1d(local_dim, ch, 1))
            prev = ch
        c = channels[-1]
        rb["norm"] = top_norm if n == 1 else "group"
        self.mid1 = ResBlock(dims, c, c, **rb)
        self.mid_attn = SelfAttention(c, head_dim, norm=rb["norm"])
        self.mid2 = ResBlock(dims, c, c, **rb)
        self.out_norm = make_norm(top_norm, channels[0])
        self.out_conv = zero_(conv_nd(dims, channels[0], out_ch, kernel_size, padding=kernel_size // 2))

    def multiple(self) -> tuple[int, ...]:
        """Per-axis product of the factors: input sizes must be multiples of it."""
        return tuple(math.prod(f[d] for f in self.factors) for d in range(self.dims))

    def _local(self, proj: nn.Module, feat: torch.Tensor, valid: int, size: int) -> torch.Tensor:
        # Project at frame rate first (1x1 conv commutes with linear interpolation), then upsample.
        y = F.interpolate(proj(feat), size=valid, mode="linear", align_corners=False)
        y = F.pad(y, (0, size - valid))
        return y if self.dims == 1 else y.unsqueeze(2)          # broadcast over the frequency axis

    def forward(self, x: torch.Tensor, emb: torch.Tensor, local: torch.Tensor | None = None,
                valid: int | None = None) -> torch.Tensor:
        """Run the U-Net.

        Args:
            x: (B, in_ch, *spatial) with spatial sizes multiples of `multiple()`.
            emb: (B, emb_dim) condition embedding.
            local: (B, local_dim, frames) local features or None.
            valid: number of valid (unpadded) positions on the last axis of x (for local alignment).
        """
        ck = self.checkpointing
        h = self.stem(x)
        valids, skips = [], []
        v = valid if valid is not None else x.shape[-1]
        for i in range(len(self.down_blocks)):
            h = self.down_sample[i](h)
            v = -(-v // self.factors[i][-1])
            valids.append(v)
            if local is not None:
                h = h + self._local(self.local_down[i], local, v, h.shape[-1]).to(h.dtype)
            for blk, att in zip(self.down_blocks[i], self.down_attn[i]):
                h = checkpoint_call(ck, blk, h, emb)
                if not isinstance(att, nn.Identity):
                    h = checkpoint_call(ck, att, h)
                skips.append(h)
        h = checkpoint_call(ck, self.mid1, h, emb)
        h = checkpoint_call(ck, self.mid_attn, h)
        h = checkpoint_call(ck, self.mid2, h, emb)
        for i in reversed(range(len(self.up_blocks))):
            if local is not None:
                h = h + self._local(self.local_up[i], local, valids[i], h.shape[-1]).to(h.dtype)
            for blk, att in zip(self.up_blocks[i], self.up_attn[i]):
                h = checkpoint_call(ck, blk, torch.cat([h, skips.pop().to(h.dtype)], dim=1), emb)
                if not isinstance(att, nn.Identity):
                    h = checkpoint_call(ck, att, h)
            h = self.up_sample[i](h)
        return self.out_conv(F.silu(self.out_norm(h)))


class UNetShell(nn.Module):
    """What UNet1D and UNet2D share around their `UNetBody` (`self.body`), `self.config`, condition embedding
    (`self.cond`) and optional local encoder (`self.local_enc`): the checkpointing switch and condition checks."""

    def conditions(self, x, c_noise, labels, pitch, vector, local, drop):
        """Return `(emb (B, emb_dim), local features or None)`; a missing or misshapen `local` is an error."""
        B = x.shape[0]
        emb = self.cond(batch_noise(c_noise, B, x.device), labels=labels, pitch=pitch, vector=vector, drop=drop)
        if self.local_enc is None:
            if local is not None:
                raise ValueError("local given but this net was built with local_channels=0")
            return emb, None
        if local is None:
            raise ValueError(f"this net was built with local_channels={self.local_channels}: pass local "
                             f"(B, {self.local_channels}, frames)")
        if local.ndim != 3 or local.shape[:2] != (B, self.local_channels) or local.shape[2] < 1:
            raise ValueError(f"local must be (B, local_channels, frames)=({B}, {self.local_channels}, frames>=1), "
                             f"got {tuple(local.shape)}")
        return emb, self.local_enc(local.to(x.dtype))

    @property
    def checkpointing(self) -> bool:
        return self.body.checkpointing

    @checkpointing.setter
    def checkpointing(self, on: bool):
        self.body.checkpointing = bool(on)
        self.config["checkpointing"] = bool(on)
