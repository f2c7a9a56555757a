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
    """Up to `n` held-out items of the run's data, spread evenly over its held-out split, as one batch in the
    model's space: `(x0, cond, cfg)`, built by the training data pipeline itself (`build_dataset(split="valid")`,
    `collate`, `split_batch`), so crops, loudness, mel contract and condition ids are the run's own."""
    import yaml

    from audiodiff import representations
    from audiodiff.data.build import build_dataset
    from audiodiff.data.collate import collate, split_batch
    from audiodiff.errors import UsageError

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    data = {**cfg["data"], "cache_dir": None}   # a probe never writes into the run's caches
    if data.get("representation") != "mel":
        raise UsageError(f"{run}: data.representation={data.get('representation')!r}; allowed: a mel run")
    if data.get("kind", "manifest") != "manifest" or not data.get("manifest"):
        raise UsageError(f"{run}: its data has no held-out clip with a path; allowed: a run on a manifest")
    ds = build_dataset(data, split="valid", seed=int(cfg["train"].get("seed", 0)))["dataset"]
    step = max(1, len(ds) // n)
    batch = collate([ds[i] for i in range(0, len(ds), step)][:n])
    x0, cond = split_batch(batch, representations.from_data(data))
    return x0.float(), cond, cfg


def probe(run: Path, n: int = 16, sigmas=SIGMAS, seed: int = 0) -> dict:
    import torch

    from audiodiff import Pipeline

    x0, cond, _ = held_out(run, n)
    pipe = Pipeline.from_pretrained(run, device="cpu")
    g = torch.Generator().manual_seed(seed)
    rows = []
    with torch.no_grad():
        for s in sigmas:
            noisy = x0 + float(s) * torch.randn(x0.shape, generator=g)
            d = pipe.denoiser(noisy, torch.tensor(float(s)), **cond).float()
            rows.append({"sigma": float(s), "rmse": float(((d - x0) ** 2).mean().sqrt()), "jitter": jitter(d)})
    return {"run": str(run), "step": pipe.step, "n": x0.shape[0], "real_jitter": jitter(x0), "rows": rows}


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
