"""LJSpeech stage 1: write a JSONL manifest (path, duration, sample_rate, text) of an LJSpeech-1.1 folder.

    python recipes/ljspeech/prepare.py /path/to/LJSpeech-1.1 data/ljspeech/manifest.jsonl

The folder must hold `wavs/*.wav`; `metadata.csv` (`id|text|normalized text`, no header) adds `text`.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audiodiff.data.manifest import build_manifest, write_manifest  # noqa: E402


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="LJSpeech folder (with wavs/ and optionally metadata.csv)")
    p.add_argument("out", type=Path, help="manifest to write (JSONL)")
    a = p.parse_args(argv)
    wavs = a.root / "wavs"
    if not wavs.is_dir():
        raise SystemExit(f"{a.root}: no wavs/ folder; expected an LJSpeech-1.1 layout (wavs/*.wav, metadata.csv)")
    report = build_manifest(wavs)
    texts = {}
    meta = a.root / "metadata.csv"
    if meta.is_file():
        with open(meta, encoding="utf-8", newline="") as f:
            for row in csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE):
                if len(row) >= 2:
                    texts[row[0]] = row[-1]
    entries = [{**e, **({"text": texts[Path(e["path"]).stem]} if Path(e["path"]).stem in texts else {})}
               for e in report.entries]
    out = write_manifest(entries, a.out)
    print(f"{out}: {report.summary()}")
    return out


if __name__ == "__main__":
    main()
