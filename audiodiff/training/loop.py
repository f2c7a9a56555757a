"""`train(cfg)`: the diffusion task, and the denoising step every diffusion model trains with.

:func:`train` reads top to bottom: resolve and check the config, then, on :class:`~.runtime.Runtime` (device,
precision, RNG, the run directory, exact resume, learning rate, NaN guard, time budget, logging and checkpoints),
build the :class:`DiffusionTask`: data, network, denoiser, AdamW and EMA, fine-tuning from a run (`init_from`,
fully or with LoRA), and audio samples in TensorBoard. Under `torchrun` it runs DistributedDataParallel (NCCL on
GPU, gloo on CPU).

:class:`DenoiserStep` is the step itself: the training objective's loss, `TrainingObjective.loss(denoiser, x0,
**cond)` (audiodiff/objectives/training.py, apart from the denoiser's preconditioning), over the micro-batches with the runtime's
noise generator, gradient accumulation, clipping and the NaN guard (:meth:`Runtime.update`), AdamW, EMA. The
diffusion vocoder (`training/vocoder.py`) trains with the same step, its mel passed as the `local` condition.

Exact resume: the checkpoint holds model, EMA, optimizer, step, the data position (epoch and batch within it)
and the state of every generator, so a run killed at any point and resumed reproduces the uninterrupted run's
losses.
"""
from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path

import torch
from torch import nn

from .. import generation, models, objectives, representations, samplers, schedules, vocoders
from ..conditions import ConditionSpec
from ..data.collate import collate, split_batch
from ..data.stats import resolve_sigma_data
from ..config import ConfigError, config_dir, section_defaults
from ..runs.meta import CheckpointError, RunKindError, header
from ..runs.weights import extend_label_rows, file_digest
from . import finetune
from .ema import EMA
from .runtime import Attr, Runtime, TrainingConfigError

log = logging.getLogger("audiodiff.train")



# Top-level keys of a training config; `task` and `name` come from configs/train.yaml (`name` makes run_dir).
TOP_LEVEL_KEYS = ("task", "name", "run_dir", "model", "objective", "schedule", "sampler", "data", "vocoder", "train",
                  "finetune")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_device(v) -> bool:
    if v in ("auto", "cpu", "cuda", "mps"):
        return True
    return isinstance(v, str) and v.startswith("cuda:") and v[5:].isdigit()


# train.<key>: (allowed values in words, check)
TRAIN_RULES = {
    **{k: ("an integer >= 1", lambda v: _is_int(v) and v >= 1)
       for k in ("steps", "batch_size", "accumulate", "ckpt_every", "log_every", "max_bad_steps", "sample_steps")},
    **{k: ("an integer >= 0", lambda v: _is_int(v) and v >= 0) for k in ("warmup_steps", "num_workers", "seed")},
    "sample_every": ("an integer >= 0 (0: no samples)", lambda v: _is_int(v) and v >= 0),
    "keep_checkpoints": ("null or an integer >= 0 (null or 0 keeps every checkpoint)",
                         lambda v: v is None or (_is_int(v) and v >= 0)),
    "lr": ("a number > 0", lambda v: _is_num(v) and v > 0),
    "weight_decay": ("a number >= 0", lambda v: _is_num(v) and v >= 0),
    "min_lr_ratio": ("a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1),
    "grad_clip": ("null or a number >= 0 (null or 0: no clipping)", lambda v: v is None or (_is_num(v) and v >= 0)),
    "ema_decay": ("a number in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1),
    "betas": ("a list of two numbers in [0, 1)",
              lambda v: isinstance(v, list) and len(v) == 2 and all(_is_num(b) and 0 <= b < 1 for b in v)),
    "precision": ("one of ['auto', 'bf16', 'fp32'] (auto: bf16 autocast on CUDA, fp32 elsewhere)",
                  lambda v: v in ("auto", "bf16", "fp32")),
    "device": ("one of ['auto', 'cpu', 'cuda', 'cuda:<index>', 'mps']", _is_device),
    **{k: ("true or false", lambda v: isinstance(v, bool)) for k in ("compile", "progress")},
    "resume": ("true (continue a run trained with the same data and settings), false (refuse a run_dir that holds "
               "checkpoints) or force (continue it with other settings)", lambda v: v in (True, False, "force")),
    "init_from": ("null or the path of a run or checkpoint directory",
                  lambda v: v is None or (isinstance(v, str) and v != "")),
    "lora": ("null or a mapping with keys among ['alpha', 'merge', 'rank', 'targets'] (rank an integer >= 1, alpha "
             "a number > 0, targets a regex, merge true/false: save full merged weights at the end)",
             lambda v: v is None or (isinstance(v, dict) and set(v) <= {"rank", "alpha", "targets", "merge"}
                                     and isinstance(v.get("merge", False), bool)
                                     and (_is_int(v.get("rank", 1)) and v.get("rank", 1) >= 1)
                                     and (_is_num(v.get("alpha", 1.0)) and v.get("alpha", 1.0) > 0)
                                     and isinstance(v.get("targets", ""), str))),
    "max_seconds": ("null or a number > 0", lambda v: v is None or (_is_num(v) and v > 0)),
}


# The defaults of `train` are written once, in configs/train/default.yaml (the option configs/task/diffusion.yaml
# picks): the command line composes it and resolve_config fills what a Python dict lacks from the same file, so
# `audiodiff.train(cfg)` and `audiodiff train` agree. Each of its keys has a rule above and each rule a default there.
def train_defaults() -> dict:
    """The `train` defaults (configs/train/default.yaml); raises ConfigError if its keys and TRAIN_RULES differ."""
    defaults = section_defaults("diffusion", "train")
    if set(defaults) != set(TRAIN_RULES):
        raise ConfigError(f"{config_dir() / 'train' / 'default.yaml'}: its keys must be the train settings "
                          f"(audiodiff/training/loop.py TRAIN_RULES); missing {sorted(set(TRAIN_RULES) - set(defaults))}, "
                          f"unknown {sorted(set(defaults) - set(TRAIN_RULES))}")
    return defaults


def __getattr__(name):
    if name == "TRAIN_DEFAULTS":  # train_defaults(), read on first use (as the vocoder task's, training/vocoder.py)
        return train_defaults()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _bad(name: str, value, allowed) -> TrainingConfigError:
    return TrainingConfigError(f"{name}={value!r} is not allowed; allowed: {allowed}")


def _section(cfg: dict, key: str) -> dict:
    value = cfg[key]
    if not isinstance(value, dict):
        raise _bad(key, value, "a mapping of settings (see configs/" + key + "/)")
    return value


def _check_keys(section: str, value: dict, allowed) -> None:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise TrainingConfigError(f"unknown {section} settings {unknown}; allowed: {sorted(allowed)}")


def _plain(o):
    if isinstance(o, Path):
        return str(o)
    raise TrainingConfigError(f"config values must be plain (numbers, strings, lists, mappings); got a "
                              f"{type(o).__name__}: {o!r}")


def check_config(cfg: dict) -> None:
    """Raise :class:`TrainingConfigError` naming the first setting that is unknown, mistyped or out of range."""
    check_run(cfg)
    check_sections(cfg)


def check_run(cfg: dict) -> None:
    """The run's own settings: top-level keys, task, name, run_dir, the `train` and `finetune` sections (nothing that
    fine-tuning or `auto` settings rewrite)."""
    unknown = sorted(set(cfg) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise TrainingConfigError(f"unknown top-level setting(s) {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}")
    if cfg.get("task", "diffusion") != "diffusion":
        raise _bad("task", cfg["task"], "'diffusion' (a vocoder is trained by audiodiff.training.vocoder: "
                                        "`audiodiff train experiment=<a vocoder experiment>`)")
    if "name" in cfg and (isinstance(cfg["name"], bool) or not isinstance(cfg["name"], (str, int))):
        raise _bad("name", cfg["name"], "a string")
    if not isinstance(cfg["run_dir"], str) or not cfg["run_dir"]:
        raise _bad("run_dir", cfg["run_dir"], "the path of the run directory")
    for key in ("model", "data", "objective", "schedule", "sampler"):  # mappings, whatever a start makes of them
        _section(cfg, key)
    for key, value in cfg["train"].items():
        allowed, ok = TRAIN_RULES[key]
        if value == "???":  # OmegaConf's mark of a value the user must give
            raise TrainingConfigError(f"train.{key} must be set (the config has ???); allowed: {allowed}")
        if not ok(value):
            raise _bad(f"train.{key}", value, allowed)
    ft = cfg.get("finetune")
    if ft is not None:
        if not isinstance(ft, dict):
            raise _bad("finetune", ft, "a mapping with keys among " + str(sorted(finetune.FINETUNE_DEFAULTS)))
        _check_keys("finetune", ft, finetune.FINETUNE_DEFAULTS)
        if not isinstance(ft.get("extend_vocab", False), bool):
            raise _bad("finetune.extend_vocab", ft["extend_vocab"], "true or false")
        if ft.get("extend_vocab") and not cfg["train"].get("init_from"):
            raise TrainingConfigError("finetune.extend_vocab=true needs train.init_from (the run to fine-tune); "
                                      "allowed: set train.init_from, or finetune.extend_vocab=false")


def check_sections(cfg: dict) -> None:
    """The sections a start may rewrite (a fine-tune adopts its base's model, objective, schedule and sampler;
    `auto` data settings are chosen): checked once, after that, by :func:`train` (the data section by
    :func:`audiodiff.data.build.build_dataset`, which reads it)."""
    import inspect

    model = _section(cfg, "model")
    if model.get("name") not in models.NETWORKS:
        raise _bad("model.name", model.get("name"), sorted(models.NETWORKS))
    net_args = [a for a in inspect.signature(models.NETWORKS[model["name"]].__init__).parameters if a != "self"]
    _check_keys("model", {k: v for k, v in model.items() if k != "name"}, net_args)
    _section(cfg, "data")
    voc = cfg.get("vocoder")
    if voc is not None and not isinstance(voc, dict):
        raise _bad("vocoder", voc, "null or a mapping (see configs/vocoder/)")
    if voc and not voc.get("path"):
        from ..runs.vocoder import check_run_vocoder

        try:
            cls = vocoders.vocoder_class(voc.get("name"))
        except vocoders.VocoderError as e:
            raise TrainingConfigError(f"vocoder.name: {e}") from None
        try:
            check_run_vocoder(voc)  # a vocoder that learns its weights is named by its folder
        except vocoders.VocoderError as e:
            raise TrainingConfigError(str(e)) from None
        _check_keys("vocoder", {k: v for k, v in voc.items() if k != "name"},
                    [a for a in inspect.signature(cls.__init__).parameters if a not in ("self", "mel")])

    obj = _section(cfg, "objective")
    obj_args = list(objectives.objective_keys())
    _check_keys("objective", obj, obj_args)
    if obj.get("parameterization", "edm") not in objectives.PARAMETERIZATIONS:
        raise _bad("objective.parameterization", obj["parameterization"], list(objectives.PARAMETERIZATIONS))
    if obj.get("noise_dist") is not None and obj["noise_dist"] not in objectives.NOISE_DISTRIBUTIONS:
        raise _bad("objective.noise_dist", obj["noise_dist"], ["null", *objectives.NOISE_DISTRIBUTIONS])
    for key, (allowed, ok) in {"sigma_data": ("a number > 0 or auto (measured on the training data)",
                                              lambda v: v == "auto" or (_is_num(v) and v > 0)),
                               "p_mean": ("a number", _is_num),
                               "p_std": ("a number > 0", lambda v: _is_num(v) and v > 0),
                               "num_train_steps": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
                               "cond_drop_prob": ("a number in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1),
                               "min_snr_gamma": ("null (off) or a number > 0 (Min-SNR-gamma weighting; 5 is usual)",
                                                 lambda v: v is None or (_is_num(v) and v > 0))}.items():
        if key in obj and not ok(obj[key]):
            raise _bad(f"objective.{key}", obj[key], allowed)

    sched = _section(cfg, "schedule")
    if sched.get("name") not in schedules.SCHEDULES:
        raise _bad("schedule.name", sched.get("name"), list(schedules.SCHEDULES))
    sched_args = [a for a in inspect.signature(getattr(schedules, sched["name"])).parameters if a != "n"]
    _check_keys("schedule", {k: v for k, v in sched.items() if k != "name"}, sched_args)
    for key, value in sched.items():
        if key != "name" and not _is_num(value):
            raise _bad(f"schedule.{key}", value, "a number")

    sampler = _section(cfg, "sampler")
    _check_keys("sampler", sampler, ["method", "steps", "options"])
    if sampler.get("method", generation.DEFAULT_METHOD) not in samplers.SAMPLERS:
        raise _bad("sampler.method", sampler["method"], sorted(samplers.SAMPLERS))
    if "steps" in sampler and not (_is_int(sampler["steps"]) and sampler["steps"] >= 1):
        raise _bad("sampler.steps", sampler["steps"], "an integer >= 1")
    try:  # the method's settings (eta, s_churn, ...): names and values, before anything is written
        samplers.check_options(sampler.get("method", generation.DEFAULT_METHOD), sampler.get("options"),
                               where="sampler.options")
    except samplers.SamplerError as e:
        raise TrainingConfigError(str(e)) from None


# ---------------------------------------------------------------------------------------------- config
def resolve_config(cfg, sections: bool = True) -> dict:
    """Plain-dict config with training defaults filled in and every setting checked (dict or OmegaConf DictConfig).

    `sections=False` leaves the sections a start rewrites (model, objective, schedule, sampler, vocoder) to
    :func:`check_sections`, which :func:`train` runs after the rewrite.

    Raises:
        TrainingConfigError: an unknown key or a value of the wrong type or range (names it, lists the allowed).
    """
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    if not isinstance(cfg, dict):
        raise TrainingConfigError(f"a training config is a mapping (run_dir, model, data, train, ...); got "
                                  f"{type(cfg).__name__}")
    cfg = json.loads(json.dumps(cfg, default=_plain))  # deep copy, plain values only
    if not isinstance(cfg.get("train", {}), dict):
        raise _bad("train", cfg["train"], "a mapping of train settings (see configs/train/default.yaml)")
    unknown = sorted(set(cfg.get("train", {})) - set(TRAIN_RULES))
    if unknown:
        raise TrainingConfigError(f"unknown train settings {unknown}; allowed: {sorted(TRAIN_RULES)}")
    cfg["train"] = {**train_defaults(), **cfg.get("train", {})}
    for key in ("model", "data", "run_dir"):
        if key not in cfg:
            raise TrainingConfigError(f"config lacks '{key}'; a training config needs model, data, run_dir "
                                      "(see configs/)")
    for key in ("objective", "schedule", "sampler"):  # a section not given: the command line's default option
        if key not in cfg:
            cfg[key] = section_defaults("diffusion", key)
    check_run(cfg)
    if sections:
        check_sections(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------- helpers
def to_device(batch: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------- the step
class DenoiserStep:
    """One optimizer step of a denoiser (Karras et al. 2022's training loop): the diffusion task's and the diffusion
    vocoder's.

    Over the `train.accumulate` micro-batches: `prepare(batch) -> (x0, cond, seconds)` on the device, then
    `loss_fn(x0, generator=rt.generator, **cond) / accumulate` under the runtime's autocast, backward; then the
    runtime's clipped, NaN-guarded AdamW update and the EMA update.

    Args:
        rt: the :class:`~.runtime.Runtime`. loss_fn: `TrainingObjective.loss` bound to the denoiser (of the DDP or compiled wrapper when there
            is one). net: the network the EMA follows. params: the trained parameters. opt: their optimizer.
        ema: :class:`~.ema.EMA` or None. prepare: batch -> `(x0 (B, ...), cond dict, seconds of audio)`.
    """

    def __init__(self, rt: Runtime, loss_fn, net: nn.Module, params, opt, ema: EMA | None, prepare):
        self.rt, self.loss_fn, self.net, self.params, self.opt = rt, loss_fn, net, list(params), opt
        self.ema, self.prepare = ema, prepare

    def __call__(self, micro_batches: list) -> dict | None:
        rt = self.rt
        self.opt.zero_grad(set_to_none=True)
        loss_sum, seconds = 0.0, 0.0
        for batch in micro_batches:
            x0, cond, secs = self.prepare(batch)
            with rt.autocast():
                loss = self.loss_fn(x0, generator=rt.generator, **cond) / len(micro_batches)
            loss.backward()
            loss_sum += float(loss.detach())  # host sync
            seconds += secs
        done = rt.update(self.opt, self.params, loss_sum)
        if done is None:
            return None
        if self.ema is not None:
            self.ema.update(self.net)
        return {"loss": done[0], "grad_norm": done[1], "audio_seconds": seconds}


# ---------------------------------------------------------------------------------------------- the task
def runtime_settings(t: dict) -> dict:
    """The runtime's share of a diffusion config's `train` section (the rest is the task's)."""
    keys = ("steps", "batch_size", "num_workers", "seed", "device", "precision", "lr", "warmup_steps", "min_lr_ratio",
            "grad_clip", "accumulate", "max_bad_steps", "max_seconds", "ckpt_every", "keep_checkpoints", "log_every",
            "resume", "progress")
    return {k: t[k] for k in keys}


class DiffusionTask:
    """A waveform or mel diffusion model for the runtime: data, network, denoiser, AdamW, EMA, LoRA, samples.

    Built inside the runtime (after it seeded every generator); `step` is a :class:`DenoiserStep`.
    """

    def __init__(self, cfg: dict, rt: Runtime, start: "Start | None" = None):
        from ..data.build import build_dataset  # data imports librosa; keep `import audiodiff` light

        t = cfg["train"]
        self.cfg, self.t, self.rt = cfg, t, rt
        self.run_dir = Path(cfg["run_dir"])
        device, world = rt.device, rt.world

        # ---- fine-tuning starts from a run: it adopts what defines the model's meaning (training/finetune.py);
        # `start` (made by train() before the runtime) has done that and chosen every `auto` data setting
        start = start if start is not None else plan_start(cfg)
        init, plan = start.init, start.plan

        # ---- data
        data = build_dataset(cfg["data"], split="train", seed=t["seed"], vocab=plan["vocab"] if plan else None)
        self.dataset, info = data["dataset"], data["info"]
        self.collate = collate
        rep = self.rep = representations.from_data(cfg["data"])  # what the network sees (audiodiff/representations/)
        self.mel = rep.contract  # stored beside the weights (mel.json for a mel model)
        conditions = ConditionSpec.from_meta(info)  # the condition contract the data made

        # ---- model, denoiser, optimizer, EMA
        net_cfg = dict(cfg["model"])
        if init is None:  # the data decides which conditions the network takes (and `mel_bands: auto`)
            net_cfg = models.from_data(net_cfg, conditions, rep)
            narrow = models.narrow_top_level(net_cfg)
            if narrow:
                log.warning(narrow)
        net = models.build(net_cfg)
        lora = dict(t["lora"]) if t["lora"] else None
        self.merge_lora_at_end = bool(lora.pop("merge", False)) if lora else False
        if init is not None:
            weights, init_weights = finetune.base_weights(init)
            weights = extend_label_rows(weights, plan["base_num_classes"], net_cfg.get("num_classes") or 0)
            _load_weights(net, weights, init["dir"] / f"{init_weights}.safetensors")
            log.info("initialised from %s (step %d, %s weights)", init["dir"], init["step"], init_weights)
        if lora:
            from ..models.lora import apply_lora

            wrapped = apply_lora(net, **lora)
            if plan and plan["added_labels"]:  # the new label rows train under LoRA too; the base's rows stay frozen
                lo, hi = plan["base_num_classes"], net_cfg["num_classes"]
                for name, module in net.named_modules():
                    if name.endswith("label_emb"):
                        module.requires_grad_(True)
                        module.weight.register_hook(lambda g, lo=lo, hi=hi: _only_rows(g, lo, hi))
            log.info("LoRA on %d layers", len(wrapped))
        # a LoRA run saves only what it trains (adapters, new label rows) and names the base it needs
        self.saved_keys = {n for n, p in net.named_parameters() if p.requires_grad} if (lora and init is not None) \
            else None
        net.to(device)
        # `sigma_data: auto`: the data's own scale (data/stats.py), stored resolved
        cfg["objective"] = resolve_sigma_data(cfg["objective"], self.dataset, rep)
        denoiser = objectives.build(net, cfg["objective"]).to(device)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=t["lr"], betas=tuple(t["betas"]), weight_decay=t["weight_decay"])
        ema = EMA(net, t["ema_decay"])
        train_denoiser = denoiser
        if world > 1:
            train_net = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[rt.local_rank] if device.startswith("cuda") else None)
            train_denoiser = objectives.build(train_net, cfg["objective"]).to(device)
        if t["compile"]:
            train_denoiser = torch.compile(train_denoiser)
        self.net, self.net_cfg, self.ema, self.opt = net, net_cfg, ema, opt
        self.stateful = {"optimizer": opt, "scheduler": rt.schedule(opt), "ema_updates": Attr(ema, "num_updates")}

        sample_rate = info["sample_rate"]

        def prepare(batch):
            batch = to_device(batch, device)
            x0, cond = split_batch(batch, rep)
            # seconds of audio in the batch (model steps x the representation's hop)
            return x0, cond, x0.shape[0] * x0.shape[-1] * rep.hop / \
                sample_rate

        # the training objective (noise levels, weighting, condition dropout, the loss) apart from the denoiser
        objective = objectives.build_objective(cfg["objective"]).to(device)
        self.step = DenoiserStep(rt, functools.partial(objective.loss, train_denoiser), net, params, opt, ema, prepare)
        if rt.main:  # what the data looked like and what was chosen, before the first step
            for line in start.summary(len(self.dataset), net_cfg, sum(p.numel() for p in net.parameters())):
                log.info("%s", line)

        if plan is not None:  # the fine-tuned model keeps every condition and label of its base
            conditions = ConditionSpec(plan["conditions"], plan["vocab"],
                                       _union_range(plan["pitch_range"], conditions.pitch_range))
        self.meta = {
            **header("diffusion"), "model": net_cfg, "objective": cfg["objective"], "schedule": cfg["schedule"],
            "sampler": cfg["sampler"], **rep.meta(), "sample_rate": info["sample_rate"],
            "segment_samples": info["segment_samples"],
            **conditions.to_dict(), "vocoder": cfg.get("vocoder"), "lora": t["lora"],
            "init_from": str(Path(init["dir"]).resolve()) if init is not None else None,
            "weights": "adapters" if self.saved_keys is not None else "full",
        }
        if plan is not None:
            self.meta.update(init_step=init["step"], init_weights=init_weights,
                             init_sha256=file_digest(init["dir"] / f"{init_weights}.safetensors"))
        self.log_samples = None

    def load(self, ck: dict) -> bool:
        """Check that `ck` continues this run and put its weights in place; False: a merged LoRA run that is done."""
        t = self.t
        check_resume(ck, self.net_cfg, t, self.run_dir)
        ts = ck["train_state"]
        if ck["meta"].get("weights") == "merged":
            if ts["step"] >= t["steps"]:
                log.info("%s already trained for %d steps (LoRA merged into its weights)", self.run_dir, ts["step"])
                return False
            raise CheckpointError(f"{ck['dir']}: holds LoRA merged into full weights (lora.merge=true), which cannot "
                                  f"resume as LoRA; fine-tune further with train.init_from={ck['dir']}")
        _load_weights(self.net, _complete(self.net, ck["model"], self.saved_keys), ck["dir"] / "model.safetensors")
        _load_weights(self.ema.model, _complete(self.ema.model, ck["ema"], self.saved_keys),
                      ck["dir"] / "ema.safetensors")
        return True

    def weights(self, final: bool):
        return _saved_state(self.net, self.ema.model, self.saved_keys, self.meta, self.merge_lora_at_end and final)

    def begin(self, writer) -> None:
        # audio logging: one sampling closure on the EMA network (its weights move in place), vocoder built once
        if writer is not None and self.t["sample_every"]:
            self.log_samples = sample_logger(self.ema.model, self.meta, self.rep, self.rt.device,
                                             self.t["sample_steps"])

    def after_step(self, step: int, final: bool, writer) -> None:
        if self.log_samples is not None and step % self.t["sample_every"] == 0:
            self.log_samples(writer, step)


# ---------------------------------------------------------------------------------------------- train
def train(cfg, hooks: dict | None = None) -> Path:
    """Train a diffusion model as `cfg` says; returns the run directory.

    `cfg` (dict or OmegaConf) holds: `run_dir`, `model` (network preset), `objective`, `schedule`, `sampler`,
    `data` (see :func:`audiodiff.data.build_dataset`), optional `vocoder` (mel models) and `train`
    (configs/train/default.yaml). A section or train key the dict lacks takes the value `audiodiff train` would
    compose (:func:`train_defaults`, :func:`audiodiff.config.section_defaults`). Re-running with the same
    `run_dir` resumes from its newest checkpoint; the run directory is locked while it trains (`run_dir/.lock`,
    see :mod:`audiodiff.training.lock`). `hooks`: the runtime's hooks (:data:`.runtime.HOOKS`), e.g. a benchmark's
    clock.

    Raises:
        TrainingConfigError: a bad setting, `train.resume=false` on a run that has checkpoints, or a resume
            whose model differs from the run's (a UsageError: the message names the setting and the way out).
        RunDirBusyError: another live process is training into `run_dir`.
        CheckpointError: the checkpoint to resume from is damaged (the message names the file).
        TrainingError: training diverged (repeated non-finite losses).
    """
    cfg = resolve_config(cfg, sections=False)
    start = plan_start(cfg)  # fine-tune adoption and `auto` data settings, before anything is written
    check_sections(cfg)  # each section once, as it will be used
    with Runtime(cfg["run_dir"], runtime_settings(cfg["train"]), kind="diffusion", distributed=True,
                 config=cfg, fingerprint=start.fingerprint, hooks=hooks) as rt:
        rt.fit(DiffusionTask(cfg, rt, start))
    return Path(cfg["run_dir"])


class Start:
    """What a diffusion run starts from, decided before the runtime writes anything: the fine-tune base and its plan
    (:func:`finetune.adopt_base`), the data settings chosen from the data (:func:`audiodiff.data.plan.plan_data`),
    the manifest's entries and the run's data fingerprint."""

    def __init__(self, init, plan, notes: list[str], entries: list[dict] | None, fingerprint: dict | None,
                 data: dict):
        self.init, self.plan, self.notes, self.entries, self.fingerprint, self.data = \
            init, plan, notes, entries, fingerprint, data

    def summary(self, n_train: int, model: dict, parameters: int) -> list[str]:
        """The lines logged before the first step: the data as found, the split and what was chosen."""
        from ..data.plan import describe_data

        lines = []
        if self.entries:
            from ..data.manifest import split_manifest

            train, valid = split_manifest(self.entries, float(self.data.get("valid_fraction", 0.1)), seed=0,
                                          group_by=self.data.get("group_by"))
            lines = describe_data(self.entries, self.data, len(train), len(valid), model, parameters)
            if n_train < len(train):
                lines.append(f"  {len(train) - n_train} training file(s) left out as unusable (listed above)")
        else:
            lines = [f"data: built-in notes ({self.data.get('kind')}), {n_train} items; model {model.get('name')}, "
                     f"{parameters / 1e6:.1f} M parameters"]
        if self.init is not None:
            lines.append(f"  fine-tuning {self.init['dir']} (step {self.init['step']})")
        if self.notes:
            lines.append("  chosen from the data (name a setting to choose it yourself):")
            lines += [f"    {n}" for n in self.notes]
        return lines


def plan_start(cfg: dict) -> Start:
    """Adopt the fine-tune base's settings (`train.init_from`) and choose every `auto` data setting, in place."""
    from ..data.plan import has_auto, manifest_fingerprint, plan_data

    init = plan = None
    if cfg["train"]["init_from"]:
        init = finetune.load_base(cfg["train"]["init_from"])
        plan = finetune.adopt_base(cfg, init)
    data = cfg["data"]
    entries = None
    if data.get("kind", "manifest") == "manifest" and data.get("manifest"):
        from ..data.manifest import read_manifest

        entries = read_manifest(data["manifest"])
    notes = []
    if has_auto(data):
        data, notes = plan_data(data, cfg["model"], entries)
        cfg["data"] = data
    if entries is not None:
        fp = {"data": {**manifest_fingerprint(entries, Path(data["manifest"]).parent),
                       "source": str(data["manifest"])}}
    else:
        fp = {"data": {"files": 0, "source": f"built-in notes {json.dumps(data.get('synth'), sort_keys=True)}"}}
    return Start(init, plan, notes, entries, fp, data)


def _only_rows(grad: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Gradient of an embedding table with every row outside `[lo, hi)` zeroed (those rows stay as they are)."""
    keep = torch.zeros(grad.shape[0], 1, dtype=grad.dtype, device=grad.device)
    keep[lo:hi] = 1
    return grad * keep


def _union_range(a, b):
    """The smallest `[lo, hi]` covering both ranges (either may be None)."""
    both = [r for r in (a, b) if r]
    return [min(r[0] for r in both), max(r[1] for r in both)] if both else None


def _complete(module: nn.Module, state: dict, saved_keys: set | None) -> dict:
    """A LoRA run's checkpoint holds only `saved_keys`: fill the rest from `module` (the base it was built on)."""
    if saved_keys is None:
        return state
    return {**module.state_dict(), **state} if set(state) == saved_keys else state


def _saved_state(net: nn.Module, ema_net: nn.Module, saved_keys: set | None, meta: dict, merge: bool):
    """What a checkpoint stores: full weights, only a LoRA run's trained tensors, or (merge) LoRA folded in."""
    if merge:
        import copy

        from ..models.lora import merge_lora

        return (merge_lora(copy.deepcopy(net)).state_dict(), merge_lora(copy.deepcopy(ema_net)).state_dict(),
                {**meta, "weights": "merged"})
    if saved_keys is None:
        return net.state_dict(), ema_net.state_dict(), meta
    pick = lambda sd: {k: v for k, v in sd.items() if k in saved_keys}  # noqa: E731
    return pick(net.state_dict()), pick(ema_net.state_dict()), meta


def check_resume(ck: dict, net_cfg: dict, t: dict, run_dir: Path) -> None:
    """Refuse to resume `ck` into another kind of run, without a train state, or with another model or LoRA."""
    meta, where = ck["meta"], ck["dir"]
    if ck["kind"] != "diffusion":  # a vocoder run (format 0 wrote its kind as `task`) or a judge
        raise RunKindError(f"{where / 'meta.json'}: holds a {ck['kind']!r} run, expected a 'diffusion' run (this "
                           "run_dir belongs to another trainer); train into a new run_dir")
    ts = ck["train_state"]
    need = ("optimizer", "step", "data_position", "ema_updates", "rng")
    if ts is None or any(k not in ts for k in need) or ck["ema"] is None:
        raise CheckpointError(f"{where}: lacks the training state to resume from (train_state.pt with {list(need)} "
                              "and ema.safetensors); train into a new run_dir, or fine-tune from it with "
                              f"train.init_from={where}")
    diffs = []
    if "model" in meta:
        diffs += [f"model.{k}: run {meta['model'].get(k)!r}, config {net_cfg.get(k)!r}"
                  for k in sorted(set(meta["model"]) | set(net_cfg)) if meta["model"].get(k) != net_cfg.get(k)]
    if meta.get("lora") != t["lora"]:
        diffs.append(f"train.lora: run {meta.get('lora')!r}, config {t['lora']!r}")
    if diffs:
        raise TrainingConfigError(
            f"{run_dir}: was trained with another network than this config's ({'; '.join(diffs)}); resume with the "
            f"run's settings (see {run_dir / 'config.yaml'}) and train.resume=true, or train into a new run_dir")


def _load_weights(module: nn.Module, state: dict, path: Path) -> None:
    """`module.load_state_dict(state)`, or a one-line CheckpointError naming `path` and the keys that do not fit."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{path}: its weights do not fit this network (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}, shapes {shapes[:3]}); resume with the run's model settings or "
                              "train into a new run_dir")
    module.load_state_dict(state)


def sample_logger(net: nn.Module, meta: dict, representation, device, steps: int, n: int = 2):
    """A function `log(writer, step)` that logs `n` unconditional samples of `net` (audio + a spectrogram figure).

    Built once: the denoiser wraps `net` (the EMA network, updated in place), the noise levels, the sampler and,
    for a representation that decodes with a vocoder, the run's vocoder (Griffin-Lim unless the run names another)
    are made here, not at every log; sampling is the one generation function (:func:`audiodiff.generation.generate`).
    Item k of the samples at `step` uses seed `step + k`; the audio equals
    `Pipeline(net, meta, mel=...).generate(n=n, steps=steps, seed=step)` (tests/training/test_sample_logger.py).
    """
    from ..plots import spectrogram_figure
    from ..runs.vocoder import run_vocoder

    device = torch.device(device)
    denoiser = objectives.build(net, meta["objective"]).to(device).eval()
    sigmas = generation.noise_levels(meta.get("schedule"), steps, device)
    method, _, options = generation.run_sampler(meta.get("sampler"))  # the run's sampler.options (eta, s_churn, ...)
    sample_rate, seconds = int(meta["sample_rate"]), meta["segment_samples"] / int(meta["sample_rate"])
    if representation.wants_vocoder:
        representation.with_vocoder(run_vocoder(meta.get("vocoder"), representation.contract).to(device))
    shape = representation.shape(n, representation.length(seconds))

    @torch.no_grad()
    def log(writer, step: int) -> None:
        seeds = [step + k for k in range(n)]
        gens = [torch.Generator().manual_seed(s) for s in seeds]  # CPU generators, one per item (as the pipeline)
        x = generation.generate(denoiser, samplers.randn(shape, device, torch.float32, gens), sigmas, method, options,
                                generator=gens)
        audio = representation.decode(x).float().clamp(-1, 1).cpu()
        for i in range(n):
            writer.add_audio(f"sample/{i}", audio[i, 0], step, sample_rate=sample_rate)
        extra = f", sampler_options={options}" if options else ""  # as Generated.plot titles the pipeline's
        titles = [f"sampler={method}, steps={steps}{extra}, seed={s}" for s in seeds]
        writer.add_figure("sample/spectrogram", spectrogram_figure(list(audio), sample_rate, titles), step)

    return log
