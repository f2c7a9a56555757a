"""Training a judge on the one training runtime: :func:`train_judge` (split, load, train, calibrate, report) and its
task :class:`JudgeTask` (random placement and gain per clip, AdamW, cross-entropy); :func:`fit_temperature`;
:func:`held_out_trust` (whether the held-out accuracy can be trusted).

Why the judge's task stays here and not in `audiodiff/training/`: evaluation and training share a layer and
their imports point one way, evaluation -> training (this module runs on :mod:`audiodiff.training.runtime`;
training imports nothing of evaluation). The judge is evaluation's instrument: its network, its loading and
scoring (`net.py`, `model.py`), `audiodiff evaluate train-judge` (evaluation/cli.py) and this task all live
in `evaluation/judge/`. As `training/judge.py`, the task would import the judge's network and model from
evaluation, and the evaluate command would import training for it: the two packages would import each other.
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

from audiodiff.mel import MelSpec

from ...conditions import ConditionError, ConditionSpec, Vocabulary, label_fields_of
from ...errors import UsageError
from ...training import tasks
from ...training.runtime import Attr
from .model import Judge
from .net import JudgeError, JudgeNet, default_mel, fit_length

__all__ = ["JudgeTask", "train_judge", "fit_temperature", "load_clips", "judge_vocabulary", "held_out_trust",
           "JudgeUsageError", "TRUST_ALPHA", "TRUST_MIN_VALID", "TRUST_MIN_PER_CLASS"]

log = logging.getLogger(__name__)

# A judge's held-out accuracy is trusted when the held-out part holds >= TRUST_MIN_VALID clips, >= TRUST_MIN_PER_CLASS
# of each class, and its correct count beats chance (1 / classes) by a one-sided binomial test at TRUST_ALPHA.
TRUST_ALPHA = 0.01
TRUST_MIN_VALID = 20
TRUST_MIN_PER_CLASS = 2


class JudgeUsageError(JudgeError, UsageError):
    """A judge setting names something the data lacks (e.g. a label field); one line, exit code 2."""


def held_out_trust(confusion: Sequence[Sequence[int]], labels: Sequence) -> dict[str, Any]:
    """Whether a judge's held-out accuracy can be trusted, from its held-out confusion matrix.

    Not trusted when the held-out part is too small to tell (fewer than :data:`TRUST_MIN_VALID` clips, or fewer
    than :data:`TRUST_MIN_PER_CLASS` of some class) or its accuracy is not clearly above chance: the one-sided
    binomial p-value of the correct count against chance `1 / len(labels)` exceeds :data:`TRUST_ALPHA`.

    Args:
        confusion: `(K, K)` counts, row = true class, column = predicted class. labels: the K class values.
    Returns:
        `{"ok", "reasons", "p_value_vs_chance", "num_valid", "num_correct", "accuracy", "chance",
        "per_class_valid"}` (`p_value_vs_chance` / `accuracy` are None without held-out clips); with
        `ok` False also `warning`, the one line to show.
    """
    from ..metrics import binomial_tail

    c = torch.as_tensor(confusion, dtype=torch.long).reshape(len(labels), len(labels))
    n, k, chance = int(c.sum()), int(c.trace()), 1.0 / len(labels)
    counts = {str(v): int(c[i].sum()) for i, v in enumerate(labels)}
    p = binomial_tail(k, n, chance) if n else None
    reasons = []
    if n == 0:
        reasons.append("no held-out clips to measure it on")
    elif n < TRUST_MIN_VALID:
        reasons.append(f"only {n} held-out clips (< {TRUST_MIN_VALID}), too few to tell")
    few = [v for v, m in counts.items() if m < TRUST_MIN_PER_CLASS]
    if n and few:
        reasons.append(f"fewer than {TRUST_MIN_PER_CLASS} held-out clips of class(es) {few} (counts {counts})")
    if p is not None and p > TRUST_ALPHA:
        reasons.append(f"{k}/{n} correct is not clearly above chance {chance:.1%} "
                       f"(one-sided binomial p={p:.3g} > {TRUST_ALPHA})")
    out: dict[str, Any] = {"ok": not reasons, "reasons": reasons, "p_value_vs_chance": p, "num_valid": n,
                           "num_correct": k, "accuracy": k / n if n else None, "chance": chance,
                           "per_class_valid": counts}
    if reasons:
        acc = f"{k / n:.1%} on {n} held-out clips" if n else "unmeasured"
        out["warning"] = f"the judge's held-out accuracy ({acc}) cannot be trusted: {'; '.join(reasons)}"
    return out


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


def judge_vocabulary(entries: Sequence[dict], label: str) -> Vocabulary:
    """The judge's classes: the vocabulary of field `label` as the data makes it for a diffusion model
    (:meth:`audiodiff.conditions.ConditionSpec.from_entries`: sorted ids), of one type and >= 2 values."""
    try:
        vocab = ConditionSpec.from_entries(entries, {"labels": label}).vocabulary
    except ConditionError as e:
        raise JudgeError(str(e)) from None
    kinds = {type(v) for v in vocab.values}
    if len(kinds) != 1:
        raise JudgeError(f"label field {label!r} must hold all integers or all strings (class labels); "
                         f"got types {sorted(k.__name__ for k in kinds)}")
    if len(vocab) < 2:
        raise JudgeError(f"label field {label!r} has only {len(vocab)} distinct value(s); a judge needs >= 2")
    return vocab


def _batch(clips: list[torch.Tensor], idx: list[int], num_samples: int, gen: torch.Generator | None,
           gain_db: float) -> torch.Tensor:
    """Stack clips into `(B, 1, num_samples)`; with a generator: random offsets and gains (augmentation)."""
    out = torch.zeros(len(idx), 1, num_samples)
    for j, i in enumerate(idx):
        o = 0.5 if gen is None else float(torch.rand((), generator=gen))
        out[j] = fit_length(clips[i].view(1, 1, -1), num_samples, torch.tensor([o], dtype=torch.float64))[0]
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
        from ...runs.meta import header

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
                mel: MelSpec | None = None, progress: bool = False, hooks: dict | None = None) -> tuple[Judge, dict]:
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
        `valid_nll_raw` / `valid_nll` (before / after calibration), counts, timing, and `trust`
        (:func:`held_out_trust`; when not ok, its warning is also logged).
    Raises:
        JudgeUsageError: no entry has field `label` (checked before any audio is read); JudgeError: other bad
            settings or data.
    """
    import hashlib

    from audiodiff.data.manifest import read_manifest, split_manifest

    from ...training.runtime import Runtime

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
    if not any(label in e for e in entries):
        where = manifest if isinstance(manifest, (str, Path)) else "the given manifest entries"
        raise JudgeUsageError(f"label={label!r} is not a field of {where}; fields: {label_fields_of(entries)}")
    vocab = judge_vocabulary(entries, label)
    labels = vocab.values
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
    y_train = torch.tensor([vocab.encode(e[label]) for e in train_e])
    y_valid = torch.tensor([vocab.encode(e[label]) for e in valid_e])
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
    with Runtime(out_dir, runtime, kind="judge", config=config, hooks=hooks) as rt:
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
        log.info("judge: held-out accuracy %.1f%% on %d clips (chance %.1f%%)", 100 * report["valid_accuracy"],
                 len(valid_e), 100 / len(labels))
    report["trust"] = held_out_trust(report.get("confusion", [[0] * len(labels)] * len(labels)), labels)
    if not report["trust"]["ok"]:
        log.warning("judge: %s", report["trust"]["warning"])
    report.update(load_seconds=round(t_load, 2), train_seconds=round(time.time() - t0 - t_load, 2))
    if out_dir is not None:
        out = judge.save(out_dir)
        (out / "train_report.json").write_text(json.dumps(report, indent=2))
        (out / "split.json").write_text(json.dumps(
            {"seed": seed, "valid_fraction": valid_fraction, "train": [e["path"] for e in train_e],
             "valid": [e["path"] for e in valid_e]}, indent=2))
    return judge, report


# ---------------------------------------------------------------------------- the task registry
def _train_from_config(cfg: dict, hooks: dict | None = None):
    """`{"task": "judge", "data": manifest, "label": field, "out": folder, ...train_judge's settings}` -> the folder."""
    args = {k: v for k, v in cfg.items() if k != "task"}
    missing = [k for k in ("data", "label") if k not in args]
    if missing:
        raise JudgeUsageError(f"a judge config needs {missing}; allowed keys: data, label, out and the settings of "
                              "audiodiff evaluate train-judge")
    out = args.pop("out", None)
    train_judge(args.pop("data"), args.pop("label"), out, hooks=hooks, **args)
    return None if out is None else Path(out)


tasks.register(tasks.TaskEntry("judge", "judge", resolve=dict, train=_train_from_config,
                               about="a classifier of real recordings that scores generated ones (evaluation/judge)"))
