"""Clips per second of a teacher (guided, its steps) and its distilled student, end to end and network alone.

Both generate the same 200 requests (20 per class, batch 50, seed 0) three times, alternating, on this machine's
threads; the median of the three is reported, with the vocoder (end to end: what a user waits for) and without it
(the sampler in model space: what distillation changes).

    .venv/bin/python benchmarks/few_step_speed.py runs/ttq/fsdd_mel_edm/ours/run runs/distill/fsdd_mel4s \
        --out benchmarks/results/speed_fsdd_mel_student4.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> dict:
    import torch

    from audiodiff import Pipeline
    from nfe_quality import override_vocoder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("teacher")
    p.add_argument("student")
    p.add_argument("--teacher-steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--student-vocoder", default=None, metavar="KEY=VALUE,...",
                   help="the student's vocoder settings changed, e.g. init=pghi,n_iter=8 (the teacher keeps its own)")
    p.add_argument("--teacher-vocoder", default=None, metavar="KEY=VALUE,...",
                   help="the teacher's vocoder settings changed the same way")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    teacher, student = (Pipeline.from_pretrained(r, device="cpu") for r in (args.teacher, args.student))
    student_vocoder = override_vocoder(student, args.student_vocoder)
    teacher_vocoder = override_vocoder(teacher, args.teacher_vocoder)
    spec = teacher.condition_spec
    labels = [v for v in teacher.vocab for _ in range(args.per_class)] if teacher.vocab else None
    n = len(labels) if labels else 200
    pitch = None
    if "pitch" in spec.fields:  # pitches cycled through the run's range (a pitch-only model takes them as labels)
        lo, hi = spec.pitches
        pitch = [lo + k % (hi - lo + 1) for k in range(n)]
        if labels is None:
            labels, pitch = pitch, None
    sides = {"teacher": (teacher, args.teacher_steps, args.guidance), "student": (student, None, None)}
    res = {f"{s}_{w}": [] for s in sides for w in ("end_to_end", "network")}
    for _ in range(args.repeats):
        for name, (pipe, steps, guidance) in sides.items():
            t0 = time.perf_counter()
            pipe.generate(n=n, labels=labels, pitch=pitch, steps=steps, guidance=guidance, seed=0, batch_size=50,
                          progress=False)
            res[f"{name}_end_to_end"].append(n / (time.perf_counter() - t0))
            steps_, method = pipe._check(steps, None, guidance, 0)
            sigmas = pipe._sigmas(steps_, method)
            t0 = time.perf_counter()
            for a in range(0, n, 50):
                cond, _ = pipe._cond(labels[a:a + 50] if labels else None, min(50, n - a),
                                     pitch[a:a + 50] if pitch else None)
                pipe._run(pipe._shape(min(50, n - a), pipe._length(None)), list(range(a, min(a + 50, n))), sigmas, method,
                          cond, guidance, False)
            res[f"{name}_network"].append(n / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in res.items()}
    out = {"teacher": args.teacher, "student": args.student, "teacher_steps": args.teacher_steps,
           "guidance": args.guidance, "student_steps": student.meta["sampler"]["steps"], "n": n,
           "threads": args.threads, "student_vocoder": student_vocoder, "teacher_vocoder": teacher_vocoder, "clips_per_second_median": med, "all": res,
           "speedup_end_to_end": med["student_end_to_end"] / med["teacher_end_to_end"],
           "speedup_network": med["student_network"] / med["teacher_network"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"| | teacher ({args.teacher_steps} steps, guidance {args.guidance}) | student "
          f"({out['student_steps']} steps) | speed-up |\n|---|---:|---:|---:|")
    for w in ("end_to_end", "network"):
        print(f"| clips/s, {w.replace('_', ' ')} | {med[f'teacher_{w}']:.1f} | {med[f'student_{w}']:.1f} | "
              f"{med[f'student_{w}'] / med[f'teacher_{w}']:.1f}x |")
    return out


if __name__ == "__main__":
    main()
