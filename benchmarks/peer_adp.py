"""The audio-diffusion-pytorch peer for `time_to_quality.py`: UNetV0 + VDiffusion / VSampler at a matched size.

audio-diffusion-pytorch (Schneider et al. 2023, "Mousai") trains a 1-D U-Net (`UNetV0`, built with a-unet) with
v-diffusion on a uniform noise level in [0, 1] (angle sigma * pi / 2) and samples with `VSampler` (DDIM-style
steps on a linear sigma schedule). Class conditioning is how its users do it: a learned label embedding fed as
cross-attention context (`embedding_features`, `cross_attentions`), with the package's own classifier-free
guidance (`use_embedding_cfg`: a learned null embedding swapped in with `embedding_mask_proba` in training,
`embedding_scale` at sampling).

The package is a *benchmark* dependency, never a runtime one. Install it into `.peers/` (ignored by git):

    .venv/bin/python -m pip install --no-deps --target .peers -r benchmarks/requirements-peers.txt

(`--no-deps`: their declared `data-science-types` is type stubs only; what they import at run time, torch,
torchaudio, einops, tqdm and typing_extensions, comes with audiodiff). :func:`import_peer` puts `.peers` on
`sys.path` only when a benchmark asks for the peer.

Inputs: a mel model's `(B, 1, n_mels, frames)` is fed as `(B, n_mels, frames)` (mel bands as channels, the
usual way to train UNetV0 on spectrograms); a waveform `(B, 1, T)` as is. Time is zero-padded (mel: with the
normalised value of silence) to a multiple of the net's total downsampling and cropped back after sampling.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT / ".peers"
INSTALL = "python -m pip install --no-deps --target .peers -r benchmarks/requirements-peers.txt"

# UNetV0 as configured in the audio-diffusion-pytorch README (waveform, 9 levels); a shorter input keeps the
# first levels, and `width` scales every channel count to match our network's parameter count.
README_CHANNELS = (8, 32, 64, 128, 256, 512, 512, 1024, 1024)
README_FACTORS = (1, 4, 4, 4, 2, 2, 2, 2, 2)
README_ITEMS = (1, 2, 2, 2, 2, 2, 2, 4, 4)
README_ATTENTIONS = (0, 0, 0, 0, 0, 1, 1, 1, 1)
# mel bands as channels: 4 levels, attention on the two coarsest (frames / 4 and / 8)
MEL_CHANNELS = (64, 96, 128, 128)
MEL_FACTORS = (1, 2, 2, 2)
MEL_ITEMS = (2, 2, 2, 2)
MEL_ATTENTIONS = (0, 0, 1, 1)
MIN_BOTTLENECK = 16  # waveform: keep README levels while the coarsest level has at least this many steps


def peers_available() -> bool:
    """Whether `.peers/` holds audio_diffusion_pytorch and a_unet (no import is attempted)."""
    return (PEERS_DIR / "audio_diffusion_pytorch").is_dir() and (PEERS_DIR / "a_unet").is_dir()


def import_peer():
    """`audio_diffusion_pytorch` from `.peers/` (put on sys.path here, and only here)."""
    from audiodiff.errors import AudiodiffError

    if not peers_available():
        raise AudiodiffError(f"the peer is not installed: {PEERS_DIR} lacks audio_diffusion_pytorch / a_unet; "
                             f"run `{INSTALL}` from the repository root, or leave out --peer")
    if str(PEERS_DIR) not in sys.path:
        sys.path.insert(0, str(PEERS_DIR))
    import audio_diffusion_pytorch

    return audio_diffusion_pytorch


class Conditioner(nn.Module):
    """Learned embeddings of the conditions, one context token each: `(B, n_tokens, features)`.

    Args:
        features: embedding width (the UNetV0's `embedding_features`).
        num_classes: size of the class vocabulary (`labels` condition), or None.
        pitch_range: `(lo, hi)` MIDI range of the `pitch` condition (one embedding per integer pitch), or None.
    """

    def __init__(self, features: int, num_classes: int | None = None, pitch_range=None):
        super().__init__()
        self.labels = nn.Embedding(num_classes, features) if num_classes else None
        self.pitch_lo = int(pitch_range[0]) if pitch_range else 0
        self.pitch = nn.Embedding(int(pitch_range[1]) - self.pitch_lo + 1, features) if pitch_range else None

    @property
    def num_tokens(self) -> int:
        return int(self.labels is not None) + int(self.pitch is not None)

    def forward(self, cond: dict) -> torch.Tensor:
        tokens = []
        if self.labels is not None:
            tokens.append(self.labels(cond["labels"].long()))
        if self.pitch is not None:
            idx = (cond["pitch"].round().long() - self.pitch_lo).clamp(0, self.pitch.num_embeddings - 1)
            tokens.append(self.pitch(idx))
        return torch.stack(tokens, dim=1)


class PeerModel(nn.Module):
    """UNetV0 (+ its CFG plugin and our label conditioner) with VDiffusion's loss and VSampler's sampling.

    Args:
        representation: "mel" (input `(B, 1, n_mels, frames)`) or "waveform" (`(B, 1, T)`).
        length: frames (mel) or samples (waveform) of a training item.
        unet: keyword arguments of `UNetV0` (see :func:`peer_unet_config`).
        num_classes, pitch_range: the conditions (as in the training data's info); both None = unconditional.
        pad_value: the value of silence in model space (mel: the normalised log floor; waveform: 0).
    """

    def __init__(self, representation: str, length: int, unet: dict, num_classes=None, pitch_range=None,
                 pad_value: float = 0.0):
        super().__init__()
        adp = import_peer()
        self.representation = representation
        self.length = int(length)
        self.multiple = math.prod(unet["factors"])
        self.padded = -(-self.length // self.multiple) * self.multiple
        self.pad_value = float(pad_value)
        self.unet_config = dict(unet)
        self.cond = Conditioner(unet["embedding_features"], num_classes, pitch_range) \
            if (num_classes or pitch_range) else None
        self.net = adp.UNetV0(**unet)  # VDiffusion / VSampler hold no weights: made per call, never registered

    # ---------------------------------------------------------------- shapes
    def to_peer(self, x0: torch.Tensor) -> torch.Tensor:
        """Our model-space batch -> the peer's `(B, C, padded)`."""
        x = x0[:, 0] if self.representation == "mel" else x0
        return nn.functional.pad(x, (0, self.padded - x.shape[-1]), value=self.pad_value)

    def from_peer(self, x: torch.Tensor) -> torch.Tensor:
        """The peer's `(B, C, padded)` -> `(B, C, length)` (mel: `(B, n_mels, frames)`, the vocoder's input)."""
        return x[..., :self.length]

    def _embedding(self, cond: dict):
        return {} if self.cond is None else {"embedding": self.cond(cond)}

    # ---------------------------------------------------------------- training / sampling
    def loss(self, x0: torch.Tensor, cond: dict, mask_proba: float) -> torch.Tensor:
        """VDiffusion's v-objective MSE on `x0` (our model-space batch); conditions dropped with `mask_proba`."""
        kw = self._embedding(cond)
        if kw:
            kw["embedding_mask_proba"] = mask_proba
        return import_peer().VDiffusion(net=self.net)(self.to_peer(x0), **kw)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, steps: int, cond: dict, guidance: float | None) -> torch.Tensor:
        """VSampler from `noise (B, C, padded)`; `guidance` is the CFG plugin's `embedding_scale` (1 = off)."""
        kw = self._embedding(cond)
        if kw:
            kw["embedding_scale"] = 1.0 if guidance is None else float(guidance)
        return self.from_peer(import_peer().VSampler(net=self.net)(noise, num_steps=steps, **kw))


def _round8(v: float) -> int:
    return max(8, int(round(v / 8)) * 8)


def peer_unet_config(representation: str, in_channels: int, length: int, width: float, conditioned: bool,
                     num_tokens: int = 1) -> dict:
    """UNetV0 keyword arguments: the README layout (waveform) or a 4-level mel layout, channels times `width`."""
    if representation == "mel":
        chans, factors, items, atts = MEL_CHANNELS, MEL_FACTORS, MEL_ITEMS, MEL_ATTENTIONS
    else:
        levels, total = 0, 1
        for f in README_FACTORS:
            if levels >= 4 and length / (total * f) < MIN_BOTTLENECK:
                break
            total *= f
            levels += 1
        chans, factors = README_CHANNELS[:levels], README_FACTORS[:levels]
        items, atts = README_ITEMS[:levels], README_ATTENTIONS[:levels]
        if not any(atts):  # a short input keeps only unattended levels: attend at the coarsest
            atts = atts[:-1] + (1,)
    channels = [_round8(c * width) for c in chans]
    widest = max(channels)
    modulation = min(1024, max(64, int(round(widest / 64)) * 64))  # README: 1024 at its 1024-channel width
    cfg = {"dim": 1, "in_channels": in_channels, "channels": channels, "factors": list(factors),
           "items": list(items), "attentions": list(atts), "attention_heads": max(1, min(8, widest // 64)),
           "attention_features": 64, "modulation_features": modulation, "resnet_groups": 8}
    if conditioned:
        cfg.update(cross_attentions=list(atts), embedding_features=modulation, use_embedding_cfg=True,
                   embedding_max_length=num_tokens)
    else:
        cfg["embedding_features"] = modulation
    return cfg


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_matched(representation: str, in_channels: int, length: int, target_params: int, num_classes=None,
                  pitch_range=None, pad_value: float = 0.0) -> PeerModel:
    """The peer whose parameter count (net + condition embeddings) is closest to `target_params`.

    Parameters grow about as width squared; the width is bisected in log space on the meta device (no memory),
    then the chosen model is built for real.
    """
    conditioned = bool(num_classes or pitch_range)
    tokens = int(bool(num_classes)) + int(bool(pitch_range))

    def size(width: float) -> int:
        cfg = peer_unet_config(representation, in_channels, length, width, conditioned, max(tokens, 1))
        with torch.device("meta"):
            return count_params(PeerModel(representation, length, cfg, num_classes, pitch_range, pad_value))

    lo, hi = math.log(0.05), math.log(16.0)
    for _ in range(14):  # log-width to 0.04 %: far finer than the rounding of channels to multiples of 8
        mid = (lo + hi) / 2
        if size(math.exp(mid)) < target_params:
            lo = mid
        else:
            hi = mid
    best = min((math.exp(lo), math.exp(hi)), key=lambda w: abs(size(w) - target_params))
    cfg = peer_unet_config(representation, in_channels, length, best, conditioned, max(tokens, 1))
    return PeerModel(representation, length, cfg, num_classes, pitch_range, pad_value)
