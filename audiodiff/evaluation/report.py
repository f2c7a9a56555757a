"""Evaluation reports: `report.json` (every number) and `report.md` (a table plus plots), and the plots.

The table follows DiffWave's SC09 table (Kong et al. 2021): one row per sample set (generated, and real
held-out recordings as the reference), columns accuracy / IS / mIS / Frechet distance of judge features. A second
table holds what needs no reference (clip durations, sample rate, RMS level, near-silent and clipping shares).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["write_report", "spectrogram_grid", "spectrogram_figure", "to_jsonable", "markdown_table", "COLUMNS",
           "STAT_COLUMNS"]

# (key in a row dict, column header, format)
COLUMNS = (
    ("n", "n", "{:d}"),
    ("accuracy", "accuracy", "{:.1%}"),
    ("inception_score", "IS", "{:.3f}"),
    ("modified_inception_score", "mIS", "{:.3f}"),
    ("frechet_distance", "FD (judge)", "{:.3f}"),
    ("embedding_frechet_distance", "FD (embedder)", "{:.3f}"),
    ("pitch_accuracy", "pitch acc.", "{:.1%}"),
)
# the reference-free clip statistics (:func:`audiodiff.evaluation.metrics.clip_statistics`), their own table
STAT_COLUMNS = (
    ("n", "n", "{:d}"),
    ("duration_s", "mean s", "{:.2f}"),
    ("duration_min_s", "min s", "{:.2f}"),
    ("duration_max_s", "max s", "{:.2f}"),
    ("sample_rate", "Hz", "{:d}"),
    ("rms_dbfs", "RMS dBFS (median)", "{:.1f}"),
    ("silent_share", "near-silent", "{:.1%}"),
    ("clipping_share", "clipping", "{:.1%}"),
)


def to_jsonable(x: Any) -> Any:
    """Convert numpy / torch scalars and arrays to plain Python; NaN and inf become None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return fmt.format(value)


def markdown_table(rows: dict[str, dict], columns: Sequence[tuple[str, str, str]] = COLUMNS) -> str:
    """A Markdown table: one line per named row, the `columns` (default :data:`COLUMNS`) any row has."""
    cols = [c for c in columns if any(r.get(c[0]) is not None for r in rows.values())]
    lines = ["| set | " + " | ".join(h for _, h, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(r.get(k), f) for k, _, f in cols) + " |")
    return "\n".join(lines)


def write_report(results: dict, out_dir, title: str = "audiodiff evaluation",
                 images: dict[str, str | Path] | None = None, notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write `report.json` (all of `results`) and `report.md` (tables, notes, plots) into `out_dir`.

    Args:
        results: must hold `rows`: `{set name: {metric: value}}`; any other keys go to JSON and are listed
            as "details" in Markdown when they are scalars. Rows holding clip statistics (:data:`STAT_COLUMNS`
            other than `n`) get a second table, "Clip statistics".
        images: `{caption: path}`; paths are written relative to `out_dir` when inside it.
        notes: extra Markdown lines under the table (protocol, sample counts, caveats).
    Returns:
        `{"json": path, "md": path}`.
    """
    if "rows" not in results or not isinstance(results["rows"], dict):
        raise ValueError("results must contain 'rows': {set name: {metric: value}}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = to_jsonable(dict(results, images={k: str(v) for k, v in (images or {}).items()}))
    json_path = out / "report.json"
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=False))

    md = [f"# {title}", "", markdown_table(results["rows"]), ""]
    if any(r.get(k) is not None for r in results["rows"].values() for k, _, _ in STAT_COLUMNS[1:]):
        md += ["Clip statistics (from the audio alone, no reference needed):", "",
               markdown_table(results["rows"], STAT_COLUMNS), ""]
    md += [f"- {n}" for n in notes]
    details = {k: v for k, v in payload.items() if k not in ("rows", "images") and not isinstance(v, (dict, list))}
    if details:
        md += ["", "## Details", ""] + [f"- {k}: {v}" for k, v in details.items()]
    for caption, p in (images or {}).items():
        p = Path(p)
        try:
            rel = p.resolve().relative_to(out.resolve()).as_posix()
        except ValueError:
            rel = str(p)
        md += ["", f"## {caption}", "", f"![{caption}]({rel})"]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n")
    return {"json": json_path, "md": md_path}


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

    from audiodiff.mel import MelSpec

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
