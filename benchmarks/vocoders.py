"""Vocoder benchmark: speed (x real time) and resynthesis quality on held-out speech; prints a table, writes JSON.

Compares, in one run and on one device:
- `griffinlim-32`: this package's Griffin-Lim (clamped pseudo-inverse + NNLS, fast GL with momentum 0.99, 32 iters);
- `torchaudio-gl-32`: torchaudio's InverseMelScale + GriffinLim (momentum 0.99, 32 iters), a peer implementation;
- `neural`: a trained Vocos-style vocoder (`--neural DIR`, a vocoder folder or a training run);
- `diffusion`: a trained diffusion vocoder (`--diffusion DIR`).

Quality: mel L1 (natural-log mel), multi-resolution STFT distance, log-spectral distance and PESQ (when the
`pesq` package is installed) of each held-out utterance resynthesised from its own mel. The held-out
utterances are the `valid` part of `split_manifest(entries, valid_fraction, split_seed)` with the values of
`configs/experiment/<dataset>_vocoder.yaml`, i.e. exactly the clips the recipe's training never sees.

Speed: a batch of `--batch` mels of `--seconds` seconds each (real held-out audio, tiled), median of
`--repeats` timed calls after a warm-up; reported as seconds of audio per second of wall time.
The GPU setting is batch 16 x 10 s; on CPU use a smaller batch (the table and JSON record what was used).

    python benchmarks/vocoders.py --data /work/shared/data --neural runs/ljspeech_vocoder/vocoder \
        --out benchmarks/results/vocoders.json
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiodiff import audio as _audio  # noqa: E402
from audiodiff import vocoders  # noqa: E402
from audiodiff.data.manifest import read_manifest, split_manifest  # noqa: E402
from audiodiff.evaluation import vocoder_metrics as VM  # noqa: E402
from audiodiff.mel import MelSpec  # noqa: E402

DATASETS = {"ljspeech_mini": "ljspeech_vocoder.yaml", "fsdd": "fsdd_vocoder.yaml"}


class TorchaudioGriffinLim(torch.nn.Module):
    """Peer: torchaudio.transforms.InverseMelScale (least squares + ReLU) then torchaudio GriffinLim."""

    name = "torchaudio-gl"

    def __init__(self, mel: MelSpec, n_iter: int = 32, momentum: float = 0.99):
        super().__init__()
        import torchaudio.transforms as T

        self.mel = mel
        self.inv = T.InverseMelScale(mel.n_freqs, mel.n_mels, mel.sample_rate, mel.f_min, mel.f_max,
                                     norm=mel.norm, mel_scale=mel.mel_scale)
        self.gl = T.GriffinLim(n_fft=mel.n_fft, n_iter=n_iter, win_length=mel.window_length,
                               hop_length=mel.hop_length, power=float(mel.power), momentum=momentum)

    def num_parameters(self) -> int:
        return 0

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        power_mel = self.mel.denormalize(mel).exp()
        spec = self.inv(power_mel)
        if self.mel.power == 1.0:
            spec = spec.clamp_min(0)
        # torchaudio's GriffinLim returns (frames - 1) * hop samples (a longer `length` breaks its loop): pad the
        # last hop with zeros to the frames * hop of the vocoder contract.
        y = self.gl(spec)
        return torch.nn.functional.pad(y, (0, mel.shape[-1] * self.mel.hop_length - y.shape[-1])).unsqueeze(1)


def experiment_cfg(dataset: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "experiment" / DATASETS[dataset]), resolve=True)


def held_out(data_root: Path, dataset: str, cfg: dict, max_utts: int) -> list[dict]:
    entries = read_manifest(data_root / dataset / "manifest.jsonl")
    _, valid = split_manifest(entries, cfg["data"]["valid_fraction"], cfg["data"]["split_seed"])
    return valid[:max_utts]


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def evaluate(voc, clips: list[torch.Tensor], device, with_pesq: bool) -> dict:
    rows = []
    for wav in clips:
        wav = wav.to(device)[None]
        with torch.inference_mode():
            est = voc(voc.mel(wav))
        rows.append(VM.resynthesis_metrics(wav.float().cpu(), est.float().cpu(), voc.mel, with_pesq=with_pesq))
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows if r[k] is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def speed(voc, clips: list[torch.Tensor], batch: int, seconds: float, device, repeats: int) -> dict:
    sr = voc.mel.sample_rate
    T = int(seconds * sr)
    joined = torch.cat(clips)
    reps = math.ceil(T * batch / joined.numel())
    wav = joined.repeat(reps)[: T * batch].view(batch, T).to(device)
    with torch.inference_mode():
        mel = voc.mel(wav)
    r = VM.real_time_factor(lambda: voc(mel), audio_seconds=batch * seconds, repeats=repeats, warmup=1, device=device)
    r.update(batch=batch, seconds=seconds)
    return r


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--neural", nargs="*", default=[], help="trained neural vocoder dirs (matched to a dataset by mel)")
    p.add_argument("--diffusion", nargs="*", default=[], help="trained diffusion vocoder dirs")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=None, help="speed batch (default 16 on GPU, 2 on CPU)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gl-iters", type=int, default=32)
    p.add_argument("--max-utts", type=int, default=8)
    p.add_argument("--no-pesq", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if a.device == "auto" else a.device))
    batch = a.batch or (16 if device.type == "cuda" else 2)
    trained = [(d, "neural") for d in a.neural] + [(d, "diffusion") for d in a.diffusion]
    loaded = [(d, vocoders.load_vocoder(d, device=device)) for d, _ in trained]

    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
               "torch": torch.__version__, "speed_batch": batch, "speed_seconds": a.seconds,
               "gl_iters": a.gl_iters, "datasets": {}}
    for ds in a.datasets:
        cfg = experiment_cfg(ds)
        entries = held_out(a.data, ds, cfg, a.max_utts)
        mel = MelSpec.from_dict(cfg["mel"])
        cands = [(f"griffinlim-{a.gl_iters}", vocoders.build({"name": "griffinlim", "n_iter": a.gl_iters,
                                                                 "nnls_iters": 20}, mel=mel).to(device)),
                 (f"torchaudio-gl-{a.gl_iters}", TorchaudioGriffinLim(mel, a.gl_iters).to(device))]
        for d, v in loaded:
            if v.mel.sample_rate == mel.sample_rate:
                cands.append((f"{v.name} ({Path(d).name if Path(d).name != 'vocoder' else Path(d).parent.name})", v))
        rows = {}
        for name, voc in cands:
            clips = [_audio.load(e["path"], sample_rate=voc.mel.sample_rate)[0][0] for e in entries]
            t0 = time.time()
            q = evaluate(voc, clips, device, with_pesq=not a.no_pesq)
            s = speed(voc, clips, batch, a.seconds, device, a.repeats)
            rows[name] = {**q, "x_real_time": s["x_real_time"], "speed": s,
                          "params": voc.num_parameters(), "mel": voc.mel.to_dict(), "eval_wall_s": time.time() - t0}
        gl = rows[f"griffinlim-{a.gl_iters}"]["mrstft"]
        for r in rows.values():
            r["mrstft_vs_gl"] = r["mrstft"] / gl - 1
        results["datasets"][ds] = {"held_out": [Path(e["path"]).name for e in entries], "results": rows}

    print(f"device: {results['device']}; speed: batch {batch} x {a.seconds:g} s; quality: held-out utterances")
    head = f"{'dataset':14} {'vocoder':28} {'params':>8} {'mel L1':>7} {'MR-STFT':>8} {'vs GL':>7} {'LSD dB':>7} {'PESQ':>5} {'x real time':>12}"
    print(head)
    print("-" * len(head))
    for ds, d in results["datasets"].items():
        for name, r in d["results"].items():
            pesq = f"{r['pesq']:.2f}" if r["pesq"] is not None else "-"
            print(f"{ds:14} {name:28} {r['params'] / 1e6:7.2f}M {r['mel_l1']:7.3f} {r['mrstft']:8.3f} "
                  f"{100 * r['mrstft_vs_gl']:+6.0f}% {r['lsd']:7.2f} {pesq:>5} {r['x_real_time']:12.1f}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {a.out}")
    return results


if __name__ == "__main__":
    main()
