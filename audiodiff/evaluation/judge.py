"""Judge classifiers: a small log-mel CNN trained on real recordings, used to score generated audio.

DiffWave (Kong et al. 2021) scores SC09 samples with a classifier trained on the real digits: its class
probabilities give accuracy / IS / mIS, its penultimate layer gives the features for FID
(:mod:`audiodiff.evaluation.metrics`). This module trains such a judge on any labeled manifest.

The network is a VGG-style stack (conv3x3 - BatchNorm - ReLU - maxpool, Simonyan & Zisserman 2015) on
:class:`audiodiff.mel.MelSpec` log-mels, mean-pooled over time, then one hidden layer (the *features*)
and a linear classifier. Training crops or places each clip at a random offset in a fixed window and
applies a random gain, so the judge does not key on onset position or level. It trains on the one training
runtime (:mod:`audiodiff.training.runtime`; :class:`JudgeTask` supplies the step), so a judge training into a
folder is locked, checkpointed after each epoch and resumed exactly when called again. After training, one
temperature is fitted on the held-out part (temperature scaling, Guo et al. 2017): a judge trained to
near-zero loss is over-confident, and IS / mIS read its probabilities, mIS especially their tails.

Saved as `judge.safetensors` (weights) + `judge.json` (label vocabulary, MelSpec, clip length, network
settings) + `meta.json` (the run meta: `kind: judge`, `format_version`; :mod:`audiodiff.runs.meta`); loading
executes no code from the folder and refuses a folder or run of another kind, naming its meta.json.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiodiff.mel import MelSpec

from ..errors import AudiodiffError
from ..runs.meta import check_kind, kind_at, write_meta
from ..training.runtime import Attr

__all__ = ["JudgeNet", "Judge", "JudgeError", "default_mel", "train_judge", "load_clips", "fit_length",
           "WEIGHTS_NAME", "CONFIG_NAME", "fit_temperature"]

log = logging.getLogger(__name__)

WEIGHTS_NAME = "judge.safetensors"
CONFIG_NAME = "judge.json"
FORMAT_VERSION = 1


class JudgeError(AudiodiffError, ValueError):
    """A judge cannot be built, trained, loaded or applied as asked; the message says why."""


def default_mel(sample_rate: int) -> MelSpec:
    """Judge features: ~32 ms windows (power-of-two FFT), 10 ms hop, 64 mel bands from 20 Hz, log power."""
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise JudgeError(f"sample_rate must be a positive integer; got {sample_rate!r}")
    n_fft = 2 ** math.ceil(math.log2(0.032 * sample_rate))
    return MelSpec(sample_rate=sample_rate, n_fft=n_fft, hop_length=max(1, sample_rate // 100), n_mels=64,
                   f_min=20.0, power=2.0, norm_min=math.log(1e-5), norm_max=math.log(1e2))


class JudgeNet(nn.Module):
    """VGG-style log-mel classifier whose penultimate layer serves as an embedding.

    Args:
        n_mels: mel bands of the input `(B, 1, n_mels, frames)`.
        num_classes: K.
        channels: conv widths, one conv3x3-BN-ReLU block each, 2x2 max-pool after all but the last.
        hidden: width D of the feature (penultimate) layer.
        dropout: before the classifier, training only.
    """

    def __init__(self, n_mels: int, num_classes: int, channels: Sequence[int] = (16, 32, 64, 128),
                 hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        if num_classes < 2:
            raise JudgeError(f"a judge needs at least 2 classes; got {num_classes}")
        layers: list[nn.Module] = []
        c_in, freq = 1, n_mels
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
                freq //= 2
            c_in = c
        if freq < 1:
            raise JudgeError(f"n_mels={n_mels} is too small for {len(channels) - 1} poolings")
        self.convs = nn.Sequential(*layers)
        self.hidden = nn.Linear(c_in * freq, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features `(B, hidden)` of `mel (B, 1, n_mels, frames)`."""
        h = self.convs(mel).mean(dim=-1)  # (B, C, F'): mean over time
        return F.relu(self.hidden(h.flatten(1)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Class logits `(B, K)` of `mel (B, 1, n_mels, frames)`."""
        return self.classifier(self.dropout(self.features(mel)))


def fit_length(audio: torch.Tensor, num_samples: int, offset: torch.Tensor | None = None) -> torch.Tensor:
    """Crop or zero-pad `audio (B, 1, T)` to `(B, 1, num_samples)`.

    With `offset=None` the clip is centred (longer: middle cut; shorter: equal padding on both sides).
    `offset (B,)` in [0, 1] places each clip instead: 0 = start of the clip / window, 1 = its end.
    """
    b, _, t = audio.shape
    if offset is None:
        offset = torch.full((b,), 0.5)
    out = audio.new_zeros(b, 1, num_samples)
    for i in range(b):
        o = float(offset[i])
        if t >= num_samples:
            start = int(round(o * (t - num_samples)))
            out[i] = audio[i, :, start:start + num_samples]
        else:
            start = int(round(o * (num_samples - t)))
            out[i, :, start:start + t] = audio[i]
    return out


class Judge:
    """A trained judge: network + mel contract + label vocabulary + clip length.

    Args:
        net: :class:`JudgeNet`. mel: its :class:`MelSpec` (fixes the sample rate).
        labels: class vocabulary; index k of the output is `labels[k]`.
        label_field: the manifest field the labels came from. seconds: clip length the net sees.
        net_config: the kwargs that rebuild `net` (`n_mels`, `num_classes`, `channels`, `hidden`, `dropout`).
        temperature: logits are divided by it (calibration; 1 = raw network).
    """

    def __init__(self, net: JudgeNet, mel: MelSpec, labels: Sequence, label_field: str, seconds: float,
                 net_config: dict[str, Any], temperature: float = 1.0):
        self.net = net.eval()
        self.mel = mel
        self.labels = list(labels)
        self.label_field = label_field
        self.seconds = float(seconds)
        self.net_config = dict(net_config)
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise JudgeError(f"temperature must be a positive finite number; got {temperature!r}")
        self.temperature = float(temperature)
        self._index = {v: i for i, v in enumerate(self.labels)}

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def num_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def feature_dim(self) -> int:
        return self.net.hidden.out_features

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device) -> "Judge":
        self.net.to(device)
        return self

    def label_index(self, values: Sequence) -> list[int]:
        """Class indices of label values; an unknown value raises naming the vocabulary."""
        out = []
        for v in values:
            if v not in self._index:
                raise JudgeError(f"label {v!r} is not in the judge's vocabulary for field "
                                 f"{self.label_field!r}: {self.labels}")
            out.append(self._index[v])
        return out

    # ------------------------------------------------------------------ inference
    def mel_input(self, audio: torch.Tensor) -> torch.Tensor:
        """Network input `(B, 1, n_mels, frames)` from `audio (B, 1, num_samples)`."""
        return self.mel(audio.to(self.device)).unsqueeze(1)

    def _prepare(self, audio: torch.Tensor, sample_rate: int | None) -> torch.Tensor:
        if not isinstance(audio, torch.Tensor) or audio.dim() != 3 or audio.shape[1] != 1:
            shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
            raise JudgeError(f"judge input must be a mono batch (B, 1, T); got {shape}")
        if audio.shape[0] == 0 or audio.shape[-1] == 0:
            raise JudgeError(f"judge input is empty: shape {tuple(audio.shape)}")
        if not torch.isfinite(audio).all():
            raise JudgeError("judge input contains NaN or infinite samples")
        audio = audio.float()
        if sample_rate is not None and sample_rate != self.sample_rate:
            from audiodiff.audio import resample

            log.info("judge: resampling input from %d Hz to %d Hz", sample_rate, self.sample_rate)
            audio = resample(audio, sample_rate, self.sample_rate)
        return fit_length(audio.cpu(), self.num_samples)

    @torch.no_grad()
    def _run(self, audio, sample_rate, batch_size, what):
        audio = self._prepare(audio, sample_rate)
        self.net.eval()
        outs = []
        for i in range(0, audio.shape[0], batch_size):
            x = self.mel_input(audio[i:i + batch_size])
            outs.append((self.net.features(x) if what == "features" else self.net(x) / self.temperature)
                        .float().cpu())
        return torch.cat(outs)

    def logits(self, audio: torch.Tensor, sample_rate: int | None = None, batch_size: int = 128) -> torch.Tensor:
        """Calibrated class logits `(B, K)` (network logits / temperature) of `audio (B, 1, T)`.

        Audio is centre-cropped / zero-padded to `seconds`.

        `sample_rate`: the input's rate; resampled to the judge's when it differs (None: already the judge's).
        """
        return self._run(audio, sample_rate, batch_size, "logits")

    def predict_proba(self, audio: torch.Tensor, sample_rate: int | None = None,
                      batch_size: int = 128) -> torch.Tensor:
        """Class probabilities `(B, K)` of `audio (B, 1, T)`; column k is `labels[k]`."""
        return self.logits(audio, sample_rate, batch_size).softmax(dim=-1)

    def features(self, audio: torch.Tensor, sample_rate: int | None = None, batch_size: int = 128) -> torch.Tensor:
        """Penultimate-layer features `(B, D)` of `audio (B, 1, T)` (for Frechet distances)."""
        return self._run(audio, sample_rate, batch_size, "features")

    def predict(self, audio: torch.Tensor, sample_rate: int | None = None) -> list:
        """Most probable label value per item of `audio (B, 1, T)`."""
        return [self.labels[i] for i in self.logits(audio, sample_rate).argmax(dim=-1).tolist()]

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "label_field": self.label_field, "labels": self.labels,
                "seconds": self.seconds, "temperature": self.temperature, "mel": self.mel.to_dict(),
                "net": self.net_config}

    def save(self, directory) -> Path:
        """Write `judge.safetensors` and `judge.json` into `directory` (created); returns the folder."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        tmp = d / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "audiodiff-judge", "version": str(FORMAT_VERSION)})
        tmp.replace(d / WEIGHTS_NAME)
        tmp = d / (CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(self.config(), indent=2))
        tmp.replace(d / CONFIG_NAME)
        write_meta(d, "judge")  # last, as in a checkpoint
        return d

    @classmethod
    def load(cls, directory, device=None) -> "Judge":
        """Rebuild a judge saved by :meth:`save` (safetensors + JSON only; no pickle)."""
        from safetensors.torch import load_file

        d = Path(directory)
        found = kind_at(d)  # a judge folder's meta.json (older folders: judge.json), or a diffusion / vocoder run
        if found is not None:
            check_kind(*found, "judge")
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (d / name).is_file():
                raise JudgeError(f"{d} is not a judge folder: {name} is missing (train one with "
                                 f"`audiodiff evaluate train-judge data=<manifest> label=<field> out={d}`)")
        try:
            cfg = json.loads((d / CONFIG_NAME).read_text())
        except json.JSONDecodeError as e:
            raise JudgeError(f"{d / CONFIG_NAME}: not valid JSON ({e.msg})") from None
        version = cfg.get("format_version")
        if version != FORMAT_VERSION:
            raise JudgeError(f"{d / CONFIG_NAME}: format_version {version!r} is not supported "
                             f"(this code reads {FORMAT_VERSION})")
        missing = [k for k in ("label_field", "labels", "seconds", "mel", "net") if k not in cfg]
        if missing:
            raise JudgeError(f"{d / CONFIG_NAME}: missing field(s) {missing}")
        mel = MelSpec.from_dict(cfg["mel"])
        net_cfg = dict(cfg["net"])
        net_cfg["channels"] = tuple(net_cfg.get("channels", (16, 32, 64, 128)))
        net = JudgeNet(**net_cfg)
        state = load_file(str(d / WEIGHTS_NAME))
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise JudgeError(f"{d / WEIGHTS_NAME} does not match {d / CONFIG_NAME}: {e}") from None
        judge = cls(net, mel, cfg["labels"], cfg["label_field"], cfg["seconds"], net_cfg,
                    temperature=cfg.get("temperature", 1.0))
        if device is not None:
            judge.to(device)
        return judge


# ---------------------------------------------------------------------- training
def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, steps: int = 200, min_t: float = 1.0) -> float:
    """Temperature T minimising the cross-entropy of `logits / T` (Guo et al. 2017), by Newton steps on log T.

    T is kept in [min_t, 1e3]. The default `min_t=1` only ever softens: on a held-out set the judge
    classifies perfectly the likelihood keeps rising as T -> 0, and sharpening would defeat the purpose.

    Args:
        logits: `(N, K)` uncalibrated logits. targets: `(N,)` class indices.
    Returns:
        T; argmax, hence accuracy, is unchanged by it.
    """
    z, y = logits.double(), targets.long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(z * torch.exp(-log_t), y)
        (g,) = torch.autograd.grad(loss, log_t, create_graph=True)
        (h,) = torch.autograd.grad(g, log_t)
        step = (g / h if h > 1e-12 else g).detach()  # the loss is convex in 1/T, not always in log T: fall back to gradient
        with torch.no_grad():
            log_t -= step.clamp(-1.0, 1.0)
            log_t.clamp_(math.log(min_t), math.log(1e3))
        if abs(float(step)) < 1e-8:
            break
    return float(torch.exp(log_t.detach()))


def load_clips(entries: Sequence[dict], sample_rate: int) -> list[torch.Tensor]:
    """Read each entry's audio as a `(T,)` float tensor at `sample_rate` (mono), via `audiodiff.audio.load`."""
    from audiodiff.audio import load

    return [load(e["path"], sample_rate=sample_rate, mono=True)[0][0] for e in entries]


def _vocabulary(entries: Sequence[dict], label: str) -> list:
    missing = [e.get("path", "?") for e in entries if label not in e]
    if missing:
        fields = sorted({k for e in entries for k in e})
        raise JudgeError(f"{len(missing)} manifest entries lack label field {label!r} (e.g. {missing[0]}); "
                         f"fields present: {fields}")
    values = {e[label] for e in entries}
    kinds = {type(v) for v in values}
    if not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in values) or len(kinds) != 1:
        raise JudgeError(f"label field {label!r} must hold all integers or all strings (class labels); "
                         f"got types {sorted(k.__name__ for k in kinds)}")
    if len(values) < 2:
        raise JudgeError(f"label field {label!r} has only {len(values)} distinct value(s); a judge needs >= 2")
    return sorted(values)


def _batch(clips: list[torch.Tensor], idx: list[int], num_samples: int, gen: torch.Generator | None,
           gain_db: float) -> torch.Tensor:
    """Stack clips into `(B, 1, num_samples)`; with a generator: random offsets and gains (augmentation)."""
    out = torch.zeros(len(idx), 1, num_samples)
    for j, i in enumerate(idx):
        c = clips[i]
        t = c.shape[-1]
        o = 0.5 if gen is None else float(torch.rand((), generator=gen))
        if t >= num_samples:
            s = int(round(o * (t - num_samples)))
            out[j, 0] = c[s:s + num_samples]
        else:
            s = int(round(o * (num_samples - t)))
            out[j, 0, s:s + t] = c
    if gen is not None and gain_db > 0:
        db = (torch.rand(len(idx), 1, 1, generator=gen) * 2 - 1) * gain_db
        out = out * 10 ** (db / 20)
    return out


class _Indices(torch.utils.data.Dataset):
    """Item `(epoch, i)` -> `i`: the clips stay in memory and the step crops and scales them."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item) -> int:
        return int(item[1])


def _indices(items) -> list[int]:
    return list(items)


class JudgeTask:
    """A judge for the training runtime (:class:`audiodiff.training.runtime.Runtime`): AdamW, cross-entropy.

    Each step places the batch's clips at random offsets in the window with a random gain (the task's own CPU
    generator, saved in the checkpoint) and takes one update; the per-epoch loss and training accuracy of the
    report are kept as state too, so a resumed run reports what an uninterrupted one does.
    """

    def __init__(self, rt, judge: Judge, clips: list[torch.Tensor], targets: torch.Tensor, gain_db: float,
                 lr: float, weight_decay: float, settings: dict, epochs: int, progress: bool):
        self.rt, self.judge, self.net, self.clips, self.y = rt, judge, judge.net, clips, targets
        self.gain_db, self.settings, self.epochs, self.progress = gain_db, settings, epochs, progress
        self.mel, self.dataset, self.collate = judge.mel, _Indices(len(clips)), _indices
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        self.gen = torch.Generator().manual_seed(int(settings["seed"]))
        self.history: list[dict] = []
        self.epoch_sums = None  # [epoch, loss * items, correct, items] of the epoch being trained
        self.stateful = {"optimizer": self.opt, "scheduler": rt.schedule(self.opt), "augment": self.gen,
                         "history": Attr(self, "history"), "epoch_sums": Attr(self, "epoch_sums")}

    def step(self, micro_batches: list) -> dict | None:
        rt = self.rt
        (idx,) = micro_batches
        x = self.judge.mel_input(_batch(self.clips, idx, self.judge.num_samples, self.gen, self.gain_db))
        y = self.y[idx].to(rt.device)
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        done = rt.update(self.opt, self.net.parameters(), loss)
        if done is None:
            return None
        correct = int((logits.argmax(-1) == y).sum())  # host sync
        self._count(rt.position[0], done[0], correct, len(idx))
        return {"loss": done[0], "accuracy": correct / len(idx), "grad_norm": done[1],
                "audio_seconds": len(idx) * self.judge.seconds}

    def _count(self, epoch: int, loss: float, correct: int, n: int) -> None:
        if self.epoch_sums is not None and self.epoch_sums[0] != epoch:
            self._close_epoch()
        if self.epoch_sums is None:
            self.epoch_sums = [epoch, 0.0, 0, 0]
        s = self.epoch_sums
        s[1], s[2], s[3] = s[1] + loss * n, s[2] + correct, s[3] + n

    def _close_epoch(self) -> None:
        epoch, loss_sum, correct, total = self.epoch_sums
        self.history.append({"epoch": epoch + 1, "loss": loss_sum / max(total, 1),
                             "train_accuracy": correct / max(total, 1)})
        self.epoch_sums = None
        if self.progress:
            log.info("judge epoch %d/%d loss %.4f train acc %.3f", epoch + 1, self.epochs, self.history[-1]["loss"],
                     self.history[-1]["train_accuracy"])

    def load(self, ck: dict) -> bool:
        saved = (ck["meta"] or {}).get("settings")
        if saved != self.settings:
            diffs = sorted(k for k in set(saved or {}) | set(self.settings)
                           if (saved or {}).get(k) != self.settings.get(k))
            raise JudgeError(f"{ck['dir']}: an earlier judge training in this folder used other settings ({diffs}); "
                             f"train into another out_dir, or remove {ck['dir'].parent} to start over")
        self.net.load_state_dict(ck["model"])
        return True

    def weights(self, final: bool):
        from ..runs.meta import header

        return self.net.state_dict(), None, {**header("judge"), "settings": self.settings}

    def begin(self, writer) -> None:
        self.net.train()

    def finish(self, step: int) -> None:
        if self.epoch_sums is not None:
            self._close_epoch()


def train_judge(manifest, label: str, out_dir=None, sample_rate: int | None = 16000, seconds: float = 1.0,
                epochs: int = 30, valid_fraction: float = 0.1, seed: int = 0, device=None,
                batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 1e-2, gain_db: float = 6.0,
                channels: Sequence[int] = (16, 32, 64, 128), hidden: int = 128, dropout: float = 0.2,
                mel: MelSpec | None = None, progress: bool = False) -> tuple[Judge, dict]:
    """Train a judge on real recordings and report its held-out accuracy.

    The manifest is split with `audiodiff.data.manifest.split_manifest(valid_fraction, seed)`; the judge trains on
    the training runtime (:class:`audiodiff.training.runtime.Runtime`, :class:`JudgeTask`): AdamW, cross-entropy,
    `epochs` passes in a `seed`ed order, the runtime's learning rate (linear warm-up over the first 15% of the
    steps, then cosine decay to 0), its NaN guard. The final weights are evaluated on the held-out part (no model
    selection on it), where the judge's temperature is also fitted (:func:`fit_temperature`; it changes
    probabilities, not decisions).

    With `out_dir` the training is a run in that folder: locked while it trains, a checkpoint after each epoch
    (the newest kept), `metrics.jsonl` and TensorBoard; calling again with the same settings resumes an interrupted
    training exactly (or, when it had finished, rebuilds the same judge).

    Args:
        manifest: path of a JSONL manifest or its entries (`read_manifest` output).
        label: the entry field holding the class (ints or strings, >= 2 distinct values).
        out_dir: save the judge, `train_report.json` and `split.json` (held-out paths) here; None: don't.
        sample_rate: the judge's rate (audio is resampled); None: the manifest's, which must be uniform.
        seconds: clip length the judge sees (random crop / placement in training, centred at inference).
        epochs, batch_size, lr, weight_decay: optimisation (a batch larger than the training part is lowered to
            it). gain_db: random gain in [-gain_db, +gain_db].
        channels, hidden, dropout: :class:`JudgeNet` settings. mel: feature contract (default
            :func:`default_mel`). device: None = CUDA when available, else CPU.
    Returns:
        `(judge, report)`; report has `valid_accuracy`, `per_class_accuracy`, `confusion`, `temperature`,
        `valid_nll_raw` / `valid_nll` (before / after calibration), counts, timing.
    """
    import hashlib

    from audiodiff.data.manifest import read_manifest, split_manifest

    from ..training.runtime import Runtime

    t0 = time.time()
    entries = read_manifest(manifest) if isinstance(manifest, (str, Path)) else list(manifest)
    if len(entries) < 2:
        raise JudgeError(f"need at least 2 manifest entries to train a judge; got {len(entries)}")
    if not 0 < valid_fraction < 1:
        raise JudgeError(f"valid_fraction must be in (0, 1); got {valid_fraction}")
    if epochs < 1:
        raise JudgeError(f"epochs must be >= 1; got {epochs}")
    if seconds <= 0:
        raise JudgeError(f"seconds must be > 0; got {seconds}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise JudgeError(f"batch_size must be an integer >= 2 (BatchNorm needs two items); got {batch_size!r}")
    labels = _vocabulary(entries, label)
    if sample_rate is None:
        rates = sorted({int(e["sample_rate"]) for e in entries})
        if len(rates) != 1:
            raise JudgeError(f"sample_rate=None needs one rate in the manifest; found {rates}: pass sample_rate=")
        sample_rate = rates[0]
    mel = mel or default_mel(int(sample_rate))
    if mel.sample_rate != sample_rate:
        raise JudgeError(f"mel.sample_rate ({mel.sample_rate}) differs from sample_rate ({sample_rate})")

    train_e, valid_e = split_manifest(entries, valid_fraction=valid_fraction, seed=seed)
    if len(train_e) < 2:
        raise JudgeError(f"the training part holds {len(train_e)} clip(s); a judge needs >= 2 (lower valid_fraction "
                         "or add data)")
    index = {v: i for i, v in enumerate(labels)}
    y_train = torch.tensor([index[e[label]] for e in train_e])
    y_valid = torch.tensor([index[e[label]] for e in valid_e])
    clips_train, clips_valid = load_clips(train_e, sample_rate), load_clips(valid_e, sample_rate)
    num_samples = int(round(seconds * sample_rate))
    t_load = time.time() - t0

    bs = min(batch_size, len(train_e))
    if bs < batch_size:
        log.info("judge: batch_size=%d lowered to %d (the training clips)", batch_size, bs)
    drop_last = len(train_e) % bs == 1  # a last batch of one item cannot train BatchNorm: leave it out
    per_epoch = len(train_e) // bs if drop_last else math.ceil(len(train_e) / bs)
    steps = epochs * per_epoch
    net_cfg = {"n_mels": mel.n_mels, "num_classes": len(labels), "channels": tuple(channels),
               "hidden": hidden, "dropout": dropout}
    # what a resumed training must share with this call (the number of epochs may grow)
    settings = {"label_field": label, "labels": labels, "sample_rate": sample_rate, "seconds": seconds,
                "mel": mel.to_dict(), "net": {**net_cfg, "channels": list(channels)}, "batch_size": bs,
                "seed": seed, "valid_fraction": valid_fraction, "lr": lr, "weight_decay": weight_decay,
                "gain_db": gain_db, "train": hashlib.sha256("\n".join(e["path"] for e in train_e).encode()).hexdigest()}
    runtime = {"steps": steps, "batch_size": bs, "drop_last": drop_last, "seed": seed,
               "device": "auto" if device is None else str(device), "precision": "fp32", "lr": lr,
               "warmup_steps": round(0.15 * steps), "min_lr_ratio": 0.0, "ckpt_every": per_epoch,
               "keep_checkpoints": 1, "log_every": per_epoch, "progress": progress}
    config = {"task": "judge", "manifest": str(manifest) if isinstance(manifest, (str, Path)) else None,
              "epochs": epochs, **{k: v for k, v in settings.items() if k != "mel"}}
    with Runtime(out_dir, runtime, kind="judge", config=config) as rt:
        net = JudgeNet(**net_cfg).to(rt.device)  # built after the runtime seeded torch with `seed`
        judge = Judge(net, mel, labels, label, seconds, net_cfg)
        task = JudgeTask(rt, judge, clips_train, y_train, gain_db, lr, weight_decay, settings, epochs, progress)
        rt.fit(task)
        device = rt.device
    net.eval()

    report: dict[str, Any] = {
        "label_field": label, "labels": labels, "sample_rate": sample_rate, "seconds": seconds,
        "num_train": len(train_e), "num_valid": len(valid_e), "epochs": epochs, "seed": seed,
        "device": str(device), "history": task.history,
    }
    if valid_e:
        valid_audio = torch.stack([fit_length(c.view(1, 1, -1), num_samples)[0] for c in clips_valid])
        raw = judge.logits(valid_audio)
        judge.temperature = fit_temperature(raw, y_valid)
        report.update(temperature=judge.temperature, valid_nll_raw=float(F.cross_entropy(raw, y_valid)),
                      valid_nll=float(F.cross_entropy(raw / judge.temperature, y_valid)))
        pred = raw.argmax(-1)
        confusion = torch.zeros(len(labels), len(labels), dtype=torch.long)
        for t_, p_ in zip(y_valid.tolist(), pred.tolist()):
            confusion[t_, p_] += 1
        per_class = {str(labels[k]): (float(confusion[k, k] / confusion[k].sum()) if confusion[k].sum() else None)
                     for k in range(len(labels))}
        report.update(valid_accuracy=float((pred == y_valid).float().mean()), per_class_accuracy=per_class,
                      confusion=confusion.tolist())
    report.update(load_seconds=round(t_load, 2), train_seconds=round(time.time() - t0 - t_load, 2))
    if out_dir is not None:
        out = judge.save(out_dir)
        (out / "train_report.json").write_text(json.dumps(report, indent=2))
        (out / "split.json").write_text(json.dumps(
            {"seed": seed, "valid_fraction": valid_fraction, "train": [e["path"] for e in train_e],
             "valid": [e["path"] for e in valid_e]}, indent=2))
    return judge, report
