"""Manifests for the few-shot instrument experiment: a sax base without one instrument, that instrument's notes apart.

    python recipes/sax_instrument/prepare.py <sax folder> <out folder> [--instrument tenor] [--held 16]

Writes into <out folder>:
  base.jsonl      every note of the other instruments (the base model's training data)
  new_train.jsonl    the new instrument's notes but the held-out ones (50 of tenor's 66 with --held 16: the few-shot set)
  new_held.jsonl  `--held` notes of the new instrument spread evenly over its range (never trained on: the
                  reference for FD and the real row of the report)
  judge.jsonl     every note except new_held (the instrument judge trains on it)
  pitches.json    the new instrument's recorded pitches (MIDI), the pitches the stage-5 generations ask for
"""
import argparse
import json
from pathlib import Path

from audiodiff.data.manifest import build_manifest, write_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sax")
    ap.add_argument("out")
    ap.add_argument("--instrument", default="tenor")
    ap.add_argument("--held", type=int, default=16, help="held-out notes of the new instrument (default 16)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = build_manifest(Path(args.sax) / "manifest.jsonl", out=None).entries
    instruments = sorted({e["instrument"] for e in entries})
    if args.instrument not in instruments:
        raise SystemExit(f"prepare: --instrument {args.instrument!r} is not in {args.sax}; allowed: {instruments}")
    new = sorted((e for e in entries if e["instrument"] == args.instrument), key=lambda e: (e["pitch"], e["path"]))
    if not 0 < args.held < len(new):
        raise SystemExit(f"prepare: --held {args.held} must be between 1 and {len(new) - 1} "
                         f"({args.instrument} has {len(new)} notes)")
    # every k-th note by pitch: the held-out notes cover the instrument's whole range
    held_idx = {round(i * (len(new) - 1) / (args.held - 1)) for i in range(args.held)} if args.held > 1 else {0}
    parts = {
        "base": [e for e in entries if e["instrument"] != args.instrument],
        "new_held": [e for i, e in enumerate(new) if i in held_idx],
    }
    parts["new_train"] = [e for i, e in enumerate(new) if i not in held_idx]
    held = {e["path"] for e in parts["new_held"]}
    parts["judge"] = [e for e in entries if e["path"] not in held]
    for name, part in parts.items():
        write_manifest(part, out / f"{name}.jsonl")  # paths outside `out` are stored absolute
        print(f"{out / name}.jsonl: {len(part)} notes")
    pitches = sorted({e["pitch"] for e in new})
    (out / "pitches.json").write_text(json.dumps(pitches))
    print(f"{out / 'pitches.json'}: {len(pitches)} pitches of {args.instrument} ({pitches[0]}-{pitches[-1]})")


if __name__ == "__main__":
    main()
