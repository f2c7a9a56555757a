"""Shared building blocks of the audiodiff U-Nets (ADM/EDM-style residual U-Net, Dhariwal & Nichol 2021;
Karras et al. 2022), written once for 1-D (waveform) and 2-D (mel) nets; `body.py` assembles them into the U-Net.

Speed and bf16 choices, made here once for every net (see benchmarks/README.md for the numbers):

- Normalisation runs in float32 (`GroupNorm32`): under bf16 autocast the group statistics of
  large activations lose digits in bf16; the convolutions around it stay in bf16 on the tensor cores.
- Attention is `torch.nn.functional.scaled_dot_product_attention` on channel-last tokens (so the
  flash / memory-efficient kernels are chosen on GPU), with RMS-normalised queries and keys
  (QK-norm, Dehghani et al. 2023) so bf16 logits cannot blow up.
- Down- and up-sampling are single strided (transposed) convolutions whose kernel is the factor
  plus a margin on each side: exact lengths for any factor, no Python loop over time.
- The top (patch-rate) level and the output head can normalise per position (`top_norm="position"`) instead of
  with GroupNorm; see `PositionNorm` for why a patched net needs it.
- Every residual branch ends in a zero-initialised layer (EDM's `init_zero`), so a fresh net is the
  identity on its residual stream and training starts stable at any depth.
- `checkpoint_call` recomputes a block in the backward pass when asked (activation checkpointing).
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


# --------------------------------------------------------------------------------------------- helpers
def norm_groups(channels: int, max_groups: int = 32) -> int:
    """Return the largest group count <= max_groups dividing `channels` (GroupNorm works for any width)."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


_CONVS = {(1, False): nn.Conv1d, (2, False): nn.Conv2d, (1, True): nn.ConvTranspose1d, (2, True): nn.ConvTranspose2d}


def _conv(dims: int, transpose: bool, *args, **kwargs) -> nn.Module:
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims}")
    return _CONVS[dims, transpose](*args, **kwargs)


def conv_nd(dims: int, *args, **kwargs) -> nn.Module:
    """Return nn.Conv1d or nn.Conv2d for dims 1 or 2."""
    return _conv(dims, False, *args, **kwargs)


def conv_transpose_nd(dims: int, *args, **kwargs) -> nn.Module:
    """Return nn.ConvTranspose1d or nn.ConvTranspose2d for dims 1 or 2."""
    return _conv(dims, True, *args, **kwargs)


def zero_(module: nn.Module) -> nn.Module:
    """Zero a module's parameters in place and return it (EDM's init_zero for residual outputs)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def no_autocast(device: torch.device):
    """Context that turns autocast off on `device` (a no-op on the meta device, which has no autocast)."""
    if device.type == "meta":          # a plain string test: torch.compile traces it without a graph break
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


def checkpoint_call(enabled: bool, fn, *args):
    """Call fn(*args), recomputing it in backward (Chen et al. 2016) when enabled and grads are on."""
    if enabled and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def batch_noise(c_noise, B: int, device) -> torch.Tensor:
    """Return c_noise as a (B,) float tensor; a Python float or 0-dim tensor is broadcast to the batch."""
    if not torch.is_tensor(c_noise):
        c_noise = torch.tensor(float(c_noise), device=device)
    if c_noise.ndim == 0:
        return c_noise.expand(B)
    if c_noise.shape != (B,):
        raise ValueError(f"c_noise must have shape (B,)=({B},) or be a scalar, got {tuple(c_noise.shape)}")
    return c_noise


def sinusoidal_features(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Fourier features [cos(2 pi f x), sin(2 pi f x)] (Tancik et al. 2020; Vaswani et al. 2017).

    Args:
        x: (B,) float values.
        freqs: (F,) frequencies in cycles per unit of x.
    Returns:
        (B, 2F) float32 features.
    """
    ang = (2 * math.pi) * x.float()[:, None] * freqs.float()[None, :]
    return torch.cat([ang.cos(), ang.sin()], dim=1)


def log_frequencies(n: int, low: float, high: float) -> torch.Tensor:
    """Return n frequencies spaced geometrically from low to high (cycles per unit)."""
    return torch.exp(torch.linspace(math.log(low), math.log(high), n))


# ----------------------------------------------------------------------------------------- layers
class GroupNorm32(nn.GroupNorm):
    """Group normalisation (Wu & He 2018) computed in float32 and returned in the input dtype (bf16-safe)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with no_autocast(x.device):
            y = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        return y.to(x.dtype)


class PositionNorm(nn.Module):
    """Layer normalisation over the channels at each position (Ba et al. 2016; EDM2's pixel norm with an affine),
    computed in float32 and returned in the input dtype. Parameters `weight` and `bias` as GroupNorm's.

    Why a patched net needs it at its patch-rate level: GroupNorm subtracts each group's mean over time, so
    whatever is constant over the clip never reaches the convolutions after it. Behind a patch of p samples a
    constant in channel c * p + j is a pattern repeated in every patch, i.e. the spectral lines at exactly
    k * sample_rate / p. Such a net cannot see the noise there nor write an estimate there; the EDM denoiser
    `c_skip * x + c_out * F` then keeps about c_skip of the noise at those frequencies, and samples carry lines
    10-30 dB above their neighbours (the under-trained tones demo did). Statistics per position make a
    clip-constant component just another slowly varying one, treated like the frequencies next to it.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The fused layer_norm kernel on a channel-last view: about 2x GroupNorm's time, several times faster than
        # composing var_mean and elementwise ops over the channel axis.
        with no_autocast(x.device):
            y = F.layer_norm(x.float().movedim(1, -1), self.weight.shape, self.weight.float(), self.bias.float(),
                             self.eps).movedim(-1, 1)
        return y.to(x.dtype)


NORMS = ("group", "position")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Return the normalisation `kind` ("group": GroupNorm32 with up to 32 groups; "position": PositionNorm)."""
    if kind == "group":
        return GroupNorm32(norm_groups(channels), channels)
    if kind == "position":
        return PositionNorm(channels)
    raise ValueError(f"unknown norm {kind!r}; allowed: {list(NORMS)}")


class ConditionEmbedding(nn.Module):
    """Embed the noise level and the global conditions into one vector per item (ADM-style summed embedding).

    c_noise -> Fourier features -> MLP; labels -> table with one extra learned null row; pitch (MIDI,
    continuous) -> Fourier features -> MLP; vector -> MLP. Labels / pitch / vector are replaced by
    learned null embeddings where `drop` is True, or everywhere when passed as None (classifier-free
    guidance, Ho & Salimans 2022). The sum goes through SiLU once, ready for each block's projection.

    Args:
        emb_dim: width of the embedding.
        num_classes: number of class labels (0: no label input).
        pitch: whether the net takes a MIDI pitch.
        vector_dim: width of a continuous condition vector (0: none).
        fourier_dim: number of Fourier features for c_noise and pitch.
    """

    # c_noise = log(sigma) / 4 spans about [-2, 1.5]: periods from ~10 units down to ~0.01.
    NOISE_FREQS = (0.1, 100.0)
    # MIDI note numbers span [0, 128): periods from ~256 semitones down to 2 semitones.
    PITCH_FREQS = (1.0 / 256.0, 0.5)

    def __init__(self, emb_dim: int, num_classes: int = 0, pitch: bool = False, vector_dim: int = 0,
                 fourier_dim: int = 256):
        super().__init__()
        if fourier_dim % 2:
            raise ValueError(f"fourier_dim must be even, got {fourier_dim}")
        self.num_classes, self.use_pitch, self.vector_dim = num_classes, pitch, vector_dim
        self.register_buffer("noise_freqs", log_frequencies(fourier_dim // 2, *self.NOISE_FREQS), persistent=False)
        self.noise_mlp = nn.Sequential(nn.Linear(fourier_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if num_classes:
            self.label_emb = nn.Embedding(num_classes + 1, emb_dim)  # row num_classes is the null label
            nn.init.normal_(self.label_emb.weight, std=1.0)
        if pitch:
            self.register_buffer("pitch_freqs", log_frequencies(fourier_dim // 2, *self.PITCH_FREQS),
                                 persistent=False)
            self.pitch_mlp = nn.Sequential(nn.Linear(fourier_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            self.pitch_null = nn.Parameter(torch.randn(emb_dim))
        if vector_dim:
            self.vector_mlp = nn.Sequential(nn.Linear(vector_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            self.vector_null = nn.Parameter(torch.randn(emb_dim))

    def forward(self, c_noise: torch.Tensor, labels=None, pitch=None, vector=None, drop=None) -> torch.Tensor:
        """Return the (B, emb_dim) embedding.

        Args:
            c_noise: (B,) noise conditioning (a 0-dim tensor or float is broadcast to the batch).
            labels: (B,) long in [0, num_classes) or None.
            pitch: (B,) float MIDI note numbers or None.
            vector: (B, vector_dim) float or None.
            drop: (B,) bool or None; True replaces labels / pitch / vector by their null embeddings.
        """
        B = c_noise.shape[0]
        dev = c_noise.device
        if drop is None:
            drop = torch.zeros(B, dtype=torch.bool, device=dev)
        elif drop.shape != (B,) or drop.dtype != torch.bool:
            raise ValueError(f"drop must be a (B,)=({B},) bool tensor, got shape {tuple(drop.shape)} {drop.dtype}")
        keep = ~drop[:, None]
        emb = self.noise_mlp(sinusoidal_features(c_noise, self.noise_freqs))

        if labels is not None and not self.num_classes:
            raise ValueError("labels given but this net was built with num_classes=0; set num_classes to use labels")
        if self.num_classes:
            if labels is None:
                idx = torch.full((B,), self.num_classes, dtype=torch.long, device=dev)
            else:
                if labels.shape != (B,) or labels.dtype not in (torch.int32, torch.int64):
                    raise ValueError(f"labels must be a (B,)=({B},) integer tensor, got {tuple(labels.shape)} "
                                     f"{labels.dtype}")
                # The range check reads the tensor on the host: on CUDA that is a device sync every forward, so it
                # runs on CPU tensors only; on the GPU the Vocabulary (data) and Pipeline (generation) have already
                # checked every label against the allowed values before it reaches the network.
                if not torch.compiler.is_compiling() and labels.device.type == "cpu" and labels.numel() and (
                        int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                    raise ValueError(f"labels must lie in [0, {self.num_classes}), got min {int(labels.min())} "
                                     f"max {int(labels.max())}")
                idx = torch.where(keep[:, 0], labels.long(), torch.full_like(labels.long(), self.num_classes))
            emb = emb + self.label_emb(idx)

        if pitch is not None and not self.use_pitch:
            raise ValueError("pitch given but this net was built with pitch=False; set pitch=True to use it")
        if self.use_pitch:
            null = self.pitch_null.to(emb.dtype)[None].expand(B, -1)
            if pitch is None:
                emb = emb + null
            else:
                if pitch.shape != (B,):
                    raise ValueError(f"pitch must be a (B,)=({B},) float tensor of MIDI notes, "
                                     f"got {tuple(pitch.shape)}")
                p = self.pitch_mlp(sinusoidal_features(pitch, self.pitch_freqs))
                emb = emb + torch.where(keep, p, null.to(p.dtype))

        if vector is not None and not self.vector_dim:
            raise ValueError("vector given but this net was built with vector_dim=0; set vector_dim to use it")
        if self.vector_dim:
            null = self.vector_null.to(emb.dtype)[None].expand(B, -1)
            if vector is None:
                emb = emb + null
            else:
                if vector.shape != (B, self.vector_dim):
                    raise ValueError(f"vector must have shape (B, vector_dim)=({B}, {self.vector_dim}), "
                                     f"got {tuple(vector.shape)}")
                v = self.vector_mlp(vector.float())
                emb = emb + torch.where(keep, v, null.to(v.dtype))
        return F.silu(emb)


class ResBlock(nn.Module):
    """Pre-activation residual block with adaptive group norm (FiLM from the embedding), as in ADM/EDM.

    x -> GN -> SiLU -> conv -> GN * (1 + scale) + shift -> SiLU -> dropout -> conv(zero init) -> + skip(x)

    Args:
        dims: 1 (tensors (B, C, T)) or 2 (tensors (B, C, H, W)).
        in_ch, out_ch: channels in and out.
        emb_dim: width of the condition embedding (B, emb_dim).
        dropout: dropout probability before the second convolution.
        kernel_size: odd kernel size of both convolutions.
        norm: "group" (GroupNorm32) or "position" (PositionNorm) for both normalisations.
    """

    def __init__(self, dims: int, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0, kernel_size: int = 3,
                 norm: str = "group"):
        super().__init__()
        pad = kernel_size // 2
        self.norm1 = make_norm(norm, in_ch)
        self.conv1 = conv_nd(dims, in_ch, out_ch, kernel_size, padding=pad)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = make_norm(norm, out_ch)
        self.drop = nn.Dropout(dropout)
        self.conv2 = zero_(conv_nd(dims, out_ch, out_ch, kernel_size, padding=pad))
        self.skip = conv_nd(dims, in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb).unflatten(1, (2, -1)).unbind(1)
        shape = scale.shape + (1,) * (h.ndim - 2)
        h = self.norm2(h)
        h = torch.addcmul(shift.view(shape).to(h.dtype), h, (1 + scale.view(shape)).to(h.dtype))
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions (Vaswani et al. 2017) with QK-norm, via torch SDPA.

    Args:
        channels: C of (B, C, *spatial); heads = max(1, C // head_dim).
        head_dim: width per head (64 lets flash attention run).
        norm: "group" or "position", the normalisation before the projections.
    """

    def __init__(self, channels: int, head_dim: int = 64, norm: str = "group"):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        if channels % self.heads:
            raise ValueError(f"attention channels {channels} must be a multiple of head_dim {head_dim}")
        self.head_dim = channels // self.heads
        self.norm = make_norm(norm, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.proj = zero_(nn.Linear(channels, channels))

    @staticmethod
    def _qk_norm(norm: nn.RMSNorm, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        with no_autocast(t.device):
            return F.rms_norm(t.float(), norm.normalized_shape, norm.weight.float(), norm.eps).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(x).flatten(2).transpose(1, 2)                       # (B, N, C)
        q, k, v = self.qkv(tokens).unflatten(2, (3, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        q, k = self._qk_norm(self.q_norm, q, v.dtype), self._qk_norm(self.k_norm, k, v.dtype)  # (B, heads, N, d)
        out = F.scaled_dot_product_attention(q, k, v)
        out = self.proj(out.transpose(1, 2).flatten(2))                        # (B, N, C)
        return x + out.transpose(1, 2).reshape(x.shape).to(x.dtype)


def _tuple(v, dims: int, what: str) -> tuple[int, ...]:
    t = tuple(int(a) for a in v) if isinstance(v, (list, tuple)) else (int(v),) * dims
    if len(t) != dims or any(a < 1 for a in t):
        raise ValueError(f"{what} must be a positive int or a list of {dims} positive ints, got {v!r}")
    return t


class _Resample(nn.Module):
    """A strided convolution (`make`: plain or transposed) whose kernel is the factor plus `factor // 2` on each
    side: the length is divided (multiplied) by the factor exactly."""

    make = staticmethod(conv_nd)

    def __init__(self, dims: int, in_ch: int, out_ch: int, factor):
        super().__init__()
        f = _tuple(factor, dims, "factor")
        self.conv = self.make(dims, in_ch, out_ch, tuple(a + 2 * (a // 2) for a in f), stride=f,
                              padding=tuple(a // 2 for a in f))

    def forward(self, x):
        return self.conv(x)


class Downsample(_Resample):
    """Downsample by a strided convolution (kernel = factor + 2 * (factor // 2)): length / factor exactly.

    Args:
        dims: 1 or 2; in_ch, out_ch: channels; factor: int or per-axis tuple.
    """

    make = staticmethod(conv_nd)


class Upsample(_Resample):
    """Upsample by a transposed strided convolution (Downsample's geometry inverted): length * factor exactly."""

    make = staticmethod(conv_transpose_nd)


class LocalEncoder(nn.Module):
    """Two 3-tap convolutions over a frame-rate local condition (e.g. a mel for a diffusion vocoder, Kong et al. 2021).

    Args:
        in_ch: local_channels of (B, local_channels, frames); dim: output width.
    """

    def __init__(self, in_ch: int, dim: int):
        super().__init__()
        self.conv1 = nn.Conv1d(in_ch, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.silu(self.conv1(x)))
