"""Where the pitch measure can be trusted: pYIN (audiodiff.evaluation.pitch) on every real note of a folder.

Issue 11 scores pitch-conditioned models by pYIN within 50 cents. A measure that misses real notes cannot tell a
model's errors from its own, so before a target is read at a pitch, the real recordings at that pitch should pass.
This reads a manifest (`pitch` field), loads every note at `--sample-rate` (the first `--seconds`, as the recipes'
crops do), scores all of them with `pitch_accuracy` over the full recorded range and, with `--pitch-range LO:HI`,
over the notes in that range with the range's own pYIN search band (as `time_to_quality.py --pitch-range` does),
and prints per pitch how many real notes pYIN reads right.

    python benchmarks/pitch_ceiling.py ../shared/data/piano --pitch-range 21:93 --out piano_ceiling.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from time_to_quality import in_pitch_range, parse_pitch_range  # noqa: E402  (imports only audiodiff.errors)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="a data folder with manifest.jsonl (pitch field)")
    p.add_argument("--sample-rate", type=int, default=16000, help="the rate the model generates at")
    p.add_argument("--seconds", type=float, default=2.0, help="crop from the start, as the recipe's data does")
    p.add_argument("--pitch-field", default="pitch")
    p.add_argument("--pitch-range", type=parse_pitch_range, default=None, metavar="LO:HI",
                   help="also score MIDI LO..HI on its own")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = p.parse_args(argv)

    from audiodiff.data.manifest import read_manifest
    from audiodiff.evaluation.pitch import pitch_accuracy
    from time_to_quality import _load_clip

    pitch_range = args.pitch_range
    entries = [e for e in read_manifest(args.folder / "manifest.jsonl") if args.pitch_field in e]
    if not entries:
        raise SystemExit(f"{args.folder / 'manifest.jsonl'}: no entry has the field {args.pitch_field!r}")
    n = int(round(args.seconds * args.sample_rate))
    clips = [_load_clip(e["path"], args.sample_rate)[:n] for e in entries]
    asked = [int(round(float(e[args.pitch_field]))) for e in entries]

    def per_pitch(result):
        table: dict = {}
        for it in result["items"]:
            row = table.setdefault(int(it["asked_midi"]), {"n": 0, "correct": 0, "estimates": []})
            row["n"] += 1
            row["correct"] += int(it["correct"])
            est = it["estimated_midi"]
            row["estimates"].append(round(est, 2) if math.isfinite(est) else None)
        return table

    full = pitch_accuracy(clips, args.sample_rate, asked)
    out = {"folder": str(args.folder), "sample_rate": args.sample_rate, "seconds": args.seconds,
           "full": {"accuracy": full["accuracy"], "n": full["n"], "fmin_hz": full["fmin_hz"],
                    "fmax_hz": full["fmax_hz"], "per_pitch": per_pitch(full)}}
    if pitch_range is not None:
        keep = [i for i, a in enumerate(asked) if in_pitch_range(a, pitch_range)]
        if not keep:
            raise SystemExit(f"--pitch-range {pitch_range[0]}:{pitch_range[1]}: no note of the folder lies in it")
        part = pitch_accuracy([clips[i] for i in keep], args.sample_rate, [asked[i] for i in keep])
        out["range"] = {"pitch_range": pitch_range, "accuracy": part["accuracy"], "n": part["n"],
                        "fmin_hz": part["fmin_hz"], "fmax_hz": part["fmax_hz"], "per_pitch": per_pitch(part)}
    print(f"pYIN on {full['n']} real notes of {args.folder} at {args.sample_rate} Hz, first {args.seconds:g} s")
    print("| MIDI | notes | right (full range) |" + (" right (--pitch-range) |" if pitch_range else ""))
    print("|---|---|---|" + ("---|" if pitch_range else ""))
    for midi, row in sorted(out["full"]["per_pitch"].items()):
        cells = [str(midi), str(row["n"]), str(row["correct"])]
        if pitch_range:
            r = out["range"]["per_pitch"].get(midi)
            cells.append("-" if r is None else str(r["correct"]))
        print("| " + " | ".join(cells) + " |")
    line = f"all: {full['accuracy']:.3f} of {full['n']} (pYIN {full['fmin_hz']:.0f}-{full['fmax_hz']:.0f} Hz)"
    if pitch_range:
        r = out["range"]
        line += f"; MIDI {pitch_range[0]}..{pitch_range[1]}: {r['accuracy']:.3f} of {r['n']} " \
                f"(pYIN {r['fmin_hz']:.0f}-{r['fmax_hz']:.0f} Hz)"
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
