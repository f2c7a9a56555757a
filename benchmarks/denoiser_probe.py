"""How well a trained mel model denoises real held-out clips at each noise level.

Speckled generated mels (frame-to-frame jitter that a real note does not have, heard as clicks and read as extra
onsets) come from the denoiser: a sampler ends with the denoiser's own estimate at each of its last noise levels,
so whatever it leaves at sigma 0.1-0.5 stays in the sample. This probe adds noise of known level to the mels of
real held-out clips of the run's data (its own split), asks the denoiser (EMA weights, the clip's own condition)
for x0 and prints, per sigma:

- `rmse`: root-mean-square error of the estimate against the clean mel (a denoiser that does nothing scores sigma);
- `jitter`: mean |second difference over frames| of the estimate, beside the clean mels' own (`real`), the
  roughness a listener hears as clicks.

    .venv/bin/python benchmarks/denoiser_probe.py runs/ttq/piano_fid/ours/run --n 16 --json probe.json

Mel runs only; a run whose data has no held-out clip with a path (synthetic data) is refused in one line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

SIGMAS = (0.01, 0.03, 0.1, 0.3, 1.0)


def jitter(mel) -> float:
    """Mean |x[t+1] - 2 x[t] + x[t-1]| over bands and frames of a `(B, 1, M, T)` or `(B, M, T)` mel batch."""
    m = mel.reshape(-1, mel.shape[-2], mel.shape[-1]).double()
    return float((m[..., 2:] - 2 * m[..., 1:-1] + m[..., :-2]).abs().mean())


def held_out(run: Path, n: int):
    """Up to `n` held-out entries of the run's data split, spread evenly over it, with their clips loaded."""
    import yaml

    import time_to_quality as T
    from audiodiff.errors import UsageError

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    if cfg["data"].get("representation") != "mel":
        raise UsageError(f"{run}: data.representation={cfg['data'].get('representation')!r}; allowed: a mel run")
    valid = T._data_split(cfg)[2] if cfg["data"].get("manifest") else []
    valid = [e for e in valid if e.get("path")]
    if not valid:
        raise UsageError(f"{run}: its data has no held-out clip with a path; allowed: a run on a manifest")
    step = max(1, len(valid) // n)
    chosen = valid[::step][:n]
    return cfg, chosen


def probe(run: Path, n: int = 16, sigmas=SIGMAS, seed: int = 0) -> dict:
    import torch

    from audiodiff import Pipeline
    from audiodiff.audio import load, loudness_normalize

    cfg, entries = held_out(run, n)
    pipe = Pipeline.from_pretrained(run, device="cpu")
    sr, seg = pipe.sample_rate, float(cfg["data"]["segment_seconds"])
    length = int(round(seg * sr))
    clips = []
    for e in entries:
        a = load(e["path"], sample_rate=sr, mono=True)[0].reshape(1, -1)[:, :length]
        a = torch.nn.functional.pad(a, (0, length - a.shape[-1]))
        if cfg["data"].get("loudness_db") is not None:
            a = loudness_normalize(a, target_db=float(cfg["data"]["loudness_db"]))
        clips.append(a)
    x0 = pipe.mel(torch.cat(clips))[:, None]
    mult = pipe.net.multiple
    mult = int(mult[-1] if isinstance(mult, tuple) else mult)
    x0 = x0[..., :max(mult, x0.shape[-1] // mult * mult)]   # the nets pad other lengths; whole blocks keep it exact
    fields = pipe.condition_spec.fields   # network keyword -> data field; the clips' own conditions, asked as
    labels = [e[fields["labels"]] for e in entries] if "labels" in fields else None  # generate() asks them
    pitch = [float(e[fields["pitch"]]) for e in entries] if "pitch" in fields else None
    if labels is None and pitch is not None:
        labels, pitch = pitch, None          # a pitch-only model takes its pitches as labels
    cond = pipe._cond(labels, len(entries), pitch)[0] if fields else {}
    g = torch.Generator().manual_seed(seed)
    rows = []
    with torch.no_grad():
        for s in sigmas:
            noisy = x0 + float(s) * torch.randn(x0.shape, generator=g)
            d = pipe.denoiser(noisy, torch.tensor(float(s)), **cond).float()
            rows.append({"sigma": float(s), "rmse": float(((d - x0) ** 2).mean().sqrt()), "jitter": jitter(d)})
    return {"run": str(run), "step": pipe.step, "n": len(entries), "real_jitter": jitter(x0), "rows": rows}


def table(result: dict) -> str:
    lines = [f"{result['run']} (step {result['step']}, {result['n']} held-out clips; real jitter "
             f"{result['real_jitter']:.3f})", "", "| sigma | rmse | rmse / sigma | jitter | jitter / real |",
             "|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['sigma']:g} | {r['rmse']:.4f} | {r['rmse'] / r['sigma']:.2f} | {r['jitter']:.3f} | "
                     f"{r['jitter'] / result['real_jitter']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="mel run folders (a time_to_quality run's <out>/ours/run)")
    p.add_argument("--n", type=int, default=16, help="held-out clips (default 16)")
    p.add_argument("--sigmas", default=",".join(str(s) for s in SIGMAS), help="comma-separated noise levels")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    results = []
    for run in args.runs:
        r = probe(run, args.n, sigmas)
        print(table(r) + "\n", flush=True)
        results.append(r)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
