"""Score generated digit folders for the few-shot voice experiment: speaker share, digit accuracy, FD.

    python recipes/fsdd_speaker/score.py --digit-judge J1 --speaker-judge J2 --speaker yweweler \
        --held new_held.jsonl --reference new_400.jsonl --out results.json NAME=FOLDER [NAME=FOLDER ...]

Each FOLDER holds WAVs and `generated.jsonl` (asked `label` per file, as `audiodiff generate` writes it).
Per folder: the share of clips the speaker judge attributes to `--speaker`, the digit judge's accuracy on the
asked digits, and the Frechet distance (Heusel et al. 2017) of speaker-judge features to the new speaker's
held-out clips (`--held`). Two real rows are added for scale: the held-out clips themselves (speaker share and
digit accuracy of real recordings; no FD) and `--reference` (other real clips of the speaker: the FD floor at a
similar n). `--loudness-db` puts every clip at one level first, so that no judge can tell clips apart by recording
level (the model's data are normalised to -20 dBFS; the speakers' recordings differ by up to ~18 dB). Prints a
markdown table and writes JSON.
"""
import argparse
import json
from pathlib import Path

import torch

from audiodiff.audio import load, loudness_normalize
from audiodiff.data.manifest import read_manifest
from audiodiff.evaluation import metrics as M
from audiodiff.evaluation.cli import read_generated
from audiodiff.evaluation.judge import Judge, fit_length


LOUDNESS_DB = None  # set by --loudness-db: every clip (real and generated) at one RMS level before judging


def batch_of(paths, judge: Judge) -> torch.Tensor:
    clips = [load(p, sample_rate=judge.sample_rate, mono=True)[0] for p in paths]
    if LOUDNESS_DB is not None:
        clips = [loudness_normalize(c[None], LOUDNESS_DB)[0] for c in clips]
    return torch.cat([fit_length(c.view(1, 1, -1), judge.num_samples) for c in clips])


def score(paths, digits, speaker: str, dj: Judge, sj: Judge, held_feats) -> dict:
    sb, db = batch_of(paths, sj), batch_of(paths, dj)
    who = sj.predict(sb)
    row = {"n": len(paths), "speaker_share": sum(w == speaker for w in who) / len(who),
           "digit_accuracy": M.class_accuracy(dj.predict_proba(db), dj.label_index(digits))}
    if held_feats is not None:
        row["fd_to_held"] = M.frechet_distance_features(sj.features(sb), held_feats)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digit-judge", required=True)
    ap.add_argument("--speaker-judge", required=True)
    ap.add_argument("--speaker", required=True)
    ap.add_argument("--held", required=True)
    ap.add_argument("--reference")
    ap.add_argument("--out")
    ap.add_argument("--loudness-db", type=float, default=None,
                    help="normalise every clip to this RMS dBFS before judging (the model's data.loudness_db)")
    ap.add_argument("folders", nargs="+", help="NAME=FOLDER")
    args = ap.parse_args()
    global LOUDNESS_DB
    LOUDNESS_DB = args.loudness_db
    dj, sj = Judge.load(args.digit_judge), Judge.load(args.speaker_judge)
    if args.speaker not in sj.labels:
        raise SystemExit(f"score: --speaker {args.speaker!r} is not one of the speaker judge's {sj.labels}")
    held = read_manifest(args.held)
    held_feats = sj.features(batch_of([e["path"] for e in held], sj))
    rows = {"real held-out (new speaker)": score([e["path"] for e in held], [e["label"] for e in held],
                                                  args.speaker, dj, sj, None)}
    if args.reference:
        ref = read_manifest(args.reference)
        rows[f"real {Path(args.reference).stem} (FD floor)"] = score(
            [e["path"] for e in ref], [e["label"] for e in ref], args.speaker, dj, sj, held_feats)
    for spec in args.folders:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"score: expected NAME=FOLDER, got {spec!r}")
        entries = read_generated(folder)
        rows[name] = score([e["path"] for e in entries], [e["label"] for e in entries], args.speaker, dj, sj,
                           held_feats)
    cols = ["n", "speaker_share", "digit_accuracy", "fd_to_held"]
    print("| run | " + " | ".join(cols) + " |\n|---" * (len(cols) + 1) + "|")
    for name, r in rows.items():
        cells = [f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
