"""`train(cfg)`: one readable training loop for waveform and mel diffusion models.

Reads top to bottom: resolve the config, build data, network, denoiser, optimizer, EMA; resume from the
run's last checkpoint when there is one; then loop with bf16 autocast on CUDA, gradient accumulation and
clipping, warm-up + cosine learning rate, a NaN guard, periodic atomic checkpoints, TensorBoard and a
progress bar. Under `torchrun` it runs DistributedDataParallel (NCCL on GPU, gloo on CPU).

Exact resume: the checkpoint holds model, EMA, optimizer, scheduler, step, the data position (epoch and
batch within it) and the state of the generator that draws noise levels and noise, so a run killed at
any point and resumed reproduces the uninterrupted run's losses.
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

import numpy as np
import torch
from torch import nn

from .. import models, objectives
from ..mel import MelSpec
from . import distributed as dist_utils
from .checkpoint import load_checkpoint, save_checkpoint, list_checkpoints
from .ema import EMA

log = logging.getLogger("audiodiff.train")
CONDITIONS = ("labels", "pitch", "vector", "local")  # batch keys passed to the network

TRAIN_DEFAULTS = {
    "steps": 1000, "batch_size": 16, "lr": 2e-4, "weight_decay": 0.0, "betas": [0.9, 0.99],
    "warmup_steps": 100, "min_lr_ratio": 0.1, "grad_clip": 1.0, "accumulate": 1,
    "ema_decay": 0.999, "ckpt_every": 500, "keep_checkpoints": 3, "log_every": 10,
    "sample_every": 0, "sample_steps": 25, "num_workers": 0, "precision": "auto",
    "max_bad_steps": 5, "device": "auto", "compile": False, "resume": True, "progress": True,
    "init_from": None, "lora": None, "seed": 0, "max_seconds": None,
}


class TrainingError(RuntimeError):
    """Training cannot go on (repeated non-finite losses, bad config); the message says why and what to do."""


# ---------------------------------------------------------------------------------------------- config
def resolve_config(cfg) -> dict:
    """Plain-dict config with training defaults filled in (accepts a dict or an OmegaConf DictConfig)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    cfg = json.loads(json.dumps(cfg))  # deep copy, plain values only
    unknown = sorted(set(cfg.get("train", {})) - set(TRAIN_DEFAULTS))
    if unknown:
        raise TrainingError(f"unknown train settings {unknown}; allowed: {sorted(TRAIN_DEFAULTS)}")
    cfg["train"] = {**TRAIN_DEFAULTS, **cfg.get("train", {})}
    for key in ("model", "data", "run_dir"):
        if key not in cfg:
            raise TrainingError(f"config lacks '{key}'; a training config needs model, data, run_dir (see configs/)")
    cfg.setdefault("objective", {"parameterization": "edm"})
    cfg.setdefault("schedule", {"name": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0})
    cfg.setdefault("sampler", {"method": "dpmpp_2m", "steps": 25})
    return cfg


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"train.device={name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return name


def lr_at(step: int, t: dict) -> float:
    """Linear warm-up to `lr`, then cosine decay to `lr * min_lr_ratio` at `steps`."""
    if t["warmup_steps"] > 0 and step < t["warmup_steps"]:
        return t["lr"] * (step + 1) / t["warmup_steps"]
    span = max(1, t["steps"] - t["warmup_steps"])
    progress = min(1.0, (step - t["warmup_steps"]) / span)
    return t["lr"] * (t["min_lr_ratio"] + (1 - t["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * progress)))


# ---------------------------------------------------------------------------------------------- data order
class BatchOrder:
    """Deterministic, resumable batch order: epoch e is a permutation seeded by (seed, e), cut into batches.

    The permutation and its split across ranks are :class:`audiodiff.data.datasets.EpochSampler`'s (rank r takes
    every world-th item). `position` = (epoch, batch index) is stored in checkpoints so a resumed run continues
    with the next batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        from ..data.datasets import EpochSampler

        if n < batch_size * world:
            raise TrainingError(f"the dataset has {n} items, fewer than one global batch ({batch_size} x {world} ranks); "
                                "lower train.batch_size or add data")
        self.sampler = EpochSampler(n, shuffle=True, seed=seed, num_replicas=world, rank=rank)
        self.bs = batch_size
        self.per_epoch = math.ceil(n / world) // batch_size

    def epoch_batches(self, epoch: int, start: int = 0):
        order = self.sampler.order(epoch)
        for b in range(start, self.per_epoch):
            yield order[b * self.bs:(b + 1) * self.bs]


class _EndlessBatches(torch.utils.data.Sampler):
    """Batches of `(epoch, index)` pairs from `(epoch, start)` on, forever.

    The datasets take `(epoch, index)` and seed their crops with it, so one DataLoader with persistent workers
    serves the whole run: no worker restart per epoch, which dominates on small datasets.
    """

    def __init__(self, order: BatchOrder, epoch: int, start: int):
        self.order, self.epoch, self.start = order, epoch, start

    def positions(self):
        epoch, start = self.epoch, self.start
        while True:
            for b, batch in enumerate(self.order.epoch_batches(epoch, start), start=start):
                yield epoch, b, batch
            epoch, start = epoch + 1, 0

    def __iter__(self):
        return ([(e, i) for i in batch] for e, _, batch in self.positions())


def batches(dataset, order: BatchOrder, epoch: int, start: int, num_workers: int, collate):
    """Yield `(epoch, batch_index, batch)` forever from `(epoch, start)`; item crops depend on (epoch, index)."""
    sampler = _EndlessBatches(order, epoch, start)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate,
        persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if num_workers > 0 else None,
    )
    for (e, b, _), batch in zip(sampler.positions(), loader):
        yield e, b, batch


# ---------------------------------------------------------------------------------------------- helpers
def to_device(batch: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def split_batch(batch: dict, representation: str, melspec: MelSpec | None):
    """`(x0, cond)`: the diffusion target (waveform `(B, C, T)` or mel `(B, 1, n_mels, frames)`) and conditions."""
    cond = {k: v for k, v in batch.items() if k in CONDITIONS and v is not None}
    if representation == "mel":
        if "mel" in batch:
            x0 = batch["mel"]
            x0 = x0 if x0.dim() == 4 else x0.unsqueeze(1)
        else:
            x0 = melspec(batch["audio"][:, 0]).unsqueeze(1)
    else:
        x0 = batch["audio"]
    return x0, cond


def rng_state(gen: torch.Generator) -> dict:
    state = {"python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
             "numpy": np.random.get_state()[1].tolist(), "numpy_pos": int(np.random.get_state()[2]),
             "torch": torch.get_rng_state(), "noise": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    gen.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------- train
def train(cfg) -> Path:
    """Train a diffusion model as `cfg` says; returns the run directory.

    `cfg` (dict or OmegaConf) holds: `run_dir`, `model` (network preset), `objective`, `schedule`, `sampler`,
    `data` (see :func:`audiodiff.data.build_dataset`), optional `vocoder` (mel models) and `train`
    (see TRAIN_DEFAULTS). Re-running with the same `run_dir` resumes from its last checkpoint.
    """
    from ..data.build import build_dataset, collate  # data imports librosa; keep `import audiodiff` light

    cfg = resolve_config(cfg)
    t = cfg["train"]
    device = pick_device(t["device"])
    rank, local_rank, world = dist_utils.setup(device)
    if device == "cuda":
        device = f"cuda:{local_rank}"
    main = rank == 0
    run_dir = Path(cfg["run_dir"])
    seed_everything(t["seed"] + rank)

    # ---- fine-tuning starts from a run: its network and sample rate win over the config's
    init = None
    if t["init_from"]:
        init = load_checkpoint(t["init_from"], train_state=False)
        if init["meta"].get("kind", "diffusion") != "diffusion":
            raise TrainingError(f"init_from={t['init_from']} is a {init['meta'].get('kind')} checkpoint, not a diffusion model")
        if cfg["model"] != init["meta"]["model"]:
            log.info("init_from: using the network of %s (%s)", init["dir"], init["meta"]["model"].get("name"))
        cfg["model"] = dict(init["meta"]["model"])
        if cfg["data"].get("sample_rate") != init["meta"]["sample_rate"]:
            log.info("init_from: data.sample_rate %s -> %s (the model's)", cfg["data"].get("sample_rate"),
                     init["meta"]["sample_rate"])
            cfg["data"]["sample_rate"] = init["meta"]["sample_rate"]

    # ---- data
    data = build_dataset(cfg["data"], split="train", seed=t["seed"])
    dataset, info = data["dataset"], data["info"]
    representation = cfg["data"].get("representation", "waveform")
    melspec = MelSpec(**cfg["data"]["mel"]) if representation == "mel" else None

    # ---- model, denoiser, optimizer, EMA
    net_cfg = dict(cfg["model"])
    wants_pitch = "pitch" in info.get("conditions", {})
    if init is None:  # the data decides which conditions the network takes
        if info.get("num_classes") is not None and net_cfg.get("num_classes", 0) in (0, None, "auto"):
            net_cfg["num_classes"] = info["num_classes"]
        if wants_pitch:
            net_cfg["pitch"] = True
    else:  # keep the base network whole: a condition the new data lacks is simply dropped (null embedding)
        if wants_pitch and not net_cfg.get("pitch"):
            raise TrainingError("init_from: the base network has no 'pitch' conditioning but the data asks for it")
        if info.get("num_classes") and net_cfg.get("num_classes") != info["num_classes"]:
            raise TrainingError(f"init_from: the base network has {net_cfg.get('num_classes')} classes, the data "
                                f"{info['num_classes']} ({info['vocab']}); fine-tune without labels or with the same ones")
    net = models.build(net_cfg)
    if init is not None:
        weights = init["ema"] if init["ema"] is not None else init["model"]
        missing, unexpected = net.load_state_dict(weights, strict=False)
        if unexpected or missing:
            raise TrainingError(f"init_from={t['init_from']}: weights do not fit this network "
                                f"(missing {missing[:5]}, unexpected {unexpected[:5]}); use the same model preset")
        log.info("initialised from %s (step %d)", init["dir"], init["step"])
    if t["lora"]:
        from .lora import apply_lora

        wrapped = apply_lora(net, **t["lora"])
        log.info("LoRA on %d layers", len(wrapped))
    net.to(device)
    denoiser = objectives.build(net, cfg["objective"]).to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=t["lr"], betas=tuple(t["betas"]), weight_decay=t["weight_decay"])
    ema = EMA(net, t["ema_decay"])
    train_denoiser = denoiser
    if world > 1:
        train_net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[local_rank] if device.startswith("cuda") else None)
        train_denoiser = objectives.build(train_net, cfg["objective"]).to(device)
    if t["compile"]:
        train_denoiser = torch.compile(train_denoiser)
    noise_gen = torch.Generator(device=device).manual_seed(t["seed"] * 7919 + rank)

    # ---- resume
    step, epoch, batch_in_epoch = 0, 0, 0
    if t["resume"] and list_checkpoints(run_dir):
        ck = load_checkpoint(run_dir, map_location="cpu")
        net.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"], ck["train_state"]["ema_updates"])
        opt.load_state_dict(ck["train_state"]["optimizer"])
        step = ck["train_state"]["step"]
        epoch, batch_in_epoch = ck["train_state"]["data_position"]
        set_rng_state(ck["train_state"]["rng"][rank] if isinstance(ck["train_state"]["rng"], list)
                      else ck["train_state"]["rng"], noise_gen)
        if main:
            log.info("resumed %s at step %d", ck["dir"], step)
    if step >= t["steps"]:
        if main:
            log.info("%s already trained for %d steps", run_dir, step)
        dist_utils.cleanup()
        return run_dir

    meta = {
        "kind": "diffusion", "model": net_cfg, "objective": cfg["objective"], "schedule": cfg["schedule"],
        "sampler": cfg["sampler"], "representation": representation, "sample_rate": info["sample_rate"],
        "channels": info.get("channels", 1), "segment_samples": info["segment_samples"],
        "conditions": info.get("conditions", {}), "vocab": info.get("vocab"), "vocoder": cfg.get("vocoder"),
        "pitch_range": info.get("pitch_range"), "lora": t["lora"],
        "init_from": str(init["dir"]) if init is not None else None,
    }
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(run_dir, cfg)
    writer = _tensorboard(run_dir) if main else None

    order = BatchOrder(len(dataset), t["batch_size"], t["seed"], rank, world)
    workers = min(int(t["num_workers"]), os.cpu_count() or 1)
    if workers < t["num_workers"] and main:
        log.info("train.num_workers=%d lowered to %d (the CPU count)", t["num_workers"], workers)
    stream = batches(dataset, order, epoch, batch_in_epoch, workers, collate)
    use_bf16 = device.startswith("cuda") and t["precision"] in ("auto", "bf16")
    bad_steps = 0
    from tqdm.auto import tqdm

    bar = tqdm(total=t["steps"], initial=step, disable=not (main and t["progress"]), desc=f"train {run_dir.name}",
               dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30)  # quiet in log files
    metrics_file = open(run_dir / "metrics.jsonl", "a") if main else None
    t0, audio_seconds = time.perf_counter(), 0.0
    try:
        while step < t["steps"]:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, t)
            opt.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for _ in range(t["accumulate"]):
                epoch, batch_in_epoch, batch = next(stream)
                batch = to_device(batch, device)
                x0, cond = split_batch(batch, representation, melspec)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                    loss = train_denoiser.loss(x0, generator=noise_gen, **cond) / t["accumulate"]
                loss.backward()
                loss_sum += float(loss.detach())
                audio_seconds += batch["audio"].shape[0] * batch["audio"].shape[-1] / info["sample_rate"] \
                    if "audio" in batch else 0.0
            batch_in_epoch += 1  # position of the *next* batch
            grad_norm = torch.nn.utils.clip_grad_norm_(params, t["grad_clip"] if t["grad_clip"] else float("inf"))
            loss_val = float(dist_utils.all_reduce_mean(torch.tensor(loss_sum, device=device)))
            if not (math.isfinite(loss_val) and math.isfinite(float(grad_norm))):
                bad_steps += 1
                opt.zero_grad(set_to_none=True)
                log.warning("step %d: non-finite loss %.4g / grad norm %.4g; skipped (%d in a row)",
                            step, loss_val, float(grad_norm), bad_steps)
                if bad_steps >= t["max_bad_steps"]:
                    raise TrainingError(
                        f"{bad_steps} non-finite steps in a row at step {step}: training diverged. Lower train.lr "
                        f"(now {t['lr']}), keep train.grad_clip on, check the data for NaN/inf; the last good "
                        f"checkpoint is in {run_dir / 'checkpoints'}")
                continue
            bad_steps = 0
            opt.step()
            ema.update(net)
            step += 1
            bar.update(1)
            if main:
                metrics_file.write(json.dumps({"step": step, "loss": loss_val, "lr": opt.param_groups[0]["lr"],
                                               "grad_norm": float(grad_norm)}) + "\n")
                if step % t["log_every"] == 0 or step == t["steps"]:
                    metrics_file.flush()
                    rate = audio_seconds / max(1e-9, time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{loss_val:.4f}", audio_s_per_s=f"{rate:.1f}")
                    if writer:
                        writer.add_scalar("train/loss", loss_val, step)
                        writer.add_scalar("train/lr", opt.param_groups[0]["lr"], step)
                        writer.add_scalar("train/grad_norm", float(grad_norm), step)
                        writer.add_scalar("train/audio_seconds_per_second", rate, step)
                if t["sample_every"] and step % t["sample_every"] == 0 and writer:
                    _log_samples(writer, ema.model, cfg, meta, melspec, device, step)
            out_of_time = bool(t["max_seconds"]) and time.perf_counter() - t0 > t["max_seconds"]
            if t["max_seconds"] and world > 1:  # collective on every rank, so all stop at the same step
                out_of_time = bool(dist_utils.all_reduce_mean(torch.tensor(float(out_of_time), device=device)) > 0)
            if step % t["ckpt_every"] == 0 or step == t["steps"] or out_of_time:
                rngs = _gather_rng(rng_state(noise_gen), world)
                if main:
                    save_checkpoint(
                        run_dir, step, net.state_dict(), ema.state_dict(),
                        {"optimizer": opt.state_dict(), "step": step, "data_position": [epoch, batch_in_epoch],
                         "ema_updates": ema.num_updates, "rng": rngs},
                        mel=melspec, meta=meta, keep=t["keep_checkpoints"])
                dist_utils.barrier()
            if out_of_time:
                if main:
                    log.info("train.max_seconds=%s reached: stopped at step %d of %d (re-run to continue)",
                             t["max_seconds"], step, t["steps"])
                break
    finally:
        bar.close()
        if metrics_file:
            metrics_file.close()
        if writer:
            writer.close()
    dist_utils.cleanup()
    return run_dir


def _gather_rng(state: dict, world: int):
    if world == 1:
        return state
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, state)
    return out


def _write_config(run_dir: Path, cfg: dict) -> None:
    import yaml

    with open(run_dir / "config.yaml", "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # pragma: no cover
        log.warning("TensorBoard unavailable (%s); logging to metrics.jsonl only", e)
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


@torch.no_grad()
def _log_samples(writer, net: nn.Module, cfg: dict, meta: dict, melspec, device, step: int, n: int = 2) -> None:
    """Generate `n` samples with the EMA network and log audio and a spectrogram image."""
    from ..pipeline import Pipeline

    pipe = Pipeline(net, meta, device=device, mel=melspec)
    out = pipe.generate(n=n, steps=cfg["train"]["sample_steps"], seed=step, progress=False)
    for i in range(n):
        writer.add_audio(f"sample/{i}", out.audio[i, 0].cpu().clamp(-1, 1), step, sample_rate=out.sample_rate)
    fig = out.plot()
    writer.add_figure("sample/spectrogram", fig, step)
