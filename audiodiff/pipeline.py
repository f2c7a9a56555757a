"""`Pipeline`: a trained run turned into audio — generate, vary (SDEdit), inpaint and continue.

```python
pipe = Pipeline.from_pretrained("runs/tones", device="cuda")      # EMA weights; vocoder attached for mel models
out = pipe.generate(n=4, seconds=1.0, steps=25, labels=[60, 62, 64, 65], guidance=2.0, seed=0)
out.save("samples/tones", plot=True)
```
Seeds: `seed=s` gives item k the seed `s + k`; a list gives each item its own. Every item draws its noise from
its own CPU generator, so item k is the same whatever else is in the batch and on whichever device.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from . import guidance as guidance_mod
from . import models, objectives, samplers, schedules
from .audio import load as load_audio, resample, save as save_audio
from .mel import MelSpec


class PipelineError(ValueError):
    """A generation request the model cannot honour; the message names the allowed values."""


@dataclass
class Generated:
    """Generated audio `(B, C, T)` in [-1, 1] at `sample_rate`, with what was asked for each item."""

    audio: torch.Tensor
    sample_rate: int
    items: list[dict] = field(default_factory=list)
    mel: torch.Tensor | None = None

    def save(self, folder, plot: bool = False, prefix: str = "sample") -> list[Path]:
        """Write one 16-bit WAV per item (+ spectrogram PNGs with `plot=True`) and `generated.jsonl`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        with open(folder / "generated.jsonl", "w") as f:
            for i in range(self.audio.shape[0]):
                p = save_audio(folder / f"{prefix}_{i:03d}.wav", self.audio[i], self.sample_rate)
                paths.append(p)
                entry = {"path": p.name, "duration": self.audio.shape[-1] / self.sample_rate,
                         "sample_rate": self.sample_rate, **(self.items[i] if i < len(self.items) else {})}
                f.write(json.dumps(entry) + "\n")
                if plot:
                    fig = self.plot(indices=[i])
                    fig.savefig(folder / f"{prefix}_{i:03d}.png", dpi=80, bbox_inches="tight")
                    import matplotlib.pyplot as plt

                    plt.close(fig)
        return paths

    def plot(self, indices: Sequence[int] | None = None):
        """Matplotlib figure with a log-mel spectrogram per item (librosa.display)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import librosa
        import librosa.display
        import matplotlib.pyplot as plt
        import numpy as np

        indices = list(range(self.audio.shape[0])) if indices is None else list(indices)
        fig, axes = plt.subplots(len(indices), 1, figsize=(6, 2.2 * len(indices)), squeeze=False)
        for ax, i in zip(axes[:, 0], indices):
            y = self.audio[i, 0].float().cpu().numpy()
            n_fft = int(min(1024, 2 ** np.floor(np.log2(max(len(y), 64)))))  # short clips get a shorter window
            hop = n_fft // 8
            S = librosa.feature.melspectrogram(y=y, sr=self.sample_rate, n_fft=n_fft, hop_length=hop,
                                               n_mels=min(80, n_fft // 8))
            librosa.display.specshow(librosa.power_to_db(S, ref=np.max), sr=self.sample_rate, hop_length=hop,
                                     x_axis="time", y_axis="mel", ax=ax)
            asked = self.items[i] if i < len(self.items) else {}
            ax.set_title(", ".join(f"{k}={v}" for k, v in asked.items()) or f"item {i}", fontsize=8)
        fig.tight_layout()
        return fig


class Pipeline:
    """Network + denoiser + sampler defaults (+ vocoder for mel models) of one trained run.

    Args:
        net: the denoising network (EMA weights for generation).
        meta: the checkpoint's `meta.json` (model, objective, schedule, sampler, representation,
            sample_rate, segment_samples, conditions, vocab, vocoder).
        device: torch device (default: CUDA when available).
        mel: the model's MelSpec (mel models).
        vocoder: a vocoder whose `.mel` contract equals `mel` (mel models; built from meta when None).
    """

    def __init__(self, net, meta: dict, device=None, mel: MelSpec | None = None, vocoder=None, dtype=None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.meta = meta
        self.net = net.to(self.device).eval()
        self.dtype = dtype
        self.denoiser = objectives.build(self.net, meta["objective"]).to(self.device).eval()
        self.sample_rate = int(meta["sample_rate"])
        self.representation = meta.get("representation", "waveform")
        self.mel = mel
        self.vocoder = None
        if self.representation == "mel":
            if mel is None:
                raise PipelineError("a mel model needs its MelSpec (mel.json in the checkpoint)")
            self.vocoder = vocoder if vocoder is not None else self._build_vocoder(meta.get("vocoder"))
            check = getattr(self.vocoder, "mel", None)
            if check is None:
                raise PipelineError(f"vocoder {type(self.vocoder).__name__} has no MelSpec (.mel)")
            mel.check_compatible(check, "the mel model's and the vocoder's mel contracts")
        conds = meta.get("conditions") or {}
        self.condition = next((k for k in ("pitch", "labels") if k in conds), None)
        self.vocab = meta.get("vocab")

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None, use_ema: bool = True, vocoder=None,
                        step: int | None = None) -> "Pipeline":
        """Load a run directory or checkpoint directory (never executes code from it).

        Args:
            path: `runs/<name>` (newest checkpoint), `runs/<name>/checkpoints/<step>`, or a run with `step=`.
            device: where to run; default CUDA when available.
            dtype: optional autocast dtype for sampling (e.g. `torch.bfloat16` on GPU).
            use_ema: load the EMA weights (default) or the raw training weights.
            vocoder: a vocoder object or directory to use instead of the run's own (contracts are checked).
        """
        from .training.checkpoint import load_checkpoint

        ck = load_checkpoint(path, step=step, train_state=False)
        meta = ck["meta"]
        if meta.get("kind", "diffusion") != "diffusion":
            raise PipelineError(f"{ck['dir']} holds a {meta.get('kind')!r} checkpoint, not a diffusion model")
        net = models.build(meta["model"])
        weights = ck["ema"] if (use_ema and ck["ema"] is not None) else ck["model"]
        if meta.get("lora"):  # a LoRA fine-tune: rebuild the adapters, load, then fold them into the weights
            from .training.lora import apply_lora, merge_lora

            apply_lora(net, **meta["lora"])
            net.load_state_dict(weights)
            merge_lora(net)
        else:
            net.load_state_dict(weights)
        if isinstance(vocoder, (str, Path)):
            from .vocoders import load_vocoder

            vocoder = load_vocoder(vocoder)
        return cls(net, meta, device=device, mel=ck["mel"], vocoder=vocoder, dtype=dtype)

    def _build_vocoder(self, cfg):
        from . import vocoders

        if cfg is None:
            cfg = {"name": "griffinlim"}
        cfg = dict(cfg)
        if cfg.get("path"):
            return vocoders.load_vocoder(cfg["path"]).to(self.device)
        return vocoders.build({**cfg, "mel": self.mel.to_dict()}).to(self.device)

    # ------------------------------------------------------------------ requests
    def _length(self, seconds) -> int:
        """Samples (waveform) or frames (mel) for `seconds`, with a clear error for bad values."""
        default_s = self.meta["segment_samples"] / self.sample_rate
        if seconds is None:
            seconds = default_s
        limit = max(60.0, 20 * default_s)
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or not 0 < seconds <= limit:
            raise PipelineError(f"seconds={seconds!r} is not allowed; allowed: 0 < seconds <= {limit:g} "
                                f"(trained on {default_s:g} s segments)")
        if self.representation == "mel":
            return max(1, round(seconds * self.sample_rate / self.mel.hop_length))
        return max(1, round(seconds * self.sample_rate))

    def _shape(self, n: int, length: int):
        if self.representation == "mel":
            return (n, 1, self.mel.n_mels, length)
        return (n, int(self.meta.get("channels", 1)), length)

    def allowed_labels(self):
        conds = self.meta.get("conditions") or {}
        allowed = []
        if "labels" in conds:
            allowed.append(f"labels in {list(self.vocab or [])}")
        if "pitch" in conds:
            lo, hi = self.meta.get("pitch_range") or (0, 127)
            allowed.append(f"MIDI pitches {lo}..{hi}")
        return "; ".join(allowed) or "none (this model is unconditional)"

    def _cond(self, labels, n: int, pitch=None) -> tuple[dict, list[dict]]:
        """Network conditions and the per-item record of what was asked.

        A pitch-only model takes its pitches as `labels` (the short form); a model conditioned on both a class
        and a pitch takes class values as `labels` and MIDI pitches as `pitch`.
        """
        conds = self.meta.get("conditions") or {}
        if "pitch" in conds and "labels" not in conds and pitch is None:
            labels, pitch = None, labels
        cond, items = {}, [{} for _ in range(n)]
        if labels is not None:
            if "labels" not in conds:
                raise PipelineError(f"labels={labels} given but this model takes no class labels; "
                                    f"allowed: {self.allowed_labels()}")
            labels = self._per_item(labels, n, "labels")
            vocab = list(self.vocab or [])
            bad = [v for v in labels if v not in vocab]
            if bad:
                raise PipelineError(f"labels {bad} are not in the model's vocabulary; allowed: {vocab}")
            cond["labels"] = torch.tensor([vocab.index(v) for v in labels], device=self.device)
            for it, v in zip(items, labels):
                it[conds["labels"]] = v
        if pitch is not None:
            if "pitch" not in conds:
                raise PipelineError(f"pitch={pitch} given but this model takes no pitch; allowed: {self.allowed_labels()}")
            pitch = self._per_item(pitch, n, "labels" if "labels" not in conds else "pitches")
            lo, hi = self.meta.get("pitch_range") or (0, 127)
            bad = [p for p in pitch if not isinstance(p, (int, float)) or not lo <= p <= hi]
            if bad:
                raise PipelineError(f"pitch labels {bad} are outside the model's range; allowed: MIDI pitches {lo}..{hi}")
            cond["pitch"] = torch.tensor([float(p) for p in pitch], device=self.device)
            for it, p in zip(items, pitch):
                it["pitch"] = p
        return cond, items

    @staticmethod
    def _per_item(values, n: int, what: str) -> list:
        values = list(values) if isinstance(values, (list, tuple)) else [values] * n
        if len(values) != n:
            raise PipelineError(f"got {len(values)} {what} for n={n}; give one per item or a single one")
        return values

    def _seeds(self, seed, n: int) -> list[int]:
        if seed is None:
            seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        if isinstance(seed, (list, tuple)):
            if len(seed) != n:
                raise PipelineError(f"got {len(seed)} seeds for n={n}; give one per item or a single int")
            return [int(s) for s in seed]
        return [int(seed) + k for k in range(n)]

    def _sigmas(self, steps, sampler):
        sched = dict(self.meta.get("schedule") or {"name": "karras"})
        name = sched.pop("name", "karras")
        steps = int(steps or (self.meta.get("sampler") or {}).get("steps", 25))
        if steps < 1:
            raise PipelineError(f"steps={steps} is not allowed; allowed: an integer >= 1")
        method = sampler or (self.meta.get("sampler") or {}).get("method", "dpmpp_2m")
        if method not in samplers.SAMPLERS:
            raise PipelineError(f"unknown sampler {method!r}; allowed: {sorted(samplers.SAMPLERS)}")
        return schedules.build(name, steps, **sched).to(self.device), method

    # ------------------------------------------------------------------ core
    @torch.no_grad()
    def _run(self, shape, seeds, sigmas, method, cond, guidance, progress, wrap=None, x_start=None):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        noise = samplers.randn(shape, self.device, torch.float32, gens)
        if guidance is not None and self.condition is None:
            raise PipelineError("guidance needs a conditional model; this model takes no labels")
        if guidance is not None and float(guidance) != 1.0 and not cond:
            # guidance mixes the conditional and unconditional branches: with no condition both are the same
            raise PipelineError(f"guidance={guidance} needs a condition to guide toward: pass labels= (and pitch= "
                                f"for a class + pitch model); allowed: {self.allowed_labels()}")
        den = guidance_mod.cfg(self.denoiser, guidance) if cond else self.denoiser
        if wrap is not None:
            den = wrap(den)
        ctx = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else _null()
        with ctx:
            # x_start: SDEdit starts from the input at sigmas[0] instead of pure noise
            return samplers.sample(den, noise, sigmas, method, generator=gens, progress=progress, x_start=x_start,
                                   **cond)

    def _to_audio(self, x: torch.Tensor) -> torch.Tensor:
        if self.representation == "mel":
            x = self.vocoder(x[:, 0].float())
        return x.float().clamp(-1, 1)

    def _from_audio(self, audio, sample_rate) -> torch.Tensor:
        """User audio `(C, T)`, `(B, C, T)`, a path or a Generated -> model space `(B, ...)` on device."""
        if isinstance(audio, Generated):
            audio, sample_rate = audio.audio, audio.sample_rate
        if isinstance(audio, (str, Path)):
            audio, sample_rate = load_audio(audio, self.sample_rate)
        audio = torch.as_tensor(audio, dtype=torch.float32)
        if audio.dim() == 1:
            audio = audio[None]
        if audio.dim() == 2:
            audio = audio[None]
        if audio.dim() != 3:
            raise PipelineError(f"audio must be (T,), (C, T) or (B, C, T); got shape {tuple(audio.shape)}")
        if sample_rate is not None and sample_rate != self.sample_rate:
            audio = resample(audio, sample_rate, self.sample_rate)
        audio = audio.to(self.device)
        if self.representation == "mel":
            return self.mel(audio.mean(1)).unsqueeze(1)
        want = int(self.meta.get("channels", 1))
        if audio.shape[1] != want:
            if want == 1:
                audio = audio.mean(1, keepdim=True)
            else:
                raise PipelineError(f"the model makes {want}-channel audio; got {audio.shape[1]} channels")
        return audio

    # ------------------------------------------------------------------ public
    def generate(self, n: int = 1, seconds: float | None = None, steps: int | None = None, sampler: str | None = None,
                 labels=None, guidance: float | None = None, seed=None, batch_size: int | None = None,
                 progress: bool = True, pitch=None) -> Generated:
        """Generate `n` clips.

        Args:
            n: number of clips.
            seconds: length of each clip (default: the training segment length).
            steps: sampler steps (default: the run's sampler config).
            sampler: one of `samplers.SAMPLERS` (default: the run's).
            labels: one per item (or one for all): MIDI pitches for a pitch-conditioned model,
                vocabulary values for a class-conditioned one.
            guidance: classifier-free guidance scale (None/1 = plain conditional sampling).
            seed: int (item k gets `seed + k`) or a list of ints (one per item).
            batch_size: generate in chunks of this size (memory); results do not depend on it.
            pitch: MIDI pitches, for a model conditioned on both a class (`labels`) and a pitch.
        Returns:
            Generated with `.audio (n, C, T)` in [-1, 1] and `.sample_rate`.
        """
        if not isinstance(n, int) or n < 1:
            raise PipelineError(f"n={n!r} is not allowed; allowed: an integer >= 1")
        length = self._length(seconds)
        seeds = self._seeds(seed, n)
        sigmas, method = self._sigmas(steps, sampler)
        cond, items = self._cond(labels, n, pitch)
        bs = batch_size or n
        outs, mels = [], []
        for a in range(0, n, bs):
            sl = slice(a, min(n, a + bs))
            c = {k: v[sl] for k, v in cond.items()}
            x = self._run(self._shape(sl.stop - sl.start, length), seeds[sl], sigmas, method, c, guidance, progress)
            mels.append(x if self.representation == "mel" else None)
            outs.append(self._to_audio(x).cpu())
        for it, s in zip(items, seeds):
            it["seed"] = s
        mel = torch.cat(mels).cpu() if self.representation == "mel" else None
        return Generated(torch.cat(outs), self.sample_rate, items, mel)

    def variation(self, audio, strength: float = 0.5, sample_rate: int | None = None, steps: int | None = None,
                  sampler: str | None = None, labels=None, guidance=None, seed=None, progress: bool = True,
                  pitch=None) -> Generated:
        """SDEdit (Meng et al. 2022): noise the input to the schedule point `strength` in [0, 1] and denoise.

        Strength 0 returns the input unchanged; 1 starts from pure noise (a fresh sample).
        """
        if not 0.0 <= strength <= 1.0:
            raise PipelineError(f"strength={strength} is not allowed; allowed: 0 <= strength <= 1")
        x0 = self._from_audio(audio, sample_rate)
        if strength == 0:
            return Generated(self._to_audio(x0).cpu(), self.sample_rate, [{"strength": 0.0}] * x0.shape[0])
        sigmas, method = self._sigmas(steps, sampler)
        n_steps = len(sigmas) - 1
        start = min(n_steps - 1, int(round((1 - strength) * n_steps)))
        sub = sigmas[start:]
        cond, items = self._cond(labels, x0.shape[0], pitch)
        seeds = self._seeds(seed, x0.shape[0])
        x = self._run(x0.shape, seeds, sub, method, cond, guidance, progress, x_start=x0)
        return Generated(self._to_audio(x).cpu(), self.sample_rate,
                         [{**it, "strength": strength, "seed": s} for it, s in zip(items, seeds)])

    def inpaint(self, audio, mask, sample_rate: int | None = None, steps=None, sampler=None, labels=None,
                guidance=None, seed=None, progress: bool = True, pitch=None) -> Generated:
        """Regenerate where `mask` is 0 and keep the input where it is 1.

        Args:
            audio: `(C, T)` or `(B, C, T)` (or a path).
            mask: `(T,)`, `(B, T)` or broadcastable to the audio, in samples at the model's rate; for mel
                models it is mapped to frames (a frame is kept when all its hop's samples are).
        """
        x0 = self._from_audio(audio, sample_rate)
        m = torch.as_tensor(mask, dtype=torch.float32, device=self.device)
        while m.dim() < 3:
            m = m.unsqueeze(0)
        if self.representation == "mel":
            hop = self.mel.hop_length
            frames = x0.shape[-1]
            pad = frames * hop - m.shape[-1]
            m = torch.nn.functional.pad(m, (0, max(0, pad)), value=0)[..., :frames * hop]
            m = m.reshape(*m.shape[:-1], frames, hop).amin(-1).unsqueeze(-2)  # (B, 1, 1, frames)
        if m.shape[-1] != x0.shape[-1]:
            raise PipelineError(f"mask length {m.shape[-1]} does not match the audio length {x0.shape[-1]}")
        return self._masked(x0, m, steps, sampler, labels, guidance, seed, progress, {"task": "inpaint"}, pitch)

    def continue_(self, audio, seconds: float, sample_rate: int | None = None, steps=None, sampler=None,
                  labels=None, guidance=None, seed=None, progress: bool = True, pitch=None) -> Generated:
        """Continue `audio` by `seconds`: the prompt is kept and the rest generated (inpainting at the end)."""
        x0 = self._from_audio(audio, sample_rate)
        extra = self._length(seconds)
        keep = x0.shape[-1]
        x0 = torch.nn.functional.pad(x0, (0, extra))
        m = guidance_mod.continuation_mask((1,) * (x0.dim() - 1) + (x0.shape[-1],), keep, device=self.device)
        return self._masked(x0, m, steps, sampler, labels, guidance, seed, progress, {"task": "continue"}, pitch)

    def _masked(self, x0, m, steps, sampler, labels, guidance, seed, progress, what, pitch=None):
        sigmas, method = self._sigmas(steps, sampler)
        cond, items = self._cond(labels, x0.shape[0], pitch)
        seeds = self._seeds(seed, x0.shape[0])
        m = m.expand_as(x0)
        x = self._run(x0.shape, seeds, sigmas, method, cond, guidance, progress,
                      wrap=lambda d: guidance_mod.Inpaint(d, x0, m))
        return Generated(self._to_audio(x).cpu(), self.sample_rate, [{**it, **what, "seed": s} for it, s in zip(items, seeds)])


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
