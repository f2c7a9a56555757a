"""DataLoader throughput of the data layer, in seconds of audio delivered per wall-clock second.

Runs WaveformDataset on real recordings from ../shared/data (FSDD 8 kHz WAV; piano 24 kHz FLAC
resampled to 16 kHz) and SynthNotes (rendered on the fly) with 0 / 2 / 4 DataLoader workers, and
prints a table; `--out` also writes the rows as JSON. Not a test: numbers depend on the machine.

    PYTHONPATH=. python benchmarks/data.py --out benchmarks/results/data.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from audiodiff.data import EpochSampler, SynthNotes, WaveformDataset, collate, read_manifest

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def datasets(shared: Path, which: list[str]):
    """name -> (dataset, seconds per item)."""
    out = {}
    if "fsdd" in which:
        ds = WaveformDataset(read_manifest(shared / "fsdd" / "manifest.jsonl"), 8000, segment_seconds=1.0,
                             loudness_db=-20.0, conditions={"labels": "label"})
        out["fsdd (8k wav, 1 s)"] = ds
    if "piano" in which:
        ds = WaveformDataset(read_manifest(shared / "piano" / "manifest.jsonl"), 16000, segment_seconds=2.0,
                             conditions={"pitch": "pitch"})
        out["piano (24k flac->16k, 2 s)"] = ds
    if "synth" in which:
        out["synth (16k, 1 s, 5 timbres)"] = SynthNotes(4096, sample_rate=16000, seconds=1.0, vibrato=15, noise=0.01)
    return out


def seconds_per_item(ds) -> float:
    if isinstance(ds, SynthNotes):
        return ds.seconds
    return ds.segment_samples / ds.sample_rate


def measure(ds, workers: int, batch_size: int, batches: int) -> dict:
    sampler = EpochSampler(len(ds), seed=0)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collate, num_workers=workers,
                        drop_last=True)
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)
    t_first = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for n, _ in enumerate(it, 1):
        if n >= batches:
            break
    dt = time.perf_counter() - t1
    audio_s = n * batch_size * seconds_per_item(ds)
    return {"workers": workers, "batch_size": batch_size, "batches": n, "first_batch_s": round(t_first, 3),
            "items_per_s": round(n * batch_size / dt, 1), "audio_s_per_s": round(audio_s / dt, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    ap.add_argument("--datasets", default="fsdd,piano,synth", help="comma list of fsdd, piano, synth")
    ap.add_argument("--workers", default="0,2,4")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batches", type=int, default=20, help="timed batches after the first")
    ap.add_argument("--out", type=Path, default=None, help="write JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    header = f"{'dataset':30s} {'workers':>7s} {'first batch s':>13s} {'items/s':>9s} {'audio s/s':>10s}"
    print(header)
    print("-" * len(header))
    for name, ds in datasets(args.shared, args.datasets.split(",")).items():
        for w in (int(x) for x in args.workers.split(",")):
            r = {"dataset": name, **measure(ds, w, args.batch_size, args.batches)}
            rows.append(r)
            print(f"{name:30s} {w:7d} {r['first_batch_s']:13.3f} {r['items_per_s']:9.1f} {r['audio_s_per_s']:10.1f}",
                  flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                "machine": platform.machine(), "torch_threads": 1}
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
