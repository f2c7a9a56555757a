"""Score the final checkpoint of one or more time_to_quality runs again: other sampling seeds, other pitches.

Issue 11 asks for some rows over several seeds (tones_full: 3 training x 3 sampling seeds) and, for piano, for
the pitches between the recorded ones. `benchmarks/time_to_quality.py` scores each point at one sampling seed;
this script reads the runs it wrote (`<out>/plan.json`, `<out>/ours/run`) and scores the newest checkpoint with
the same measure (`time_to_quality.Scorer`), the same requests (or `--pitches`), the same sampler settings,
at each `--seeds` value, or with `--sampler` / `--steps` / `--guidance` changed (sampling levers need no
retraining). With `--pitch-range` the real held-out notes in the range are scored too, as recorded and through
mel + the run's vocoder. Off any training clock: scoring only.

    .venv/bin/python benchmarks/ttq_rescore.py runs/ttq/tones_s0 runs/ttq/tones_s1 runs/ttq/tones_s2 \
        --seeds 0,1000,2000 --json runs/ttq/tones_full_seeds.json
    .venv/bin/python benchmarks/ttq_rescore.py runs/ttq/piano --pitches between --seeds 0 --json between.json

Writes one row per (run, seed) with the metrics, and the mean / min / max of the primary score over all rows.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from time_to_quality import in_pitch_range, parse_pitch_range  # noqa: E402  (imports only audiodiff.errors)


def requests_for(plan: dict, pitches: str | None, n_per_pitch: int, pitch_range=None) -> list[dict]:
    """The plan's requests, or for pitch-only plans `between` (the semitones between the trained pitches) or a
    list; `pitch_range` `(lo, hi)` then keeps the pitches in MIDI lo..hi."""
    if (pitches is not None or pitch_range is not None) and (plan["label_field"] or not plan["pitch"]):
        raise SystemExit("--pitches / --pitch-range apply to pitch-only recipes (piano, tones); this plan has labels "
                         "or no pitch")
    if pitches is None:
        reqs = plan["requests"]
    else:
        trained = sorted({int(r["pitch"]) for r in plan["requests"]})
        if pitches == "between":
            chosen = [p for p in range(trained[0], trained[-1] + 1) if p not in trained]
        else:
            chosen = [int(p) for p in pitches.split(",")]
        reqs = [{"pitch": p} for p in chosen for _ in range(n_per_pitch)]
    if pitch_range is not None:
        reqs = [r for r in reqs if in_pitch_range(r["pitch"], pitch_range)]
    if not reqs:
        raise SystemExit(f"no pitch to score (--pitches {pitches!r}, --pitch-range {pitch_range}); allowed: a choice "
                         "that leaves at least one pitch")
    return reqs


def real_in_range(out: Path, plan: dict, pitch_range, real_n: int) -> tuple[list, list[dict]]:
    """The run's real held-out notes (its config's split, taken as time_to_quality takes them) with a pitch in range."""
    import yaml

    import time_to_quality as T

    cfg = yaml.safe_load((out / "ours" / "run" / "config.yaml").read_text())
    _, _, valid = T._data_split(cfg)
    return T.held_out_notes(valid, {"pitch": cfg["data"]["conditions"]["pitch"]}, pitch_range, real_n,
                            plan["sample_rate"])


def score_seeds(pipe, args, out: Path, plan: dict, scorer, asked: list[dict], sampler: dict, steps: int,
                pitch_range, specs: list[str]) -> list[dict]:
    """One row per (sampling seed, vocoder): the run's generations for `asked`, made once per seed, decoded by each
    vocoder of `specs` ('run': the run's own; else KEY=VALUE changes to it) and scored as time_to_quality scored."""
    import time_to_quality as T
    from nfe_quality import override_vocoder

    own = pipe.vocoder
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        gen = pipe.generate(n=len(asked), steps=steps, sampler=sampler["sampler"],
                            labels=[a["labels"] for a in asked] if plan["label_field"] else None,
                            pitch=[a["pitch"] for a in asked] if plan["pitch"] else None,
                            guidance=sampler["guidance"], seed=seed, batch_size=50, progress=False)
        for spec in specs:
            if own is not None:
                pipe.rep.with_vocoder(own)
                pipe.vocoder = own
            vocoder = override_vocoder(pipe, None if spec == "run" else spec)
            audio = gen.audio if spec == "run" else pipe.rep.decode(gen.mel).float().clamp(-1, 1)
            m = scorer.score(audio, gen.sample_rate, asked)
            rows.append({"run": str(out), "step": pipe.step, "seed": seed, "n": len(asked), "steps": steps,
                         "sampler": sampler["sampler"], "guidance": sampler["guidance"],
                         "pitches": args.pitches or "trained", "pitch_range": pitch_range, "vocoder_spec": spec,
                         "vocoder": vocoder, "metrics": m})
            print(f"{out}  step {pipe.step}  seed {seed}  {sampler['sampler']} {steps}, guidance {sampler['guidance']}  "
                  f"{T._fmt_metrics(m)}  vocoder {spec}", flush=True)
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("outs", nargs="+", type=Path, help="time_to_quality --out folders")
    p.add_argument("--seeds", default="0", help="comma-separated sampling seeds (item k uses seed + k)")
    p.add_argument("--pitches", default=None, help="'between' or a comma-separated MIDI list (pitch-only recipes)")
    p.add_argument("--n-per-pitch", type=int, default=2)
    p.add_argument("--pitch-range", type=parse_pitch_range, default=None, metavar="LO:HI",
                   help="score only MIDI LO..HI (pitch-only recipes), and the real held-out notes in it beside them")
    p.add_argument("--real-n", type=int, default=200, help="real held-out notes at most, with --pitch-range")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the run's points')")
    p.add_argument("--sampler", default=None, help="sampler (default: the run's points')")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale (default: the run's points'; 1 = off)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vocoder", action="append", default=None, metavar="KEY=VALUE,...",
                   help="score through the run's vocoder with these settings changed (init=pghi,n_iter=0); "
                        "repeat for several (each decodes the same generations), 'run' for the run's own "
                        "(default: the run's own alone)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch
    import yaml

    import time_to_quality as T
    from audiodiff import Pipeline

    torch.set_num_threads(args.threads)
    pitch_range = args.pitch_range
    rows, real_rows = [], []
    for out in args.outs:
        plan = json.loads((out / "plan.json").read_text())
        point = [json.loads(line) for line in (out / "ours" / "points.jsonl").read_text().splitlines()][-1]
        sampler = dict(point["sampler"])
        if args.sampler is not None:
            sampler["sampler"] = args.sampler
        if args.guidance is not None:
            sampler["guidance"] = args.guidance
        steps = args.steps or sampler["steps"]
        asked = requests_for(plan, args.pitches, args.n_per_pitch, pitch_range)
        scorer = T.Scorer(plan)
        if pitch_range is not None:
            clips, real_asked = real_in_range(out, plan, pitch_range, args.real_n)
            m = scorer.score(clips, plan["sample_rate"], real_asked)
            real_rows.append({"run": str(out), "what": "real held-out notes in the pitch range", "metrics": m})
            print(f"{out}  real held-out in MIDI {pitch_range[0]}..{pitch_range[1]}  {T._fmt_metrics(m)}", flush=True)
            cfg = yaml.safe_load((out / "ours" / "run" / "config.yaml").read_text())
            if cfg["data"].get("representation") == "mel":
                m = scorer.score(T.vocode_real(cfg, clips), plan["sample_rate"], real_asked)
                real_rows.append({"run": str(out), "what": "the same through mel + the run's vocoder", "metrics": m})
                print(f"{out}  the same through mel + vocoder  {T._fmt_metrics(m)}", flush=True)
        pipe = Pipeline.from_pretrained(out / "ours" / "run", device="cpu")
        rows += score_seeds(pipe, args, out, plan, scorer, asked, sampler, steps, pitch_range, args.vocoder or ["run"])
    scores = [r["metrics"]["score"] for r in rows]
    summary = {"rows": rows, "real": real_rows, "mean": sum(scores) / len(scores), "min": min(scores),
               "max": max(scores), "by_vocoder": {}}
    for spec in args.vocoder or ["run"]:
        mine = [r["metrics"]["score"] for r in rows if r["vocoder_spec"] == spec]
        summary["by_vocoder"][spec] = sum(mine) / len(mine)
        print(f"primary score, vocoder {spec}, over {len(mine)} (run, seed) pairs: mean {sum(mine) / len(mine):.3f}, "
              f"min {min(mine):.3f}, max {max(mine):.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main()
