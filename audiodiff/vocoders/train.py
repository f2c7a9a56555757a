"""Train a vocoder on a manifest: the Vocos GAN recipe (Siuzdenko et al. 2023) or a diffusion vocoder.

`train_vocoder(cfg)` reads top to bottom: data (random segments of the manifest's audio), mel contract,
generator (`vocoders.build(cfg["vocoder"])`), for `neural` the HiFi-GAN multi-period and UnivNet
multi-resolution discriminators, AdamW with exponential / cosine decay, then the loop: discriminator
hinge step, generator step on `w_mel * mel L1 + w_mrstft * MR-STFT + w_adv * hinge + w_fm * feature
matching`; for `diffusion` the denoising loss of :class:`audiodiff.objectives.Denoiser` with the mel as
`local` condition. Periodic checkpoints go through :func:`audiodiff.runs.checkpoint.save_checkpoint`,
a run resumes from its `checkpoints/last`, and `train.init_from` fine-tunes a trained vocoder. The run directory
is handled as by :func:`audiodiff.training.loop.train`: locked while it trains (`run_dir/.lock`), cleared of what
an interrupted run left at start, `metrics.jsonl` (one row per `log_every` steps) fsynced before each checkpoint
and trimmed to the resumed step, and `train.resume=false` refused on a run that already holds checkpoints.

Config (see `configs/experiment/ljspeech_vocoder.yaml`)::

    task: vocoder
    run_dir: runs/ljspeech_vocoder
    data: {manifest, valid_fraction, split_seed, segment_frames, batch_size, num_workers, max_items}
    mel: {MelSpec fields}
    vocoder: {name: neural | diffusion, ...constructor settings}
    train: {steps, device, seed, lr, betas, weight_decay, lr_schedule, lr_gamma, lr_min_ratio, warmup_steps,
            grad_clip, loss_weights: {mel, mrstft, adv, fm}, mrstft_resolutions, disc_start, discriminator: {...},
            ema_decay, amp, ckpt_every, log_every, valid_every, keep, resume, init_from, max_seconds}

Command line (the `audiodiff train experiment=...` CLI calls the same function)::

    python -m audiodiff.vocoders.train configs/experiment/ljspeech_vocoder.yaml train.steps=2000 run_dir=runs/x
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .. import audio as _audio
from .. import losses
from ..data.datasets import EpochSampler, WaveformDataset, collate
from ..evaluation import vocoder_metrics as VM  # validation distances (the losses come from audiodiff.losses)
from ..mel import MelSpec
from ..runs.meta import header
from ..runs.vocoder import load_vocoder
from . import build
from .base import Vocoder, VocoderError
from .neural import MultiPeriodDiscriminator, MultiResolutionDiscriminator
from ..errors import AudiodiffError

log = logging.getLogger(__name__)

TRAINABLE = ("neural", "diffusion")
LR_SCHEDULES = ("constant", "exponential", "cosine")

TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 100_000, "device": "auto", "seed": 0, "lr": 5e-4, "betas": [0.8, 0.9], "weight_decay": 0.01,
    "lr_schedule": "cosine", "lr_gamma": 0.999996, "lr_min_ratio": 0.0, "warmup_steps": 0, "grad_clip": None,
    "loss_weights": {"mel": 45.0, "mrstft": 1.0, "adv": 1.0, "fm": 2.0}, "mrstft_resolutions": None,
    "disc_start": 0, "discriminator": {}, "ema_decay": None, "amp": "bf16", "ckpt_every": 5000,
    "log_every": 100, "valid_every": None, "keep": 3, "resume": True, "init_from": None, "progress": True,
    "max_seconds": None,
}
DATA_DEFAULTS: dict[str, Any] = {
    "valid_fraction": 0.05, "split_seed": 0, "segment_frames": 32, "batch_size": 16, "num_workers": 0,
    "max_items": None, "valid_items": 4, "valid_seconds": 5.0,
}
DISC_DEFAULTS: dict[str, Any] = {
    "periods": [2, 3, 5, 7, 11], "mpd_channels": [32, 128, 512, 1024],
    "resolutions": [[1024, 256, 1024], [2048, 512, 2048], [512, 128, 512]], "mrd_channels": 32,
}


class VocoderTrainError(AudiodiffError, ValueError):
    """The vocoder training config is missing a field or holds a value it cannot use."""


# ---------------------------------------------------------------------------- data
def _loop(loader, sampler):
    """`(epoch, (B, segment) waveforms)` forever; the sampler's `(epoch, index)` pairs reseed the crops each epoch."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        for batch in loader:
            yield epoch, batch["audio"][:, 0]
        epoch += 1


# ---------------------------------------------------------------------------- losses
def discriminator_hinge(real_outs, fake_outs) -> torch.Tensor:
    """Hinge loss of the discriminators (Lim & Ye 2017): `mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))`."""
    loss = 0.0
    for (dr, _), (df, _) in zip(real_outs, fake_outs):
        loss = loss + F.relu(1 - dr).mean() + F.relu(1 + df).mean()
    return loss / len(real_outs)


def generator_hinge(fake_outs) -> torch.Tensor:
    """Generator hinge loss `mean(relu(1 - D(G(z))))` averaged over discriminators (as Vocos)."""
    return sum(F.relu(1 - df).mean() for df, _ in fake_outs) / len(fake_outs)


def feature_matching(real_outs, fake_outs) -> torch.Tensor:
    """Mean L1 between discriminator feature maps of real (fixed) and generated audio (Larsen et al. 2016)."""
    loss, n = 0.0, 0
    for (_, fr), (_, ff) in zip(real_outs, fake_outs):
        for a, b in zip(fr, ff):
            loss = loss + (a.detach() - b).abs().mean()
            n += 1
    return loss / max(n, 1)


# ---------------------------------------------------------------------------- config helpers
def _plain(cfg) -> dict:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def _merged(defaults: dict, given: dict | None, where: str) -> dict:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise VocoderTrainError(f"unknown {where} settings {unknown}; allowed: {sorted(defaults)}")
    return {**defaults, **given}


def resolve_config(cfg) -> dict:
    """Check a vocoder training config and fill in defaults; return a plain dict."""
    cfg = _plain(cfg)
    if cfg.get("task", "vocoder") != "vocoder":
        raise VocoderTrainError(f"train_vocoder needs task: vocoder; got task: {cfg.get('task')!r}")
    for key in ("data", "mel", "vocoder"):
        if key not in cfg:
            raise VocoderTrainError(f"vocoder training config lacks '{key}'; needs task, run_dir, data, mel, vocoder, train")
    run_dir = cfg.get("run_dir") or (cfg.get("train") or {}).get("run_dir")
    if not run_dir:
        raise VocoderTrainError("vocoder training config lacks 'run_dir'")
    train = dict(cfg.get("train") or {})
    train.pop("run_dir", None)
    train = _merged(TRAIN_DEFAULTS, train, "train")
    train["loss_weights"] = _merged(TRAIN_DEFAULTS["loss_weights"], train["loss_weights"], "train.loss_weights")
    train["discriminator"] = _merged(DISC_DEFAULTS, train["discriminator"], "train.discriminator")
    if train["lr_schedule"] not in LR_SCHEDULES:
        raise VocoderTrainError(f"train.lr_schedule {train['lr_schedule']!r} is not allowed; allowed: {LR_SCHEDULES}")
    if train["amp"] not in ("bf16", None, "none"):
        raise VocoderTrainError(f"train.amp {train['amp']!r} is not allowed; allowed: ['bf16', 'none']")
    data = _merged({"manifest": None, **DATA_DEFAULTS}, cfg["data"], "data")
    if not data["manifest"]:
        raise VocoderTrainError("data.manifest is required (a JSONL manifest of the training audio)")
    voc = dict(cfg["vocoder"])
    if voc.get("name") not in TRAINABLE:
        raise VocoderTrainError(f"vocoder.name {voc.get('name')!r} cannot be trained; allowed: {list(TRAINABLE)}")
    MelSpec.from_dict(dict(cfg["mel"]))  # validates
    return {**cfg, "task": "vocoder", "run_dir": str(run_dir), "data": data, "train": train, "vocoder": voc,
            "mel": dict(cfg["mel"])}


def _lr_lambda(t: dict):
    steps, warm, kind = int(t["steps"]), int(t["warmup_steps"]), t["lr_schedule"]
    gamma, floor = float(t["lr_gamma"]), float(t["lr_min_ratio"])

    def f(step: int) -> float:
        w = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
        if kind == "exponential":
            return w * max(gamma ** step, floor)
        if kind == "cosine":
            p = min(1.0, step / max(steps, 1))
            return w * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))
        return w

    return f


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(name)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise VocoderTrainError(f"train.device={name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return d


def _rng_state() -> dict:
    s = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"].cpu())
    random.setstate(_tuplify(s["python"]))
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in s["cuda"]])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


# ---------------------------------------------------------------------------- validation
@torch.no_grad()
def validate(voc: Vocoder, clips: list[torch.Tensor], device) -> dict:
    """Mean mel L1 / MR-STFT / LSD of `voc` resynthesising each clip `(T,)` from its mel."""
    voc.eval()
    acc = {"mel_l1": 0.0, "mrstft": 0.0, "lsd": 0.0}
    for wav in clips:
        wav = wav.to(device)[None]
        est = voc(voc.mel(wav))
        m = VM.resynthesis_metrics(wav, est, voc.mel, with_pesq=False)
        for k in acc:
            acc[k] += m[k] / len(clips)
    voc.train()
    return acc


# ---------------------------------------------------------------------------- training
def train_vocoder(cfg) -> Path:
    """Train (or resume, or fine-tune) a `neural` or `diffusion` vocoder; return the run directory.

    Args:
        cfg: dict or OmegaConf config with `task: vocoder`, `run_dir`, `data`, `mel`, `vocoder`, `train`
            (module docstring). Writes `run_dir/config.yaml`, checkpoints, TensorBoard logs under
            `run_dir/tb`, `run_dir/metrics.jsonl`, and the final vocoder folder `run_dir/vocoder` (loadable with
            `load_vocoder`).

    Raises:
        VocoderTrainError: a missing or bad setting (nothing is written).
        RunDirBusyError: another live process is training into `run_dir` (the message names its pid and host).
        RunDirExistsError: `train.resume=false` on a run directory that already holds checkpoints.
        CheckpointError: the checkpoint to resume from is damaged (the message names the file).
    """
    from ..training.loop import lock_run_dir

    cfg = resolve_config(cfg)
    device = _device(cfg["train"]["device"])
    lock = lock_run_dir(Path(cfg["run_dir"]), 0, "cpu")  # one process: the lock is taken here or raises
    try:
        return _train_vocoder(cfg, device)
    finally:
        lock.release()


def _train_vocoder(cfg: dict, device: torch.device) -> Path:
    """The body of :func:`train_vocoder`, run while `run_dir` is locked."""
    from ..data.manifest import read_manifest, split_manifest
    from ..runs.checkpoint import clean_run_dir, load_checkpoint, save_checkpoint, scan_checkpoints
    from ..training.loop import RunDirExistsError, trim_metrics

    run_dir, data, t, lw = Path(cfg["run_dir"]), cfg["data"], cfg["train"], cfg["train"]["loss_weights"]

    # ---- the run directory (under the lock): never overwrite a run, clear what an interrupted run left
    held = [int(d.name) for d, problem in scan_checkpoints(run_dir) if problem is None or problem[0] == "damaged"]
    if held and not t["resume"]:
        raise RunDirExistsError(
            f"{run_dir}: already holds checkpoints for steps {held} and train.resume=false would overwrite them; "
            f"train into a new run_dir, or set train.resume=true to continue from step {held[-1]}")
    clean_run_dir(run_dir)  # logs each removal
    torch.manual_seed(int(t["seed"]))
    random.seed(int(t["seed"]))
    mel = MelSpec.from_dict(cfg["mel"])
    kind = cfg["vocoder"]["name"]

    # ---- data
    entries = read_manifest(data["manifest"])
    if data["max_items"]:
        entries = entries[: int(data["max_items"])]
    train_entries, valid_entries = split_manifest(entries, float(data["valid_fraction"]), int(data["split_seed"]))
    segment = int(data["segment_frames"]) * mel.hop_length
    # random crops (zero-padded when a clip is shorter), resampled to the mel's rate; unreadable files are
    # reported and skipped by the dataset
    ds = WaveformDataset(train_entries, mel.sample_rate, segment_samples=segment, random_crop=True,
                         seed=int(t["seed"]))
    sampler = EpochSampler(len(ds), shuffle=True, seed=int(t["seed"]))
    bs = int(data["batch_size"])
    loader = DataLoader(ds, batch_size=bs, sampler=sampler, drop_last=len(ds) >= bs, collate_fn=collate,
                        num_workers=int(data["num_workers"]), pin_memory=device.type == "cuda",
                        persistent_workers=int(data["num_workers"]) > 0)
    max_valid = int(float(data["valid_seconds"]) * mel.sample_rate)
    valid_clips = []
    for e in valid_entries:
        if len(valid_clips) == int(data["valid_items"]):
            break
        try:
            valid_clips.append(_audio.load(e["path"], sample_rate=mel.sample_rate)[0][0, :max_valid])
        except _audio.AudioError as err:
            log.warning("validation: skipping unreadable file %s", err)

    # ---- models
    voc = build(cfg["vocoder"], mel=mel).to(device)
    if t["init_from"]:
        src = load_vocoder(t["init_from"])
        src.mel.check_compatible(mel, what=f"init_from {t['init_from']} mel contract and this run's")
        if src.name != kind or src.config() != voc.config():
            raise VocoderTrainError(f"init_from {t['init_from']} is a {src.name!r} vocoder with config {src.config()}; "
                                    f"this run builds {kind!r} with {voc.config()}")
        voc.load_state_dict(src.state_dict())
        log.info("initialised the vocoder from %s", t["init_from"])
    voc.train()
    gan = kind == "neural" and (lw["adv"] > 0 or lw["fm"] > 0)
    dcfg = t["discriminator"]
    discs = None
    if gan:
        discs = torch.nn.ModuleDict({
            "mpd": MultiPeriodDiscriminator(dcfg["periods"], dcfg["mpd_channels"]),
            "mrd": MultiResolutionDiscriminator(dcfg["resolutions"], dcfg["mrd_channels"]),
        }).to(device)
    ema = None
    if t["ema_decay"]:
        from ..training.ema import EMA

        ema = EMA(voc, float(t["ema_decay"]))

    opt_kw = dict(lr=float(t["lr"]), betas=tuple(t["betas"]), weight_decay=float(t["weight_decay"]))
    opt_g = torch.optim.AdamW(voc.parameters(), **opt_kw)
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, _lr_lambda(t))
    opt_d = sched_d = None
    if discs is not None:
        opt_d = torch.optim.AdamW(discs.parameters(), **opt_kw)
        sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, _lr_lambda(t))

    # ---- resume
    step = 0
    if t["resume"] and any(problem is None or problem[0] == "damaged" for _, problem in scan_checkpoints(run_dir)):
        ck = load_checkpoint(run_dir, map_location=device, kind="vocoder")  # RunKindError for a diffusion run
        ts = ck["train_state"] or {}
        if ck["mel"] is not None:
            ck["mel"].check_compatible(mel, what=f"resumed run {run_dir} mel contract and the config's")
        voc.load_state_dict(ck["model"])
        if ema is not None and ck["ema"] is not None:
            ema.load_state_dict(ck["ema"], ts.get("ema_updates", 0))
        opt_g.load_state_dict(ts["opt_g"])
        sched_g.load_state_dict(ts["sched_g"])
        if discs is not None and "disc" in ts:
            discs.load_state_dict(ts["disc"])
            opt_d.load_state_dict(ts["opt_d"])
            sched_d.load_state_dict(ts["sched_d"])
        if "rng" in ts:
            _set_rng_state(ts["rng"])
        step = int(ck["step"])
        log.info("resumed %s at step %d", run_dir, step)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_config(run_dir, cfg)
    trim_metrics(run_dir / "metrics.jsonl", step)  # rows after the resumed step are trained (and logged) again

    res = [tuple(r) for r in (t["mrstft_resolutions"] or losses.DEFAULT_RESOLUTIONS)]
    amp = t["amp"] == "bf16" and device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else _null
    clip = float(t["grad_clip"]) if t["grad_clip"] else math.inf
    meta = {**header("vocoder"), "vocoder": {"name": kind, "config": voc.config()},
            "sample_rate": mel.sample_rate, "num_parameters": voc.num_parameters()}

    def checkpoint():
        state = {"opt_g": opt_g.state_dict(), "sched_g": sched_g.state_dict(), "rng": _rng_state(), "step": step}
        if discs is not None:
            state.update(disc=discs.state_dict(), opt_d=opt_d.state_dict(), sched_d=sched_d.state_dict())
        if ema is not None:
            state["ema_updates"] = ema.num_updates
        metrics_file.flush()  # rows up to a checkpoint survive a kill -9
        os.fsync(metrics_file.fileno())
        writer.flush()
        save_checkpoint(run_dir, step, model=voc.state_dict(), ema=ema.state_dict() if ema is not None else None,
                        train_state=state, mel=mel, meta=meta, keep=t["keep"])

    writer = _writer(run_dir, purge_step=step + 1 if step else None)
    metrics_file = open(run_dir / "metrics.jsonl", "a")
    from tqdm.auto import tqdm

    bar = tqdm(total=int(t["steps"]), initial=step, disable=not t["progress"], desc=f"vocoder:{kind}",
               dynamic_ncols=True)
    t0, bad_steps, running = time.time(), 0, {}
    started, first_step = time.perf_counter(), step   # for train.max_seconds and the closing line
    valid_every = int(t["valid_every"] or t["ckpt_every"])
    for epoch, wav in _loop(loader, sampler):
        if step >= int(t["steps"]):
            break
        wav = wav.to(device, non_blocking=True).unsqueeze(1)  # (B, 1, segment)
        with torch.no_grad():
            target_mel = mel(wav)  # (B, n_mels, frames)
        logs = {}
        if kind == "diffusion":
            with autocast():
                # segment = frames * hop samples <-> the first `frames` mel frames, as at synthesis
                loss_g = voc.denoiser.loss(wav, local=target_mel[..., :-1])
            logs["loss/diffusion"] = loss_g.detach()
        else:
            with autocast():
                fake = voc.synthesize(target_mel)[..., :segment].float()
            use_gan = discs is not None and step >= int(t["disc_start"])
            if use_gan:  # discriminator step
                with autocast():
                    outs_r = [o for d in discs.values() for o in d(wav)]
                    outs_f = [o for d in discs.values() for o in d(fake.detach())]
                loss_d = discriminator_hinge(outs_r, outs_f)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                logs["grad_norm/disc"] = torch.nn.utils.clip_grad_norm_(discs.parameters(), clip)
                opt_d.step()
                logs["loss/disc"] = loss_d.detach()
            loss_mel = (mel.log_mel(wav[:, 0]) - mel.log_mel(fake[:, 0])).abs().mean()
            loss_mr = losses.mrstft_distance(wav, fake, res)
            loss_g = lw["mel"] * loss_mel + lw["mrstft"] * loss_mr
            logs["loss/mel_l1"], logs["loss/mrstft"] = loss_mel.detach(), loss_mr.detach()
            if use_gan:
                with autocast():
                    outs_r = [o for d in discs.values() for o in d(wav)]
                    outs_f = [o for d in discs.values() for o in d(fake)]
                adv, fm = generator_hinge(outs_f), feature_matching(outs_r, outs_f)
                loss_g = loss_g + lw["adv"] * adv + lw["fm"] * fm
                logs["loss/adv"], logs["loss/fm"] = adv.detach(), fm.detach()
        if not torch.isfinite(loss_g):
            bad_steps += 1
            log.warning("step %d: non-finite generator loss %s; skipping the update (%d in a row)",
                        step, float(loss_g), bad_steps)
            if bad_steps >= 10:
                raise FloatingPointError(f"vocoder training diverged: 10 non-finite losses in a row at step {step}")
            opt_g.zero_grad(set_to_none=True)
            continue
        bad_steps = 0
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        logs["grad_norm/gen"] = torch.nn.utils.clip_grad_norm_(voc.parameters(), clip)
        opt_g.step()
        sched_g.step()
        if sched_d is not None:
            sched_d.step()
        if ema is not None:
            ema.update(voc)
        step += 1
        bar.update(1)
        logs["loss/gen"] = loss_g.detach()
        for k, v in logs.items():   # summed on the device: reading them every step would stall a GPU twice a step
            running[k] = running.get(k, 0.0) + v.detach().float()
        running["_n"] = running.get("_n", 0) + 1
        out_of_time = bool(t["max_seconds"]) and time.perf_counter() - started > float(t["max_seconds"])
        if step % int(t["log_every"]) == 0 or step == int(t["steps"]) or out_of_time:
            n = running.pop("_n")
            means = {k: float(v) / n for k, v in running.items()}
            running = {}
            means["lr"] = sched_g.get_last_lr()[0]
            means["speed/steps_per_s"] = n / max(time.time() - t0, 1e-9)
            t0 = time.time()
            for k, v in means.items():
                writer.add_scalar(k, v, step)
            metrics_file.write(json.dumps({"step": step, **means}) + "\n")
            bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in means.items() if k.startswith("loss/")})
        if valid_clips and (step % valid_every == 0 or step == int(t["steps"]) or out_of_time):
            scores = validate(ema.model if ema is not None else voc, valid_clips, device)
            for k, v in scores.items():
                writer.add_scalar(f"valid/{k}", v, step)
            log.info("step %d valid %s", step, scores)
            bar.write(f"step {step} valid " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        if step % int(t["ckpt_every"]) == 0 or step == int(t["steps"]) or out_of_time:
            checkpoint()
        if out_of_time:
            log.info("train.max_seconds=%s reached: stopped at step %d of %d (re-run to continue)",
                     t["max_seconds"], step, t["steps"])
            bar.write(f"train.max_seconds={t['max_seconds']} reached at step {step} of {t['steps']}: checkpoint "
                      f"written; re-run to continue")
            break
    bar.close()
    writer.close()
    metrics_file.close()
    took = time.perf_counter() - started
    bar.write(f"vocoder:{kind} trained steps {first_step}->{step} in {took:.0f} s "
              f"({(step - first_step) / max(took, 1e-9):.2f} steps/s, batch {bs} x {segment} samples)")
    final = ema.model if ema is not None else voc
    final.save(run_dir / "vocoder")
    return run_dir


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _writer(run_dir: Path, purge_step: int | None = None):
    """TensorBoard writer; on resume `purge_step` hides the events logged after the checkpoint (logged again)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)


def _write_config(run_dir: Path, cfg: dict) -> None:
    from omegaconf import OmegaConf

    path = run_dir / "config.yaml"
    if not path.exists():
        OmegaConf.save(OmegaConf.create(cfg), path)


def load_config(path, overrides=()):
    """A vocoder experiment file (a complete config of its own) with `key=value` dot-list overrides merged in."""
    from omegaconf import OmegaConf

    return OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides)))


def main(argv: list[str] | None = None) -> None:
    """`python -m audiodiff.vocoders.train CONFIG.yaml [key=value ...]` (OmegaConf dot-list overrides)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m audiodiff.vocoders.train CONFIG.yaml [key=value ...]")
    cfg = load_config(argv[0], argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = train_vocoder(cfg)
    print(f"vocoder run: {out}  (load with audiodiff.vocoders.load_vocoder('{out}/vocoder'))")


if __name__ == "__main__":
    main()


__all__ = ["train_vocoder", "resolve_config", "discriminator_hinge", "generator_hinge",
           "feature_matching", "validate", "VocoderTrainError", "VocoderError"]
