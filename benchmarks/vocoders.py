"""Vocoder benchmark: resynthesis quality of held-out speech and music and speed (x real time); a table and JSON.

Compares, in one run and on one device:
- Griffin-Lim variants (`--gl-variants`, INIT:ITERATIONS): this package's Griffin-Lim (clamped pseudo-inverse +
  NNLS, fast GL with momentum 0.99) from random phase (`random:32` is the shipped vocoder, `random:100`) and from
  phase-gradient integration (`pghi:0` is PGHI alone, `pghi:1` one Griffin-Lim iteration after it, `pghi:8` eight);
- `torchaudio-gl-32`: torchaudio's InverseMelScale + GriffinLim (momentum 0.99, 32 iters), a peer implementation;
- `neural`: a trained Vocos-style vocoder (`--neural DIR`, a vocoder folder or a training run);
- `diffusion`: a trained diffusion vocoder (`--diffusion DIR`).

Quality, per held-out clip resynthesised from its own mel: mel L1 (natural-log mel), multi-resolution STFT
distance, log-spectral distance, PESQ (wide band at 16 kHz and above, narrow band below) and STOI / ESTOI (the
`metrics` extra), and on the music contracts (piano, sax: the first `--seconds-music` of each held-out note) the pYIN
pitch accuracy the music recipes score with, beside that of the real notes themselves. Speech: the `valid` part of
`split_manifest(entries, valid_fraction, split_seed)` with the values of `configs/experiment/<dataset>_vocoder.yaml`
(the clips the vocoder recipe never trains on); `--splits 3` adds two other splits and reports each metric's mean
and spread (half the range), so that a difference can be read against it.

Speed: a batch of `--batch` mels of `--seconds` seconds each (real held-out audio, tiled), median of
`--repeats` timed calls after a warm-up; reported as seconds of audio per second of wall time.
The GPU setting is batch 16 x 10 s; on CPU use a smaller batch (the table and JSON record what was used).

Side-by-side speed (`--speed-table`, on by default): the same batch through our default vocoders (the
trained ones when given, else freshly built from configs/vocoder/*.yaml: speed does not depend on the
weights) and through the peers when their packages import (`--peers vocos,diffwave`), as
../shared/device/peers_gpu.py built them: Vocos (mel-24k config, 13.5 M; fp32 as the issue measured it, and
bf16 autocast, our neural vocoder's inference mode) and DiffWave base (C=64, 30 layers; bf16 autocast; one
network call per step) at 6 and 50 steps, next to our diffusion vocoder at the same numbers of steps. Ratios:
neural / Vocos fp32, diffusion / DiffWave at equal steps, Griffin-Lim / torchaudio's; every row also against our
Griffin-Lim with `--gl-iters` iterations (the `--gl-variants` rows are timed too).

    python benchmarks/vocoders.py --data ../shared/data --splits 3 --no-speed-table --out benchmarks/results/phase.json
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
from audiodiff.runs.vocoder import load_vocoder  # noqa: E402
from audiodiff.vocoders.griffinlim import PHASE_INITS  # noqa: E402

DATASETS = {"ljspeech_mini": "ljspeech_vocoder.yaml", "fsdd": "fsdd_vocoder.yaml"}
# music: the note contracts of the piano and sax recipes; held-out notes are the first `--seconds-music` of each
MUSIC = {"piano": "notes16k_128", "sax": "notes16k_80"}
MUSIC_VALID_FRACTION = 0.1  # split k of the notes uses split seed k (the speech sets: the recipe's seed, then 1000 + k)
# Griffin-Lim variants of the quality table: `init:iterations` (random phase 32 is the shipped vocoder)
GL_VARIANTS = "random:32,random:100,pghi:0,pghi:1,pghi:2,pghi:8,pghi:32"


def gl_variants(spec: str, mel: MelSpec, device) -> list[tuple[str, object]]:
    """`[(label, vocoder)]` for `random:32,pghi:8,...`: our Griffin-Lim with that initial phase and iterations
    (labels `griffinlim-32`, `pghi` for PGHI alone, `pghi+gl-8`, `zeros+gl-8`, `zeros+gl-0`)."""
    out = []
    for item in spec.split(","):
        init, _, iters = item.partition(":")
        if init not in PHASE_INITS or not iters.isdigit():
            raise SystemExit(f"--gl-variants: {item!r} is not INIT:ITERATIONS with INIT in {', '.join(PHASE_INITS)}")
        label = (f"griffinlim-{iters}" if init == "random" else
                 "pghi" if (init, iters) == ("pghi", "0") else f"{init}+gl-{iters}")
        out.append((label, vocoders.build({"name": "griffinlim", "n_iter": int(iters), "nnls_iters": 20,
                                           "init": init}, mel=mel).to(device)))
    return out


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


class Oracle(torch.nn.Module):
    """A decoder that is handed one half of the answer, to tell where a vocoder's loss comes from (`--oracles`).

    `phase="pghi"`: the real STFT magnitude with PGHI's phase (what the phase recovery alone loses);
    `phase="real"`: the contract's mel inverted to a magnitude (clamped pseudo-inverse + NNLS, as Griffin-Lim does)
    with the real phase (what the mel and its inversion alone lose). Neither is a vocoder: both read the audio.
    """

    needs_audio = True

    def __init__(self, mel: MelSpec, phase: str):
        super().__init__()
        self.mel, self.phase = mel, phase
        self.inverse = vocoders.build({"name": "griffinlim", "n_iter": 0, "nnls_iters": 20}, mel=mel)

    def num_parameters(self) -> int:
        return 0

    @torch.no_grad()
    def from_audio(self, wav: torch.Tensor) -> torch.Tensor:
        from audiodiff.vocoders.griffinlim import mel_to_linear
        from audiodiff.vocoders.pghi import pghi_phase

        m = self.mel
        S = m.stft(wav.reshape(1, -1).float())
        if self.phase == "pghi":
            mag, phase = S.abs(), pghi_phase(S.abs(), m.n_fft, m.hop_length, m.window_length)
        else:
            mag = mel_to_linear(m.denormalize(m(wav.reshape(1, -1))).exp(), m, self.inverse.nnls_iters)
            phase = S.angle()
        y = torch.istft(torch.polar(mag, phase), m.n_fft, m.hop_length, m.window_length, window=m.window(wav.device),
                        center=m.center, length=wav.shape[-1])
        return y.unsqueeze(1)


def experiment_cfg(dataset: str) -> dict:
    from omegaconf import OmegaConf

    from audiodiff.cli import compose  # vocoder experiments compose through Hydra (mel contract from configs/mel/)

    return OmegaConf.to_container(compose([f"experiment={Path(DATASETS[dataset]).stem}"]), resolve=True)


def held_out(data_root: Path, dataset: str, cfg: dict, max_utts: int, split_seed: int | None = None) -> list[dict]:
    """The recipe's held-out clips (`split_seed` None: the recipe's own split; else another split of the data)."""
    entries = read_manifest(data_root / dataset / "manifest.jsonl")
    seed = cfg["data"]["split_seed"] if split_seed is None else split_seed
    _, valid = split_manifest(entries, cfg["data"]["valid_fraction"], seed)
    return valid[:max_utts]


# where pYIN reads the real notes at 16 kHz (benchmarks/pitch_ceiling.py: piano 100% within MIDI 21-93, 86.7% over
# the full range); notes outside are left out of the music sets
MUSIC_PITCH_RANGE = {"piano": (21, 93)}


def music_setup(data_root: Path, dataset: str, max_utts: int, split_seed: int,
                all_notes: bool = False) -> tuple[MelSpec, list[dict]]:
    """A music contract and up to `max_utts` held-out notes (each with its MIDI `pitch`); `all_notes`: every
    note, however many (for vocoders without training, every note is unseen)."""
    from omegaconf import OmegaConf

    mel = MelSpec.from_dict(OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "mel" / f"{MUSIC[dataset]}.yaml")))
    lo, hi = MUSIC_PITCH_RANGE.get(dataset, (-1e9, 1e9))
    entries = [e for e in read_manifest(data_root / dataset / "manifest.jsonl") if "pitch" in e
               and lo <= e["pitch"] <= hi]
    if all_notes:
        return mel, entries
    return mel, split_manifest(entries, MUSIC_VALID_FRACTION, split_seed)[1][:max_utts]


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def evaluate(voc, clips: list[torch.Tensor], device, with_pesq: bool, pitches: list | None = None) -> dict:
    """Mean resynthesis metrics over the clips; with `pitches` (MIDI), also the pYIN pitch accuracy of the
    resynthesised notes (the same measure the music recipes score generations with)."""
    rows, outs = [], []
    for wav in clips:
        wav = wav.to(device)[None]
        with torch.inference_mode():
            est = voc.from_audio(wav) if getattr(voc, "needs_audio", False) else voc(voc.mel(wav))
        rows.append(VM.resynthesis_metrics(wav.float().cpu(), est.float().cpu(), voc.mel, with_pesq=with_pesq))
        outs.append(est.float().cpu().reshape(-1)[: wav.shape[-1]].numpy())
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows if r[k] is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    if pitches is not None:
        from audiodiff.evaluation.pitch import pitch_accuracy

        acc = pitch_accuracy(outs, voc.mel.sample_rate, pitches)
        out["pitch_accuracy"] = acc["accuracy"]
        out["pitch_missed"] = sorted(it["asked_midi"] for it in acc["items"] if not it["correct"])  # which notes
    return out


def tiled_mels(mel: MelSpec, clips: list[torch.Tensor], batch: int, seconds: float, device) -> torch.Tensor:
    """Mels `(batch, n_mels, frames)` of `batch` rows of `seconds` of real audio: the clips joined and tiled."""
    T = int(seconds * mel.sample_rate)
    joined = torch.cat(clips)
    wav = joined.repeat(math.ceil(T * batch / joined.numel()))[: T * batch].view(batch, T).to(device)
    with torch.inference_mode():
        return mel(wav)


def speed(voc, clips: list[torch.Tensor], batch: int, seconds: float, device, repeats: int) -> dict:
    mel = tiled_mels(voc.mel, clips, batch, seconds, device)
    r = VM.real_time_factor(lambda: voc(mel), audio_seconds=batch * seconds, repeats=repeats, warmup=1, device=device)
    r.update(batch=batch, seconds=seconds)
    return r


# --------------------------------------------------------------------------- side-by-side speed
def _peer_vocos(device, batch: int, seconds: float, bf16: bool):
    """Vocos (mel-24k config: 100 mels, dim 512, 8 ConvNeXt layers, iSTFT 1024/256), random weights: speed only."""
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    backbone = VocosBackbone(input_channels=100, dim=512, intermediate_dim=1536, num_layers=8).to(device).eval()
    head = ISTFTHead(dim=512, n_fft=1024, hop_length=256, padding="same").to(device).eval()
    sr = 24000
    mel = torch.randn(batch, 100, int(seconds * sr / 256), device=device)

    def run():
        if bf16:   # backbone in bf16, head (iSTFT) in float32: the mode our neural vocoder runs in
            with torch.autocast(device.type, dtype=torch.bfloat16):
                h = backbone(mel)
            return head(h.float())
        return head(backbone(mel))
    params = sum(q.numel() for m in (backbone, head) for q in m.parameters())
    return run, mel.shape[-1] * 256 / sr * batch, params


def _peer_diffwave(device, batch: int, seconds: float, steps: int):
    """DiffWave base (C=64, 30 residual layers, 80 mels, hop 256, 22.05 kHz), random weights: `steps` reverse
    DDPM steps on the training schedule's betas picked evenly (one network call each), under bf16 autocast."""
    from diffwave.model import DiffWave
    from diffwave.params import params

    model = DiffWave(params).to(device).eval()
    frames = int(seconds * params.sample_rate / params.hop_samples)
    mel = torch.randn(batch, params.n_mels, frames, device=device)
    beta = torch.tensor(params.noise_schedule, device=device)
    abar = torch.cumprod(1 - beta, 0)
    ts = torch.linspace(len(beta) - 1, 0, steps).round().long().tolist()

    def run():
        x = torch.randn(batch, frames * params.hop_samples, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for t in ts:
                eps = model(x, mel, torch.full((batch,), t, device=device)).squeeze(1).float()
                x = (x - beta[t] / (1 - abar[t]).sqrt() * eps) / (1 - beta[t]).sqrt()
                if t > 0:
                    x = x + beta[t].sqrt() * torch.randn_like(x)
        return x
    params_n = sum(q.numel() for q in model.parameters())
    return run, frames * params.hop_samples / params.sample_rate * batch, params_n


def speed_table(a, device, batch: int, loaded: list, peers: list[str]) -> list[dict]:
    """Time ours (trained when given, else default configs) and the peers on one batch; add ratios."""
    cfg = experiment_cfg("ljspeech_mini")
    mel = MelSpec.from_dict(cfg["mel"])
    entries = held_out(a.data, "ljspeech_mini", cfg, a.max_utts)
    clips = [_audio.load(e["path"], sample_rate=mel.sample_rate)[0][0] for e in entries]
    m = tiled_mels(mel, clips, batch, a.seconds, device)
    audio_s = batch * m.shape[-1] * mel.hop_length / mel.sample_rate

    def ours_of(name):
        for d, v in loaded:
            if v.name == name and v.mel == mel:
                return v, "trained " + Path(d).as_posix()
        from omegaconf import OmegaConf
        return vocoders.build(OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "vocoder" / f"{name}.yaml")),
                              mel=mel).to(device).eval(), "untrained default config (speed only)"

    cands = []   # (label, fn, audio seconds per call, params, group)
    # Griffin-Lim with --gl-iters first (the row the peers and the other variants are compared with), then the other
    # --gl-variants (PGHI alone, PGHI + k iterations, ...)
    spec = ",".join(dict.fromkeys([f"random:{a.gl_iters}", *a.gl_variants.split(",")]))
    for label, voc in gl_variants(spec, mel, device):
        cands.append((f"ours {label}", lambda voc=voc: voc(m), audio_s, 0, "gl"))
    tgl = TorchaudioGriffinLim(mel, a.gl_iters).to(device)
    cands.append((f"peer torchaudio-gl-{a.gl_iters}", lambda: tgl(m), audio_s, 0, "gl"))
    neural, how = ours_of("neural")
    cands.append((f"ours neural ({how})", lambda: neural(m), audio_s, neural.num_parameters(), "neural"))
    diff, how = ours_of("diffusion")
    for k in a.diffusion_steps:
        def run(k=k):
            diff.steps = k
            return diff(m)
        cands.append((f"ours diffusion {k} steps ({how})", run, audio_s, diff.num_parameters(), f"diff{k}"))
    if "vocos" in peers:
        for bf16 in (False, True):
            try:
                fn, sec, n = _peer_vocos(device, batch, a.seconds, bf16)
                cands.append((f"peer Vocos mel-24k {'bf16' if bf16 else 'fp32'}", fn, sec, n,
                              "neural" if not bf16 else "vocos-bf16"))
            except ImportError as e:
                print(f"peer vocos skipped: {e}")
                break
    if "diffwave" in peers:
        for k in a.diffusion_steps:
            try:
                fn, sec, n = _peer_diffwave(device, batch, a.seconds, k)
                cands.append((f"peer DiffWave base {k} steps", fn, sec, n, f"diff{k}"))
            except ImportError as e:
                print(f"peer diffwave skipped: {e}")
                break
    rows = []
    for label, fn, sec, n, group in cands:
        try:
            r = VM.real_time_factor(fn, audio_seconds=sec, repeats=a.repeats, warmup=1, device=device)
            rows.append(dict(vocoder=label, group=group, params=n, batch=batch, audio_s=round(sec, 2), **r))
        except Exception as e:   # a peer that fails must not lose the other rows
            rows.append(dict(vocoder=label, group=group, error=f"{type(e).__name__}: {e}"[:300]))
        print(json.dumps(rows[-1]), flush=True)
    base = [q for q in rows if q["vocoder"] == f"ours griffinlim-{a.gl_iters}" and "error" not in q]
    for r in rows:    # ours / the peer of its group (speed-up factor > 1: ours is faster), and / our Griffin-Lim
        if base and "error" not in r:
            r["speedup_vs_gl"] = r["x_real_time"] / base[0]["x_real_time"]
        peer = [q for q in rows if q["group"] == r["group"] and q["vocoder"].startswith("peer") and "error" not in q]
        if r["vocoder"].startswith("ours") and peer and "error" not in r:
            r["speedup_vs_peer"] = r["x_real_time"] / peer[0]["x_real_time"]
            r["peer"] = peer[0]["vocoder"]
    return rows


def summarise(per_split: list[dict]) -> dict:
    """Per vocoder and metric: the mean over splits and the spread (half the range), None where unmeasured."""
    out = {}
    for name in per_split[0]["results"]:
        out[name] = {}
        for k, v in per_split[0]["results"][name].items():
            if not isinstance(v, (int, float)) or k in ("params", "eval_wall_s"):
                continue
            vals = [s["results"][name].get(k) for s in per_split]
            vals = [x for x in vals if x is not None]
            if vals:
                out[name][k] = {"mean": sum(vals) / len(vals), "spread": (max(vals) - min(vals)) / 2,
                                "values": vals}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--datasets", nargs="+", default=[*DATASETS, *MUSIC], choices=[*DATASETS, *MUSIC])
    p.add_argument("--splits", type=int, default=1, help="held-out splits (1: the recipe's; 3 for a spread)")
    p.add_argument("--gl-variants", default=GL_VARIANTS, help="Griffin-Lim rows, INIT:ITERATIONS comma list")
    p.add_argument("--seconds-music", type=float, default=2.0, help="the first seconds of each held-out note")
    p.add_argument("--music-notes", choices=["held-out", "all"], default="held-out",
                   help="music sets: --max-utts held-out notes per split, or every note in one set (untrained "
                        "vocoders only; --splits does not apply)")
    p.add_argument("--neural", nargs="*", default=[], help="trained neural vocoder dirs (matched to a dataset by mel)")
    p.add_argument("--diffusion", nargs="*", default=[], help="trained diffusion vocoder dirs")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=None, help="speed batch (default 16 on GPU, 2 on CPU)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gl-iters", type=int, default=32)
    p.add_argument("--max-utts", type=int, default=8)
    p.add_argument("--no-pesq", action="store_true")
    p.add_argument("--oracles", action="store_true",
                   help="add two rows that are handed half the answer: the real magnitude with PGHI phase, and the "
                        "mel-inverted magnitude with the real phase (where a decoder's loss comes from)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--peers", default="vocos,diffwave", help="speed peers: comma list of vocos,diffwave or 'none'")
    p.add_argument("--diffusion-steps", type=int, nargs="+", default=[6, 50], help="steps timed in the speed table")
    p.add_argument("--no-speed-table", action="store_true", help="skip the side-by-side speed table")
    p.add_argument("--no-quality", action="store_true", help="skip the held-out quality table")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    peers = [] if a.peers == "none" else a.peers.split(",")
    if set(peers) - {"vocos", "diffwave"}:
        p.error(f"unknown peer(s) {sorted(set(peers) - {'vocos', 'diffwave'})}; allowed: vocos, diffwave, none")
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if a.device == "auto" else a.device))
    batch = a.batch or (16 if device.type == "cuda" else 2)
    trained = [(d, "neural") for d in a.neural] + [(d, "diffusion") for d in a.diffusion]
    loaded = [(d, load_vocoder(d, device=device)) for d, _ in trained]

    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
               "torch": torch.__version__, "speed_batch": batch, "speed_seconds": a.seconds,
               "gl_iters": a.gl_iters, "datasets": {}}
    for ds in ([] if a.no_quality else a.datasets):
        per_split = []
        all_notes = ds in MUSIC and a.music_notes == "all"
        for split in range(1 if all_notes else a.splits):  # every note: one set, whatever the split
            seed = None if split == 0 else 1000 + split  # split 0: the recipe's own held-out clips
            if ds in MUSIC:
                mel, entries = music_setup(a.data, ds, a.max_utts, split, all_notes=all_notes)
                pitches = [e["pitch"] for e in entries]
                seconds = a.seconds_music
            else:
                cfg = experiment_cfg(ds)
                entries = held_out(a.data, ds, cfg, a.max_utts, seed)
                mel = MelSpec.from_dict(cfg["mel"])
                pitches, seconds = None, None
            cands = gl_variants(a.gl_variants, mel, device)
            cands.append((f"torchaudio-gl-{a.gl_iters}", TorchaudioGriffinLim(mel, a.gl_iters).to(device)))
            if a.oracles:
                cands += [("oracle: real magnitude + PGHI phase", Oracle(mel, "pghi")),
                          ("oracle: mel-inverted magnitude + real phase", Oracle(mel, "real"))]
            for d, v in loaded:
                if v.mel == mel:
                    cands.append((f"{v.name} ({Path(d).name if Path(d).name != 'vocoder' else Path(d).parent.name})", v))
            clips = [_audio.load(e["path"], sample_rate=mel.sample_rate)[0][0] for e in entries]
            if seconds:
                clips = [c[: int(seconds * mel.sample_rate)] for c in clips]
            rows = {}
            if pitches is not None:
                from audiodiff.evaluation.pitch import pitch_accuracy

                rows["real notes (no vocoder)"] = {"pitch_accuracy": pitch_accuracy(
                    [c.numpy() for c in clips], mel.sample_rate, pitches)["accuracy"]}
            for name, voc in cands:
                t0 = time.time()
                q = evaluate(voc, clips, device, with_pesq=not a.no_pesq, pitches=pitches)
                rows[name] = {**q, "params": voc.num_parameters(), "eval_wall_s": time.time() - t0}
                if split == 0 and not getattr(voc, "needs_audio", False):
                    s = speed(voc, clips, batch, a.seconds, device, a.repeats)
                    rows[name].update(x_real_time=s["x_real_time"], speed=s)
                print(f"{ds} split {split} {name}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in rows[name].items() if isinstance(v, float) and k != "eval_wall_s"),
                    flush=True)
            per_split.append({"held_out": [Path(e["path"]).name for e in entries], "mel": mel.to_dict(),
                              "results": rows})
        results["datasets"][ds] = {"splits": per_split, "summary": summarise(per_split)}

    print(f"device: {results['device']}")
    if results["datasets"]:
        print(f"quality: held-out clips, mean over {a.splits} split(s) (+- half the range across splits); "
              f"x real time: batch {batch} x {a.seconds:g} s")
        cols = ["mel_l1", "mrstft", "lsd", "pesq", "stoi", "estoi", "pitch_accuracy", "x_real_time"]
        print(f"{'dataset':14} {'vocoder':26} " + " ".join(f"{c:>15}" for c in cols))
        for ds, d in results["datasets"].items():
            for name, r in d["summary"].items():
                cells = []
                for c in cols:
                    m = r.get(c)
                    cells.append(f"{'-':>15}" if m is None else
                                 f"{m['mean']:9.3f}+-{m['spread']:<5.3f}" if m.get("spread") else f"{m['mean']:15.3f}")
                print(f"{ds:14} {name:26} " + " ".join(cells))
    if not a.no_speed_table:
        print(f"\nside-by-side speed: batch {batch} x {a.seconds:g} s (ljspeech contract 22.05 kHz; Vocos at its 24 kHz)")
        rows = speed_table(a, device, batch, loaded, peers)
        results["speed_table"] = rows
        head = f"{'vocoder':62} {'params':>8} {'x real time':>12} {'vs peer':>8} {'vs GL-' + str(a.gl_iters):>8}"
        print(head)
        print("-" * len(head))
        for r in rows:
            if "error" in r:
                print(f"{r['vocoder']:62} ERROR {r['error']}")
                continue
            ratio = f"{r['speedup_vs_peer']:7.2f}x" if "speedup_vs_peer" in r else ""
            vs_gl = f"{r['speedup_vs_gl']:7.2f}x" if "speedup_vs_gl" in r else ""
            print(f"{r['vocoder']:62} {r['params'] / 1e6:7.2f}M {r['x_real_time']:12.4g} {ratio:>8} {vs_gl:>8}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {a.out}")
    return results


if __name__ == "__main__":
    main()
