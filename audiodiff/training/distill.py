"""Distillation as a task: a few-step student of a guided teacher run, by rectified-flow reflow on teacher pairs.

Method: reflow (Liu et al. 2023, "Flow straight and fast"), with classifier-free guidance distilled into the student
(Meng et al. 2023 distil guidance; here the guided teacher simply makes the pairs). The guided teacher solves its
probability-flow ODE from `pairs` noises `n` (its own sampler, `teacher_steps` steps, guidance `guidance`), giving
coupled pairs `(n, x0_T)`. In the variance-exploding view every point of the straight path between them is
`x = x0_T + sigma * n`, and the ODE through it, `dx/dsigma = (x - D(x)) / sigma`, is the constant `n` when the
denoiser returns `x0_T` there: an Euler step lands exactly on the next point, whatever its size. So the student
(started from the teacher's EMA weights, same network and parameterisation) is trained to denoise `x0_T + sigma n`
to `x0_T` at exactly the noise levels its `steps`-step Euler sampler visits (the run's schedule with `steps`
steps), with the condition always given (no dropout: one network call per step, no guidance at sampling). Why
this method: measured on this CPU it needs no second network in the loop (the pairs are made once, before the
training clock, and stored in the run), trains with the diffusion task's own step, and its student is an ordinary
run: its meta asks for Euler with `steps` steps, so `Pipeline.from_pretrained(student)`, `generate`, `serve` and a
fine-tune use them by default (recipes/fsdd/README.md has the measurements and the alternatives considered).

Config (`audiodiff distill run=R steps=4 ...`, or :func:`train_distill` with a dict)::

    task: distill
    teacher: runs/fsdd_mel          # a diffusion run or a shipped base
    run_dir: runs/fsdd_mel_distill4
    student_steps: 4                # Euler steps (network calls) per clip
    pairs: 2048                     # teacher pairs (made once, saved as run_dir/pairs.pt)
    guidance: 2.0                   # the teacher's guidance, distilled into the student
    teacher_steps: 16               # the teacher's sampler steps (its run's sampler)
    pair_seed: 0                    # pair k uses noise seed pair_seed + k
    sigma_min: 0.3                  # the student's last noise level before 0 (its schedule is the teacher's with
                                    # this sigma_min: a step from sigma 0.002 to 0 would be a wasted call)
    train: {...}                    # the diffusion train settings (configs/train/default.yaml), distill defaults below
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .. import generation, objectives, representations, samplers
from ..conditions import ConditionSpec
from ..errors import UsageError
from ..runs.checkpoint import load_checkpoint
from ..runs.meta import header
from ..runs.weights import diffusion_net, file_digest
from .ema import EMA
from .runtime import Runtime, TrainingConfigError

log = logging.getLogger("audiodiff.train")

DISTILL_KEYS = {"task", "teacher", "run_dir", "name", "student_steps", "pairs", "guidance", "teacher_steps",
                "pair_seed", "sigma_min", "train"}
# pairs, teacher steps and the train settings below measured on the shipped `digits` base (benchmarks/README.md,
# "Few steps"): 2,048 pairs from 16 guided teacher steps and 2,400 student steps at lr 2e-4 keep 0.99x its accuracy
# at 1.24x its FD in 4 steps with the schedule ending at 0.002; sigma_min 0.3 measured on fsdd_mel (0.99x, 1.02x)
DISTILL_DEFAULTS = {"student_steps": 4, "pairs": 2048, "guidance": 2.0, "teacher_steps": 16, "pair_seed": 0,
                    "sigma_min": 0.3}
# a short fine-tune of the teacher's weights: what differs from configs/train/default.yaml
TRAIN_DEFAULTS = {"steps": 2400, "lr": 2.0e-4, "warmup_steps": 50, "ema_decay": 0.995, "ckpt_every": 400,
                  "sample_every": 0, "num_workers": 0}
PAIRS_FILE = "pairs.pt"

__all__ = ["resolve_config", "train_distill", "teacher_pairs", "student_sigmas", "DistillTask"]


def resolve_config(cfg) -> dict:
    """The distillation config with its defaults filled and every setting checked (one line naming a bad one)."""
    from .loop import TRAIN_RULES, train_defaults

    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    cfg = {**DISTILL_DEFAULTS, **dict(cfg)}
    unknown = sorted(set(cfg) - DISTILL_KEYS)
    if unknown:
        raise TrainingConfigError(f"unknown distill settings {unknown}; allowed: {sorted(DISTILL_KEYS)}")
    if not cfg.get("teacher"):
        raise TrainingConfigError("distill needs teacher=<a trained diffusion run or a shipped base>")
    for key in ("student_steps", "pairs", "teacher_steps"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TrainingConfigError(f"{key}={v!r} is not allowed; allowed: an integer >= 1")
    g = cfg["guidance"]
    if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float)) or g < 0):
        raise TrainingConfigError(f"guidance={g!r} is not allowed; allowed: a number >= 0, or null (none)")
    sm = cfg["sigma_min"]
    if isinstance(sm, bool) or not isinstance(sm, (int, float)) or not sm > 0:
        raise TrainingConfigError(f"sigma_min={sm!r} is not allowed; allowed: a number > 0 (below the teacher's "
                                  "sigma_max)")
    if isinstance(cfg["pair_seed"], bool) or not isinstance(cfg["pair_seed"], int) or cfg["pair_seed"] < 0:
        raise TrainingConfigError(f"pair_seed={cfg['pair_seed']!r} is not allowed; allowed: an integer >= 0")
    train = dict(cfg.get("train") or {})
    bad = sorted(set(train) - set(TRAIN_RULES))
    if bad:
        raise TrainingConfigError(f"unknown train settings {bad}; allowed: {sorted(TRAIN_RULES)}")
    train = {**train_defaults(), **TRAIN_DEFAULTS, **train}
    for key, value in train.items():
        allowed, ok = TRAIN_RULES[key]
        if not ok(value):
            raise TrainingConfigError(f"train.{key}={value!r} is not allowed; allowed: {allowed}")
    if train["lora"] or train["init_from"]:
        raise TrainingConfigError("train.lora and train.init_from are not distill settings (the student starts from "
                                  "the teacher); allowed: null")
    if not cfg.get("run_dir"):
        name = Path(str(cfg["teacher"]).rstrip("/")).name
        cfg["run_dir"] = f"runs/{name}_distill{cfg['student_steps']}"
    cfg["run_dir"] = str(cfg["run_dir"])
    cfg["teacher"] = str(cfg["teacher"])
    cfg["task"], cfg["train"] = "distill", train
    return cfg


def student_sigmas(schedule: dict | None, steps: int) -> torch.Tensor:
    """The noise levels a `steps`-step Euler sampler on `schedule` evaluates the denoiser at (its final 0 dropped)."""
    return generation.noise_levels(schedule, steps)[:-1].float()


@torch.no_grad()
def teacher_pairs(denoiser, shape, conds: list[dict], sigmas, method: str, guidance, seed: int, batch: int = 64,
                  options: dict | None = None, progress: bool = False) -> dict:
    """The coupled pairs `{"noise": (N, ...), "x0": (N, ...)}` of a (guided) teacher: item k's unit noise drawn with
    seed `seed + k`, and where the teacher's ODE from it lands (:func:`audiodiff.generation.generate`).

    Args:
        denoiser: the teacher `D(x, sigma, **cond)`. shape: one item's model-space shape (without the batch).
        conds: per item, the network keywords (`labels`, `pitch`) as tensors of shape `()`, or `{}`.
        sigmas: the teacher's noise levels. method, options: its sampler. guidance: its guidance scale (or None).
    """
    from tqdm.auto import tqdm

    noises, outs = [], []
    n = len(conds)
    for a in tqdm(range(0, n, batch), desc="teacher pairs", disable=not progress, unit="batch"):
        idx = range(a, min(n, a + batch))
        gens = [torch.Generator().manual_seed(seed + k) for k in idx]
        noise = samplers.randn((len(idx), *shape), sigmas.device, torch.float32, gens)
        cond = {key: torch.stack([conds[k][key] for k in idx]).to(sigmas.device) for key in conds[0]} if conds[0] \
            else {}
        x0 = generation.generate(denoiser, noise, sigmas, method, options, generator=gens, cond=cond,
                                 guidance=guidance)
        noises.append(noise.cpu())
        outs.append(x0.float().cpu())
    return {"noise": torch.cat(noises), "x0": torch.cat(outs)}


def _requests(spec: ConditionSpec, n: int, seed: int) -> list[dict]:
    """What the teacher is asked for each pair: labels cycled through the vocabulary, pitches drawn in its range."""
    g = torch.Generator().manual_seed(seed)
    out = []
    lo, hi = spec.pitches
    for k in range(n):
        c = {}
        if "labels" in spec.fields:
            c["labels"] = torch.tensor(k % spec.num_classes)
        if "pitch" in spec.fields:
            c["pitch"] = torch.tensor(float(torch.randint(lo, hi + 1, (), generator=g)))
        out.append(c)
    return out


class PairDataset(torch.utils.data.Dataset):
    """Item `(epoch, index)` of the runtime: `{"x0", "noise", **conditions}` of teacher pair `index`."""

    def __init__(self, pairs: dict):
        self.pairs = pairs
        self.keys = [k for k in ("labels", "pitch") if k in pairs]

    def __len__(self) -> int:
        return len(self.pairs["x0"])

    def __getitem__(self, idx) -> dict:
        i = idx[1] if isinstance(idx, tuple) else idx
        return {"x0": self.pairs["x0"][i], "noise": self.pairs["noise"][i], **{k: self.pairs[k][i] for k in self.keys}}


def _collate(items):
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class DistillTask:
    """The student of a teacher run for the runtime: teacher pairs (made once, kept in the run), the teacher's
    network as the student's start, the diffusion step on the coupled pairs at the student's noise levels."""

    def __init__(self, cfg: dict, rt: Runtime, teacher: dict):
        from .loop import DenoiserStep
        from .runtime import Attr

        t = cfg["train"]
        self.cfg, self.t, self.rt = cfg, t, rt
        device = rt.device
        meta_t = teacher["meta"]
        self.rep = rep = representations.from_meta(meta_t, teacher["mel"])
        self.mel = rep.contract
        spec = ConditionSpec.from_meta(meta_t)
        steps = cfg["student_steps"]
        # the student's schedule: the teacher's, ending at sigma_min (every step of a few-step sampler counts)
        self.schedule = {**dict(meta_t.get("schedule") or generation.DEFAULT_SCHEDULE), "sigma_min": cfg["sigma_min"]}
        self.sigmas = student_sigmas(self.schedule, steps)

        # ---- teacher pairs: made once and stored in the run (a resumed run reads them back)
        path = Path(cfg["run_dir"]) / PAIRS_FILE
        if path.is_file():
            pairs = torch.load(path, map_location="cpu", weights_only=True)
        else:
            t_net = diffusion_net(teacher).to(device).eval()
            t_den = objectives.build(t_net, meta_t["objective"]).to(device).eval()
            method, _, options = generation.run_sampler(meta_t.get("sampler"))
            t_sigmas = generation.noise_levels(meta_t.get("schedule"), cfg["teacher_steps"], device)
            length = rep.length(meta_t["segment_samples"] / int(meta_t["sample_rate"]))
            conds = _requests(spec, cfg["pairs"], cfg["pair_seed"])
            guidance = cfg["guidance"] if spec.fields else None
            pairs = teacher_pairs(t_den, rep.shape(1, length)[1:], conds, t_sigmas, method, guidance,
                                  cfg["pair_seed"], options=options, progress=t["progress"])
            for key in conds[0] if conds else ():
                pairs[key] = torch.stack([c[key] for c in conds])
            if rt.main:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
                torch.save(pairs, tmp)
                os.replace(tmp, path)
            del t_net, t_den
        self.dataset, self.collate = PairDataset(pairs), _collate
        if rt.main:
            log.info("distill: %d teacher pairs (guidance %s, %d teacher steps) -> a %d-step Euler student at sigma %s",
                     len(self.dataset), cfg["guidance"], cfg["teacher_steps"], steps,
                     [round(float(s), 4) for s in self.sigmas])

        # ---- the student: the teacher's network and weights, its parameterisation; no condition dropout
        net = diffusion_net(teacher).to(device)  # a fresh copy of the teacher's (EMA) weights
        net.train()
        objective_cfg = {**meta_t["objective"], "cond_drop_prob": 0.0}
        self.denoiser = den = objectives.build(net, objective_cfg).to(device)
        objective = objectives.build_objective(objective_cfg).to(device)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=t["lr"], betas=tuple(t["betas"]), weight_decay=t["weight_decay"])
        ema = EMA(net, t["ema_decay"])
        self.net, self.ema = net, ema
        self.stateful = {"optimizer": opt, "scheduler": rt.schedule(opt), "ema_updates": Attr(ema, "num_updates")}
        sig = self.sigmas.to(device)
        gen = rt.generator

        def loss_fn(x0, generator=None, noise=None, **cond):
            # each item at one of the noise levels the student's sampler visits, with its coupled noise
            pick = torch.randint(0, len(sig), (x0.shape[0],), generator=gen, device=gen.device).to(device)
            return objective.loss(den, x0, sigma=sig[pick], noise=noise, generator=generator, **cond)

        def prepare(batch):
            batch = {k: v.to(device) for k, v in batch.items()}
            x0 = batch.pop("x0")
            return x0, batch, x0.shape[0] * x0.shape[-1] * rep.hop / rep.sample_rate

        self.step = DenoiserStep(rt, loss_fn, net, params, opt, ema, prepare)
        teacher_file = Path(teacher["dir"]) / ("ema.safetensors" if teacher["ema"] is not None else "model.safetensors")
        self.meta = {
            **{k: v for k, v in meta_t.items() if k not in ("step", "files", "base", "storage", "data")},
            **header("diffusion"), "objective": objective_cfg,
            "sampler": {"method": "euler", "steps": steps, "options": {}}, "schedule": self.schedule,
            "lora": None, "weights": "full",
            "init_from": str(Path(teacher["dir"]).resolve()), "init_step": teacher["step"],
            "distilled": {"method": "reflow", "teacher": cfg["teacher"], "teacher_step": teacher["step"],
                          "teacher_sha256": file_digest(teacher_file), "guidance": cfg["guidance"],
                          "teacher_steps": cfg["teacher_steps"], "pairs": len(self.dataset), "steps": steps,
                          "sigma_min": cfg["sigma_min"]},
        }

    def load(self, ck: dict) -> bool:
        from .loop import _load_weights

        _load_weights(self.net, ck["model"], ck["dir"] / "model.safetensors")
        _load_weights(self.ema.model, ck["ema"], ck["dir"] / "ema.safetensors")
        return True

    def weights(self, final: bool):
        return self.net.state_dict(), self.ema.model.state_dict(), self.meta


def train_distill(cfg, hooks: dict | None = None) -> Path:
    """Distil a few-step student from a teacher run (module docstring); returns the student's run directory."""
    from .loop import runtime_settings

    cfg = resolve_config(cfg)
    try:
        teacher = load_checkpoint(cfg["teacher"], train_state=False, kind="diffusion")
    except UsageError as e:
        raise TrainingConfigError(f"teacher={cfg['teacher']}: {e}") from None
    fingerprint = {"data": {"files": cfg["pairs"], "source": f"teacher {teacher['dir']} step {teacher['step']}"}}
    with Runtime(cfg["run_dir"], runtime_settings(cfg["train"]), kind="diffusion", config=cfg,
                 fingerprint=fingerprint, hooks=hooks) as rt:
        rt.fit(DistillTask(cfg, rt, teacher))
    return Path(cfg["run_dir"])
