"""The vocoder task: train a vocoder on a manifest, the Vocos GAN recipe (Siuzdenko et al. 2023) or a diffusion vocoder.

`train_vocoder(cfg)` checks the config and trains a :class:`VocoderTask` on the one training runtime
(:class:`audiodiff.training.runtime.Runtime`: device and precision, RNG, the locked run directory, exact resume
with the data position, learning rate, NaN guard, time budget, progress bar, `metrics.jsonl`, TensorBoard and
checkpoints, as for the diffusion model). The task supplies the data (random segments of the manifest's audio),
the mel contract, the generator (`vocoders.build(cfg["vocoder"])`), validation and one step:

- `neural`: the HiFi-GAN multi-period and UnivNet multi-resolution discriminators, a discriminator hinge step,
  then a generator step on `w_mel * mel L1 + w_mrstft * MR-STFT + w_adv * hinge + w_fm * feature matching`;
- `diffusion`: the diffusion model's step (:class:`.loop.DenoiserStep`), the mel passed as the
  `local` condition of :class:`audiodiff.objectives.Denoiser`.

A run resumes from its `checkpoints/last` (`train.resume=false` is refused on a run that holds checkpoints),
`train.init_from` fine-tunes a trained vocoder, and the final vocoder is exported to `run_dir/vocoder`.

Config (see `configs/experiment/ljspeech_vocoder.yaml`; the defaults of every key are in `configs/train/vocoder.yaml`
and the data section of `configs/task/vocoder.yaml`, the mel contracts in `configs/mel/`)::

    task: vocoder
    run_dir: runs/ljspeech_vocoder
    data: {manifest, valid_fraction, split_seed, segment_frames, batch_size, num_workers, max_items}
    mel: {MelSpec fields}
    vocoder: {name: neural | diffusion, ...constructor settings}
    train: {steps, device, seed, lr, betas, weight_decay, lr_schedule, lr_gamma, min_lr_ratio, warmup_steps,
            grad_clip, loss_weights: {mel, mrstft, adv, fm}, mrstft_resolutions, disc_start, discriminator: {...},
            ema_decay, precision, ckpt_every, log_every, valid_every, keep_checkpoints, resume, init_from, max_seconds,
            max_bad_steps}
The runtime's settings have the names the diffusion model's have (`min_lr_ratio`, `precision`, `keep_checkpoints`);
the old vocoder names (`lr_min_ratio`, `amp`, `keep`) are refused with the new one named.

`lr_schedule` is the runtime's (:func:`audiodiff.training.runtime.lr_at`) with `min_lr_ratio` as its floor:
`cosine` (decay to `lr * min_lr_ratio` at `steps`), `exponential` (`lr * max(lr_gamma ** step, min_lr_ratio)`),
`constant`; a linear warm-up of `warmup_steps` comes first and the decay starts after it.

Command line (both compose the experiment through Hydra and call the same function)::

    audiodiff train experiment=ljspeech_vocoder train.steps=2000 run_dir=runs/x
    python -m audiodiff.training.vocoder configs/experiment/ljspeech_vocoder.yaml train.steps=2000 run_dir=runs/x

The validation distances come from :mod:`audiodiff.losses` (training imports nothing of `audiodiff.evaluation`).
"""
from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import audio as _audio
from .. import losses, objectives
from ..config import ConfigError, compose, experiment_name, section_defaults
from ..data.collate import collate
from ..data.waveform import WaveformDataset
from ..errors import AudiodiffError
from ..mel import MelSpec
from ..runs.meta import header
from ..runs.vocoder import load_vocoder
from ..vocoders import build
from ..vocoders.base import Vocoder, VocoderError
from ..vocoders.neural import MultiPeriodDiscriminator, MultiResolutionDiscriminator
from .runtime import LR_SCHEDULES, PRECISIONS, Attr, Runtime

log = logging.getLogger(__name__)

TRAINABLE = ("neural", "diffusion")

# The defaults of a vocoder run are written once, in configs/train/vocoder.yaml and the data section of
# configs/task/vocoder.yaml: `audiodiff train experiment=<vocoder experiment>` composes them and
# resolve_config fills what a Python dict lacks from the same files. TRAIN_DEFAULTS, DATA_DEFAULTS and
# DISC_DEFAULTS stay importable (read on first use).
def train_defaults() -> dict[str, Any]:
    """The vocoder's `train` defaults (configs/train/vocoder.yaml), `discriminator` and `loss_weights` included."""
    return section_defaults("vocoder", "train")


def data_defaults() -> dict[str, Any]:
    """The vocoder's `data` defaults (the data section of configs/task/vocoder.yaml) without `manifest`, which has none (required)."""
    data = section_defaults("vocoder", "data")
    data.pop("manifest", None)
    return data


def __getattr__(name):
    if name == "TRAIN_DEFAULTS":
        return train_defaults()
    if name == "DATA_DEFAULTS":
        return data_defaults()
    if name == "DISC_DEFAULTS":
        return train_defaults()["discriminator"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class VocoderTrainError(AudiodiffError, ValueError):
    """The vocoder training config is missing a field or holds a value it cannot use."""


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


# ---------------------------------------------------------------------------- config
def _plain(cfg) -> dict:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


RENAMED = {"lr_min_ratio": "min_lr_ratio", "amp": "precision", "keep": "keep_checkpoints"}  # the runtime's names


def _merged(defaults: dict, given: dict | None, where: str) -> dict:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    old = [k for k in unknown if where == "train" and k in RENAMED]
    if old:
        raise VocoderTrainError(f"train.{old[0]} is now train.{RENAMED[old[0]]} (one name for each runtime setting, "
                                f"as the diffusion model's); allowed: {sorted(defaults)}")
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
    defaults = train_defaults()
    train = _merged(defaults, train, "train")
    train["loss_weights"] = _merged(defaults["loss_weights"], train["loss_weights"], "train.loss_weights")
    train["discriminator"] = _merged(defaults["discriminator"], train["discriminator"], "train.discriminator")
    if train["lr_schedule"] not in LR_SCHEDULES:
        raise VocoderTrainError(f"train.lr_schedule {train['lr_schedule']!r} is not allowed; allowed: {LR_SCHEDULES}")
    if train["precision"] not in PRECISIONS:
        raise VocoderTrainError(f"train.precision {train['precision']!r} is not allowed; allowed: {list(PRECISIONS)}")
    if isinstance(train["max_bad_steps"], bool) or not isinstance(train["max_bad_steps"], int) \
            or train["max_bad_steps"] < 1:
        raise VocoderTrainError(f"train.max_bad_steps {train['max_bad_steps']!r} is not allowed; allowed: an "
                                "integer >= 1")
    data = _merged({"manifest": None, **data_defaults()}, cfg["data"], "data")
    if not data["manifest"] or data["manifest"] == "???":
        raise VocoderTrainError("data.manifest is required (a JSONL manifest of the training audio)")
    voc = dict(cfg["vocoder"])
    if voc.get("name") not in TRAINABLE:
        raise VocoderTrainError(f"vocoder.name {voc.get('name')!r} cannot be trained; allowed: {list(TRAINABLE)}")
    MelSpec.from_dict(dict(cfg["mel"]))  # validates
    return {**cfg, "task": "vocoder", "run_dir": str(run_dir), "data": data, "train": train, "vocoder": voc,
            "mel": dict(cfg["mel"])}


def runtime_settings(cfg: dict) -> dict:
    """The runtime's settings from a resolved vocoder config (the runtime's names; batch size and workers from data)."""
    t, data = cfg["train"], cfg["data"]
    return {"steps": int(t["steps"]), "batch_size": int(data["batch_size"]), "num_workers": int(data["num_workers"]),
            "seed": int(t["seed"]), "device": t["device"], "precision": t["precision"],
            "lr": float(t["lr"]), "warmup_steps": int(t["warmup_steps"]), "min_lr_ratio": float(t["min_lr_ratio"]),
            "lr_schedule": t["lr_schedule"], "lr_gamma": float(t["lr_gamma"]), "grad_clip": t["grad_clip"],
            "max_bad_steps": int(t["max_bad_steps"]), "max_seconds": t["max_seconds"],
            "ckpt_every": int(t["ckpt_every"]), "keep_checkpoints": t["keep_checkpoints"], "log_every": int(t["log_every"]),
            "resume": t["resume"] if t["resume"] == "force" else bool(t["resume"]), "progress": bool(t["progress"])}


# ---------------------------------------------------------------------------- validation
@torch.no_grad()
def validate(voc: Vocoder, clips: list[torch.Tensor], device) -> dict:
    """Mean mel L1 / MR-STFT / LSD of `voc` resynthesising each clip `(T,)` from its mel."""
    voc.eval()
    acc = {"mel_l1": 0.0, "mrstft": 0.0, "lsd": 0.0}
    for wav in clips:
        wav = wav.to(device)[None]
        est = voc(voc.mel(wav))
        m = losses.resynthesis_distances(wav, est, voc.mel)
        for k in acc:
            acc[k] += m[k] / len(clips)
    voc.train()
    return acc


# ---------------------------------------------------------------------------- the task
class VocoderTask:
    """A `neural` (GAN) or `diffusion` vocoder for the runtime: data, vocoder, discriminators, AdamW, EMA, step.

    Built inside the runtime (after it seeded every generator), in the order that fixes the initial weights:
    data, vocoder (`init_from`), discriminators, EMA, optimizers.
    """

    def __init__(self, cfg: dict, rt: Runtime):
        from ..data.manifest import read_manifest, split_manifest

        self.cfg, self.rt = cfg, rt
        data, t = cfg["data"], cfg["train"]
        self.t, self.lw = t, t["loss_weights"]
        self.run_dir = Path(cfg["run_dir"])
        mel = self.mel = MelSpec.from_dict(cfg["mel"])
        kind = self.kind = cfg["vocoder"]["name"]
        device = rt.device

        # ---- data
        entries = read_manifest(data["manifest"])
        if data["max_items"]:
            entries = entries[: int(data["max_items"])]
        train_entries, valid_entries = split_manifest(entries, float(data["valid_fraction"]), int(data["split_seed"]))
        self.segment = int(data["segment_frames"]) * mel.hop_length
        # random crops (zero-padded when a clip is shorter), resampled to the mel's rate, seeded by (epoch, index);
        # unreadable files are reported and skipped by the dataset
        self.dataset = WaveformDataset(train_entries, mel.sample_rate, segment_samples=self.segment,
                                       random_crop=True, seed=int(t["seed"]))
        self.collate = collate
        max_valid = int(float(data["valid_seconds"]) * mel.sample_rate)
        self.valid_clips = []
        for e in valid_entries:
            if len(self.valid_clips) == int(data["valid_items"]):
                break
            try:
                self.valid_clips.append(_audio.load(e["path"], sample_rate=mel.sample_rate)[0][0, :max_valid])
            except _audio.AudioError as err:
                log.warning("validation: skipping unreadable file %s", err)

        # ---- models
        voc = self.voc = build(cfg["vocoder"], mel=mel).to(device)
        if t["init_from"]:
            src = load_vocoder(t["init_from"])
            src.mel.check_compatible(mel, what=f"init_from {t['init_from']} mel contract and this run's")
            if src.name != kind or src.config() != voc.config():
                raise VocoderTrainError(f"init_from {t['init_from']} is a {src.name!r} vocoder with config "
                                        f"{src.config()}; this run builds {kind!r} with {voc.config()}")
            voc.load_state_dict(src.state_dict())
            log.info("initialised the vocoder from %s", t["init_from"])
        voc.train()
        self.discs = None
        if kind == "neural" and (self.lw["adv"] > 0 or self.lw["fm"] > 0):
            dcfg = t["discriminator"]
            self.discs = torch.nn.ModuleDict({
                "mpd": MultiPeriodDiscriminator(dcfg["periods"], dcfg["mpd_channels"]),
                "mrd": MultiResolutionDiscriminator(dcfg["resolutions"], dcfg["mrd_channels"]),
            }).to(device)
        self.ema = None
        if t["ema_decay"]:
            from .ema import EMA

            self.ema = EMA(voc, float(t["ema_decay"]))
        opt_kw = dict(lr=float(t["lr"]), betas=tuple(t["betas"]), weight_decay=float(t["weight_decay"]))
        self.opt_g = torch.optim.AdamW(voc.parameters(), **opt_kw)
        self.stateful = {"opt_g": self.opt_g, "sched_g": rt.schedule(self.opt_g)}
        if self.discs is not None:
            self.opt_d = torch.optim.AdamW(self.discs.parameters(), **opt_kw)
            self.stateful.update(disc=self.discs, opt_d=self.opt_d, sched_d=rt.schedule(self.opt_d))
        if self.ema is not None:
            self.stateful["ema_updates"] = Attr(self.ema, "num_updates")

        self.resolutions = [tuple(r) for r in (t["mrstft_resolutions"] or losses.DEFAULT_RESOLUTIONS)]
        self.valid_every = int(t["valid_every"] or t["ckpt_every"])
        self.meta = {**header("vocoder"), "vocoder": {"name": kind, "config": voc.config()},
                     "sample_rate": mel.sample_rate, "num_parameters": voc.num_parameters()}
        if kind == "diffusion":  # the diffusion model's step, with the mel as the `local` condition
            from .loop import DenoiserStep

            objective = objectives.build_objective(voc.objective_cfg).to(rt.device)  # the loss, apart (EDM2)
            self.step = DenoiserStep(rt, functools.partial(objective.loss, voc.denoiser), voc, voc.parameters(), self.opt_g, self.ema,
                                     self._diffusion_batch)
        else:
            self.step = self._gan_step

    # ------------------------------------------------------------------ the steps
    def _audio(self, batch) -> torch.Tensor:
        return batch["audio"].to(self.rt.device, non_blocking=True)  # (B, 1, segment)

    def _diffusion_batch(self, batch):
        """`(x0, cond, seconds)` for :class:`DenoiserStep`: the segment, and its first `frames` mel frames as `local`
        (segment = frames * hop samples, the relation at synthesis)."""
        wav = self._audio(batch)
        with torch.no_grad():
            local = self.mel(wav)[..., :-1]  # (B, n_mels, frames)
        return wav, {"local": local}, wav.shape[0] * wav.shape[-1] / self.mel.sample_rate

    def _gan_step(self, micro_batches: list) -> dict | None:
        """Discriminator hinge update, then the generator update (mel L1, MR-STFT, hinge, feature matching)."""
        rt, lw, discs = self.rt, self.lw, self.discs
        (batch,) = micro_batches
        wav = self._audio(batch)
        with torch.no_grad():
            target_mel = self.mel(wav)  # (B, n_mels, frames)
        logs = {}
        with rt.autocast():
            fake = self.voc.synthesize(target_mel)[..., :self.segment].float()
        use_gan = discs is not None and rt.step >= int(self.t["disc_start"])
        if use_gan:  # discriminator step
            with rt.autocast():
                outs_r = [o for d in discs.values() for o in d(wav)]
                outs_f = [o for d in discs.values() for o in d(fake.detach())]
            loss_d = discriminator_hinge(outs_r, outs_f)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            done = rt.update(self.opt_d, discs.parameters(), loss_d)
            if done is None:
                return None
            logs["loss/disc"], logs["grad_norm/disc"] = done
        loss_mel = (self.mel.log_mel(wav[:, 0]) - self.mel.log_mel(fake[:, 0])).abs().mean()
        loss_mr = losses.mrstft_distance(wav, fake, self.resolutions)
        loss_g = lw["mel"] * loss_mel + lw["mrstft"] * loss_mr
        logs["loss/mel_l1"], logs["loss/mrstft"] = loss_mel.detach(), loss_mr.detach()
        if use_gan:
            with rt.autocast():
                outs_r = [o for d in discs.values() for o in d(wav)]
                outs_f = [o for d in discs.values() for o in d(fake)]
            adv, fm = generator_hinge(outs_f), feature_matching(outs_r, outs_f)
            loss_g = loss_g + lw["adv"] * adv + lw["fm"] * fm
            logs["loss/adv"], logs["loss/fm"] = adv.detach(), fm.detach()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        done = rt.update(self.opt_g, self.voc.parameters(), loss_g)
        if done is None:
            return None
        if self.ema is not None:
            self.ema.update(self.voc)
        logs["loss/gen"], logs["grad_norm/gen"] = done
        return {**logs, "audio_seconds": wav.shape[0] * wav.shape[-1] / self.mel.sample_rate}

    # ------------------------------------------------------------------ checkpoints and hooks
    def load(self, ck: dict) -> bool:
        if ck["mel"] is not None:
            ck["mel"].check_compatible(self.mel, what=f"resumed run {self.run_dir} mel contract and the config's")
        self.voc.load_state_dict(ck["model"])
        if self.ema is not None and ck["ema"] is not None:
            self.ema.model.load_state_dict(ck["ema"])
        return True

    def weights(self, final: bool):
        return self.voc.state_dict(), self.ema.state_dict() if self.ema is not None else None, self.meta

    def after_step(self, step: int, final: bool, writer) -> None:
        if self.valid_clips and (step % self.valid_every == 0 or final):
            scores = validate(self.ema.model if self.ema is not None else self.voc, self.valid_clips, self.rt.device)
            if writer is not None:
                for k, v in scores.items():
                    writer.add_scalar(f"valid/{k}", v, step)
            log.info("step %d valid %s", step, scores)
            self.rt.say(f"step {step} valid " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()))

    def finish(self, step: int) -> None:
        """Export the vocoder as it stands (EMA weights when there are) to `run_dir/vocoder`."""
        (self.ema.model if self.ema is not None else self.voc).save(self.run_dir / "vocoder")


def train_vocoder(cfg, hooks: dict | None = None) -> Path:
    """Train (or resume, or fine-tune) a `neural` or `diffusion` vocoder; return the run directory.

    Args:
        cfg: dict or OmegaConf config with `task: vocoder`, `run_dir`, `data`, `mel`, `vocoder`, `train`
            (module docstring). Writes `run_dir/config.yaml`, checkpoints, TensorBoard logs under
            `run_dir/tensorboard`, `run_dir/metrics.jsonl` (a row per step), and the final vocoder folder
            `run_dir/vocoder` (loadable with `load_vocoder`).
        hooks: the runtime's hooks (:data:`.runtime.HOOKS`).

    Raises:
        VocoderTrainError: a missing or bad setting (nothing is written).
        RunDirBusyError: another live process is training into `run_dir` (the message names its pid and host).
        RunDirExistsError: `train.resume=false` on a run directory that already holds checkpoints.
        CheckpointError: the checkpoint to resume from is damaged (the message names the file).
        TrainingError: training diverged (`train.max_bad_steps` non-finite steps in a row).
    """
    cfg = resolve_config(cfg)
    with Runtime(cfg["run_dir"], runtime_settings(cfg), kind="vocoder", config=cfg, hooks=hooks) as rt:
        rt.fit(VocoderTask(cfg, rt))
    return Path(cfg["run_dir"])


def load_config(path, overrides=()):
    """The config of `python -m audiodiff.training.vocoder PATH key=value ...`.

    A file of the config folder's `experiment/` composes through Hydra exactly as
    `audiodiff train experiment=<its name> key=value ...` does (defaults from configs/task/vocoder.yaml, the mel
    contract from configs/mel/). Any other file is a complete config of its own (the format before the config
    groups), with the overrides merged in as an OmegaConf dot-list; it cannot name config groups.
    """
    from omegaconf import OmegaConf

    name = experiment_name(path)
    if name is not None:
        cfg = compose([f"experiment={name}", *overrides])
        if cfg.get("task") != "vocoder":
            raise VocoderTrainError(f"{path}: is a {cfg.get('task')!r} experiment, not a vocoder one (task: vocoder); "
                                    f"train it with `audiodiff train experiment={name}`")
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise VocoderTrainError(f"missing required setting(s) {', '.join(missing)}; give "
                                    + " ".join(f"{k}=<value>" for k in missing))
        return cfg
    p = Path(path)
    if not p.is_file():
        raise VocoderTrainError(f"{path}: there is no such config file")
    raw = OmegaConf.load(p)
    if "defaults" in raw:
        raise ConfigError(f"{path}: has a defaults list, which composes only inside the config folder: put it in "
                          "configs/experiment/ (or the folder AUDIODIFF_CONFIGS names) and train it with "
                          f"`audiodiff train experiment={p.stem}`")
    return OmegaConf.merge(raw, OmegaConf.from_dotlist(list(overrides)))


def main(argv: list[str] | None = None) -> None:
    """`python -m audiodiff.training.vocoder CONFIG.yaml [key=value ...]` (== `audiodiff train experiment=<name>`)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m audiodiff.training.vocoder CONFIG.yaml [key=value ...]")
    cfg = load_config(argv[0], argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = train_vocoder(cfg)
    print(f"vocoder run: {out}  (load with audiodiff.runs.vocoder.load_vocoder('{out}/vocoder'))")


if __name__ == "__main__":
    main()


__all__ = ["train_vocoder", "resolve_config", "discriminator_hinge", "generator_hinge",
           "feature_matching", "validate", "VocoderTask", "VocoderTrainError", "VocoderError"]
