"""Quality against network calls: every sampler x schedule x NFE of a trained run, scored and timed end to end.

Diffusion's cost is its network evaluations (NFE) per clip. For a run trained by `benchmarks/time_to_quality.py`
(its output folder holds the plan: the requests, the recipe's judge or pitch measure, the real statistics), this
generates the plan's clips with each sampler, schedule and NFE in {1, 2, 4, 8, 16, 32}, scores them with the
recipe's own measure (`time_to_quality.Scorer`: judge accuracy and FD, or pYIN pitch accuracy) and times generation
end to end, vocoder included (clips per second at `--batch`, all threads). The same seeds everywhere.

NFE counts network calls per clip: a step of Euler, DDPM or DPM++ 2M is one call, of Heun two (one on the last
step), and classifier-free guidance makes each call two (the conditional and unconditional branches, batched).
A (sampler, NFE) pair whose steps are not a whole number is skipped.

    .venv/bin/python benchmarks/nfe_quality.py runs/ttq/fsdd_mel --guidance 2 --out benchmarks/results/nfe_fsdd_mel

Writes `<out>.json`, `<out>.md` (a table) and `<out>.png` (the primary score against NFE and against clips per
second); prints the table and the best setting within each NFE budget (4, 8, 16, 32 and 50: 25 guided steps).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

NFES = (1, 2, 4, 8, 16, 32)
SAMPLERS = ("euler", "heun", "dpmpp_2m", "dpmpp_2m_sde", "ddpm")
SCHEDULES = ("karras", "exponential")
CALLS_PER_STEP = {"heun": 2}  # the others: one network call a step


def steps_for(method: str, nfe: int, guided: bool) -> int | None:
    """Sampler steps that spend `nfe` network calls per clip (None when none does)."""
    calls = nfe // 2 if guided else nfe
    if guided and nfe % 2:
        return None
    if calls < 1:
        return None
    if method == "heun":  # 2 calls a step, 1 on the last (sigma -> 0 is an Euler step)
        steps = (calls + 1) / 2
        return int(steps) if steps == int(steps) else None
    return calls


def override_vocoder(pipe, spec: str | None):
    """Replace a mel run's vocoder by the same one with `spec`'s settings changed (`"init=pghi,n_iter=8"`)."""
    if not spec:
        return None
    import yaml

    from audiodiff import vocoders

    if pipe.vocoder is None:
        raise SystemExit(f"--vocoder: {pipe.meta.get('name', 'this run')} is a waveform model; it has no vocoder")
    try:
        changes = {k.strip(): yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in spec.split(","))}
    except ValueError:
        raise SystemExit(f"--vocoder {spec!r}: expected KEY=VALUE pairs separated by commas") from None
    cfg = {"name": pipe.vocoder.name, **pipe.vocoder.config(), **changes}
    voc = vocoders.build(cfg, mel=pipe.mel).to(pipe.device).eval()
    pipe.rep.with_vocoder(voc)
    pipe.vocoder = voc
    return cfg


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ttq", help="a time_to_quality output folder (plan.json, ours/run)")
    p.add_argument("--run", default=None, help="the run to sample (default <ttq>/ours/run)")
    p.add_argument("--nfe", default=",".join(map(str, NFES)), help="network calls per clip, comma-separated")
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--schedules", default=",".join(SCHEDULES))
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance (1: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=50, help="clips per generation call")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vocoder", default=None, metavar="KEY=VALUE,...",
                   help="change the run's vocoder settings, e.g. init=pghi,n_iter=8 (Griffin-Lim from PGHI phase)")
    p.add_argument("--out", required=True, help="output path without extension")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    import torch

    import time_to_quality as T
    from audiodiff import Pipeline, schedules

    args = parse_args(argv)
    T.set_threads(args.threads)
    ttq = Path(args.ttq)
    plan = json.loads((ttq / T.PLAN).read_text())
    run = Path(args.run) if args.run else ttq / "ours" / "run"
    scorer = T.Scorer(plan)
    asked = plan["requests"]
    labels = [a["labels"] for a in asked] if plan["label_field"] else None
    pitch = [a["pitch"] for a in asked] if plan["pitch"] else None
    pipe = Pipeline.from_pretrained(run, device="cpu")
    vocoder_cfg = override_vocoder(pipe, args.vocoder)
    guided = pipe.condition is not None and args.guidance != 1.0
    sched_cfg = dict(pipe.meta.get("schedule") or {})
    rows = []
    for sched in args.schedules.split(","):
        for method in args.samplers.split(","):
            for nfe in (int(v) for v in args.nfe.split(",")):
                steps = steps_for(method, nfe, guided)
                if steps is None:
                    continue
                meta_sched = {**{k: v for k, v in sched_cfg.items() if k in ("sigma_min", "sigma_max")}, "name": sched}
                pipe.meta["schedule"] = meta_sched if sched in schedules.SCHEDULES else sched_cfg
                t0 = time.perf_counter()
                gen = pipe.generate(n=len(asked), steps=steps, sampler=method, labels=labels, pitch=pitch,
                                    guidance=args.guidance if guided else None, seed=args.seed,
                                    batch_size=args.batch, progress=False)
                seconds = time.perf_counter() - t0
                metrics = scorer.score(gen.audio, gen.sample_rate, asked)
                row = {"schedule": sched, "sampler": method, "nfe": nfe, "steps": steps,
                       "guidance": args.guidance if guided else None, "clips_per_second": len(asked) / seconds,
                       "seconds": round(seconds, 2), **{k: v for k, v in metrics.items() if k != "score"},
                       "score": metrics["score"]}
                rows.append(row)
                print(f"{sched:12s} {method:12s} NFE {nfe:2d} (steps {steps:2d}): {scorer.primary} "
                      f"{metrics['score']:.3f}  FD {metrics.get('frechet_distance', float('nan')):.1f}  "
                      f"{row['clips_per_second']:.1f} clips/s", flush=True)
    result = {"run": str(run), "ttq": str(ttq), "primary": scorer.primary, "guidance": args.guidance,
              "batch": args.batch, "threads": args.threads, "n": len(asked),
              "vocoder": vocoder_cfg or {"name": pipe.vocoder.name, **pipe.vocoder.config()} if pipe.vocoder else None, "hardware": T._hardware(args.threads),
              "command": " ".join(["benchmarks/nfe_quality.py", *(argv if argv is not None else sys.argv[1:])]),
              "rows": rows, "best": best_at(rows, (4, 8, 16, 32, 50))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    plot(result, out.with_suffix(".png"))
    print(markdown(result))
    return result


def best_at(rows: list[dict], budgets) -> dict:
    """The best primary score (ties: the lower FD) among the settings within each NFE budget."""
    out = {}
    for b in budgets:
        within = [r for r in rows if r["nfe"] <= b]
        if within:
            r = max(within, key=lambda r: (r["score"], -r.get("frechet_distance", 0.0)))
            out[str(b)] = {k: r[k] for k in ("schedule", "sampler", "nfe", "steps", "score", "clips_per_second")
                           if k in r} | ({"frechet_distance": r["frechet_distance"]} if "frechet_distance" in r else {})
    return out


def markdown(result: dict) -> str:
    prim = result["primary"]
    lines = [f"| schedule | sampler | NFE | steps | {prim} | FD | clips/s |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        fd = r.get("frechet_distance")
        lines.append(f"| {r['schedule']} | {r['sampler']} | {r['nfe']} | {r['steps']} | {r['score']:.3f} | "
                     f"{'' if fd is None else f'{fd:.1f}'} | {r['clips_per_second']:.1f} |")
    lines += ["", "Best within an NFE budget:", "", f"| NFE <= | setting | {prim} | FD | clips/s |",
              "|---:|---|---:|---:|---:|"]
    for b, r in result["best"].items():
        fd = r.get("frechet_distance")
        lines.append(f"| {b} | {r['schedule']} {r['sampler']} {r['steps']} steps | {r['score']:.3f} | "
                     f"{'' if fd is None else f'{fd:.1f}'} | {r['clips_per_second']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({(r["schedule"], r["sampler"]) for r in result["rows"]})
    for key in keys:
        rs = sorted((r for r in result["rows"] if (r["schedule"], r["sampler"]) == key), key=lambda r: r["nfe"])
        label = f"{key[1]} / {key[0]}"
        axes[0].plot([r["nfe"] for r in rs], [r["score"] for r in rs], marker="o", label=label)
        axes[1].plot([r["clips_per_second"] for r in rs], [r["score"] for r in rs], marker="o", label=label)
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("network calls per clip (NFE)")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("clips per second (CPU, vocoder included)")
    for ax in axes:
        ax.set_ylabel(result["primary"])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"quality vs NFE: {Path(result['run']).parent.parent.name}, guidance {result['guidance']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
