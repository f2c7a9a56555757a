"""Figures of audio: log-mel spectrograms, drawn with matplotlib (imported on first use, Agg backend).

A base module (CONTRIBUTING.md "Layering"): training (TensorBoard samples), the pipeline (`Generated.plot`) and
evaluation (the report's plots) all draw with it, and it imports nothing from the package but the mel contract.

- :func:`spectrogram_figure`: one spectrogram per clip, one above the other (a figure, for TensorBoard or a notebook).
- :func:`spectrogram_grid`: up to 16 clips in a grid, written to a PNG.
- :func:`save_figure`: lay out, write and close a figure.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["spectrogram_figure", "spectrogram_grid", "save_figure"]


def spectrogram_grid(clips: Sequence, sample_rate: int, path, titles: Sequence[str] | None = None,
                     ncols: int = 4, max_items: int = 16, n_mels: int = 80) -> Path:
    """Plot log-mel spectrograms (dB) of up to `max_items` clips in a grid; writes a PNG.

    Args:
        clips: `(T,)` / `(1, T)` tensors or arrays at `sample_rate`.
        titles: one caption per clip (e.g. the asked label).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from .mel import MelSpec

    clips = list(clips)[:max_items]
    if not clips:
        raise ValueError("spectrogram_grid needs at least one clip")
    n_fft = 2 ** math.ceil(math.log2(0.046 * sample_rate))
    spec = MelSpec(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4,
                   n_mels=min(n_mels, n_fft // 4), power=2.0)
    ncols = max(1, min(ncols, len(clips)))
    nrows = math.ceil(len(clips) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 2.2 * nrows), dpi=90, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, c in enumerate(clips):
        x = torch.as_tensor(np.asarray(c.detach().cpu() if hasattr(c, "detach") else c), dtype=torch.float32)
        x = x.reshape(1, -1)
        if x.shape[-1] < n_fft:
            x = torch.nn.functional.pad(x, (0, n_fft - x.shape[-1]))
        db = 10 * torch.log10(spec.power_mel(x)[0].clamp(min=1e-10))
        db = db.clamp(min=db.max() - 80).numpy()
        ax = axes.flat[i]
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma",
                  extent=(0, x.shape[-1] / sample_rate, 0, db.shape[0]))
        ax.axis("on")
        ax.set_yticks([])
        ax.tick_params(labelsize=6)
        if titles is not None and i < len(titles):
            ax.set_title(str(titles[i]), fontsize=8)
    return save_figure(fig, path)


def spectrogram_figure(clips: Sequence, sample_rate: int, titles: Sequence[str]):
    """A matplotlib figure with one log-mel spectrogram (dB, librosa.display) per clip, one above the other.

    Args:
        clips: `(C, T)` tensors at `sample_rate` (channel 0 is shown); short clips get a shorter window.
        titles: one caption per clip.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import librosa
    import librosa.display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(clips), 1, figsize=(6, 2.2 * len(clips)), squeeze=False)
    for ax, clip, title in zip(axes[:, 0], clips, titles):
        y = clip[0].float().cpu().numpy()
        n_fft = int(min(1024, 2 ** np.floor(np.log2(max(len(y), 64)))))
        hop = n_fft // 8
        S = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=min(80, n_fft // 8))
        librosa.display.specshow(librosa.power_to_db(S, ref=np.max), sr=sample_rate, hop_length=hop, x_axis="time",
                                 y_axis="mel", ax=ax)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig, path) -> Path:
    """Lay out `fig`, write it to `path` (creating folders) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
