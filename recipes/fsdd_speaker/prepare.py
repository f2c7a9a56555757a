"""Manifests for the few-shot voice experiment: a base without one FSDD speaker, that speaker's clips apart.

    python recipes/fsdd_speaker/prepare.py <fsdd folder> <out folder> [--speaker yweweler]

Writes into <out folder>:
  base.jsonl      every clip of the other speakers (the base model's training data)
  new_50.jsonl    takes 0-4 of each digit of the new speaker (50 clips: the few-shot set)
  new_400.jsonl   takes 0-39 of each digit (400 clips)
  new_held.jsonl  takes 40-49 of each digit (100 clips, never trained on: the reference for FD)
  judge.jsonl     every clip except new_held (the digit and speaker judges train on it)
Clips are read from the FSDD file names `<digit>_<speaker>_<take>.wav`.
"""
import argparse
import re
from pathlib import Path

from audiodiff.data.manifest import build_manifest, write_manifest

NAME = re.compile(r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fsdd")
    ap.add_argument("out")
    ap.add_argument("--speaker", default="yweweler")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = build_manifest(args.fsdd, out=None, label_from=NAME.pattern)
    entries = report.entries
    speakers = sorted({e["speaker"] for e in entries})
    if args.speaker not in speakers:
        raise SystemExit(f"prepare: --speaker {args.speaker!r} is not in {args.fsdd}; allowed: {speakers}")
    take = {e["path"]: int(NAME.search(Path(e["path"]).name)["take"]) for e in entries}
    new = [e for e in entries if e["speaker"] == args.speaker]
    parts = {
        "base": [e for e in entries if e["speaker"] != args.speaker],
        "new_50": [e for e in new if take[e["path"]] < 5],
        "new_400": [e for e in new if take[e["path"]] < 40],
        "new_held": [e for e in new if take[e["path"]] >= 40],
    }
    held = {e["path"] for e in parts["new_held"]}
    parts["judge"] = [e for e in entries if e["path"] not in held]
    for name, part in parts.items():
        write_manifest(part, out / f"{name}.jsonl")  # paths outside `out` are stored absolute
        print(f"{out / name}.jsonl: {len(part)} clips")


if __name__ == "__main__":
    main()
