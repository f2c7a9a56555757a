"""Score generated folders of a few-shot fine-tune: the share judged to be the new voice or instrument, the accuracy
of the asked class or pitch, and FD to the new source's held-out recordings.

    python recipes/score_fewshot.py --who-judge J --who yweweler [--label-judge J2] [--pitch] \
        --held new_held.jsonl [--reference new_400.jsonl] [--loudness-db -20] [--out results.json] NAME=FOLDER ...

Used by recipes/fsdd_speaker (who = speaker, label judge = digits) and recipes/sax_instrument (who = instrument,
pitch by pYIN). Each FOLDER holds WAVs and `generated.jsonl` (the asked `label` / `pitch` per file, as
`audiodiff generate` writes it). Per folder:
  share         the share of clips the `--who-judge` attributes to `--who` (the new speaker or instrument);
  label acc.    with `--label-judge`: its accuracy on the asked `label` (the digit);
  pitch acc.    with `--pitch`: pYIN median f0 within 50 cents of the asked `pitch`;
  FD            Frechet distance (Heusel et al. 2017) of who-judge features to the `--held` recordings.
Two real rows are added for scale: the held-out recordings themselves (share and accuracy of real recordings; no
FD) and `--reference` (other real recordings of the new source: the FD floor at a similar n). `--loudness-db` puts
every clip at one RMS level first, so that no judge can tell clips apart by recording level (FSDD's speakers differ
by up to ~18 dB). Prints a markdown table and writes JSON.
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
from audiodiff.evaluation.pitch import pitch_accuracy


def clips_of(paths, sample_rate: int, loudness_db: float | None) -> list[torch.Tensor]:
    clips = [load(p, sample_rate=sample_rate, mono=True)[0] for p in paths]
    if loudness_db is not None:
        clips = [loudness_normalize(c[None], loudness_db)[0] for c in clips]
    return clips


def judge_batch(clips, judge: Judge) -> torch.Tensor:
    return torch.cat([fit_length(c.view(1, 1, -1), judge.num_samples) for c in clips])


def score(entries, args, who_judge: Judge, label_judge: Judge | None, held_feats) -> dict:
    paths = [e["path"] for e in entries]
    loaded: dict[int, list[torch.Tensor]] = {}  # sample rate -> clips: each file is read once per rate

    def at(sr: int) -> list[torch.Tensor]:
        if sr not in loaded:
            loaded[sr] = clips_of(paths, sr, args.loudness_db)
        return loaded[sr]

    wb = judge_batch(at(who_judge.sample_rate), who_judge)
    who = who_judge.predict(wb)
    row = {"n": len(paths), "share": sum(w == args.who for w in who) / len(who)}
    if label_judge is not None:
        lb = judge_batch(at(label_judge.sample_rate), label_judge)
        row["label_accuracy"] = M.class_accuracy(label_judge.predict_proba(lb),
                                                 label_judge.label_index([e["label"] for e in entries]))
    if args.pitch:
        sr = who_judge.sample_rate
        pr = pitch_accuracy([c.numpy() for c in at(sr)], sr, [e["pitch"] for e in entries])
        row["pitch_accuracy"], row["median_cents"] = pr["accuracy"], pr["median_abs_cents"]
    if held_feats is not None:
        row["fd_to_held"] = M.frechet_distance_features(who_judge.features(wb), held_feats)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--who-judge", required=True, help="judge of the source (speaker or instrument)")
    ap.add_argument("--who", required=True, help="the new source's label in that judge")
    ap.add_argument("--label-judge", help="judge of the asked `label` (digits)")
    ap.add_argument("--pitch", action="store_true", help="score the asked `pitch` with pYIN")
    ap.add_argument("--held", required=True)
    ap.add_argument("--reference")
    ap.add_argument("--out")
    ap.add_argument("--loudness-db", type=float, default=None,
                    help="normalise every clip to this RMS dBFS before judging (the model's data.loudness_db)")
    ap.add_argument("folders", nargs="+", help="NAME=FOLDER")
    args = ap.parse_args()
    wj = Judge.load(args.who_judge)
    lj = Judge.load(args.label_judge) if args.label_judge else None
    if args.who not in wj.labels:
        raise SystemExit(f"score: --who {args.who!r} is not one of the judge's labels {wj.labels}")
    held = read_manifest(args.held)
    held_feats = wj.features(judge_batch(clips_of([e["path"] for e in held], wj.sample_rate, args.loudness_db), wj))
    rows = {"real held-out (new)": score(held, args, wj, lj, None)}
    if args.reference:
        rows[f"real {Path(args.reference).stem} (FD floor)"] = score(read_manifest(args.reference), args, wj, lj,
                                                                     held_feats)
    for spec in args.folders:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"score: expected NAME=FOLDER, got {spec!r}")
        rows[name] = score(read_generated(folder), args, wj, lj, held_feats)
    cols = ["n", "share"] + (["label_accuracy"] if lj else []) + (["pitch_accuracy", "median_cents"]
                                                                   if args.pitch else []) + ["fd_to_held"]
    print("| run | " + " | ".join(cols) + " |\n" + "|---" * (len(cols) + 1) + "|")
    for name, r in rows.items():
        cells = [f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
