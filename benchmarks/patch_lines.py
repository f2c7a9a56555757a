"""Spectral lines at k * sample_rate / patch in generated audio: how far each stands above its neighbourhood.

A patched waveform net whose first level cannot see components repeated in every patch leaves noise at exactly
those frequencies (see audiodiff/models/blocks.py, PositionNorm). For each WAV and k = 1 .. patch/2 - 1 this
prints the peak level (dB, Hann-windowed spectrum) within +-`win` Hz of k * rate / patch minus the median level
of the band ((k - 1/2) .. (k + 1/2)) * rate / patch outside that window, and the mean over files and k.
Clean audio and a net without the defect score a few dB (the peak of a noisy band sits above its median).

    python benchmarks/patch_lines.py samples/tones --patch 8
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf


def line_strength(x: np.ndarray, sr: int, patch: int, win: float = 30.0) -> list[dict]:
    """Per k: `{"hz", "peak_db", "median_db", "above_db"}` for the line at k * sr / patch of mono signal x."""
    n = len(x)
    nfft = max(8192, 1 << int(np.ceil(np.log2(n))))
    mag = np.abs(np.fft.rfft(x * np.hanning(n), nfft))
    f = np.fft.rfftfreq(nfft, 1 / sr)
    db = 20 * np.log10(mag + 1e-12)
    db -= db.max()
    out = []
    for k in range(1, patch // 2):
        fc = k * sr / patch
        near = np.abs(f - fc) <= win
        band = (np.abs(f - fc) < 0.5 * sr / patch) & ~near
        peak, med = float(db[near].max()), float(np.median(db[band]))
        out.append(dict(hz=fc, peak_db=peak, median_db=med, above_db=peak - med))
    return out


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path, help="WAV files or folders of them")
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--win", type=float, default=30.0, help="half-width (Hz) of the window around each line")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    files = [q for path in a.paths for q in (sorted(path.glob("*.wav")) if path.is_dir() else [path])]
    if not files:
        p.error(f"no WAV files in {[str(q) for q in a.paths]}")
    rows, values = {}, []
    for fn in files:
        x, sr = sf.read(fn, always_2d=True)
        r = line_strength(x.mean(1), sr, a.patch, a.win)
        rows[str(fn)] = r
        values += [v["above_db"] for v in r]
        print(fn.name, "  ".join(f"{v['hz']:.0f} Hz +{v['above_db']:.1f} dB" for v in r))
    mean = float(np.mean(values))
    print(f"mean line strength over {len(files)} files x {a.patch // 2 - 1} lines: {mean:.2f} dB")
    if a.out:
        a.out.write_text(json.dumps(dict(patch=a.patch, win=a.win, mean_db=mean, files=rows), indent=1))
    return mean


if __name__ == "__main__":
    main()
