"""Evaluation reports: `report.json` (every number) and `report.md` (a table plus plots; the plots themselves are
drawn by :mod:`audiodiff.plots`).

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

__all__ = ["write_report", "to_jsonable", "markdown_table", "COLUMNS", "STAT_COLUMNS"]

# (key in a row dict, column header, format)
COLUMNS = (
    ("n", "n", "{:d}"),
    ("accuracy", "accuracy", "{:.1%}"),
    ("inception_score", "IS", "{:.3f}"),
    ("modified_inception_score", "mIS", "{:.3f}"),
    ("frechet_distance", "FD (judge)", "{:.3f}"),
    ("embedding_frechet_distance", "FD (embedder)", "{:.3f}"),
    ("pitch_accuracy", "pitch acc.", "{:.1%}"),
    ("one_onset", "one onset", "{:.1%}"),
    ("clean_notes", "clean notes", "{:.1%}"),
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
