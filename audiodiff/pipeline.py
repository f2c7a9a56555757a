"""`Pipeline`: a trained run turned into audio — generate, vary (SDEdit), inpaint and continue.

```python
pipe = Pipeline.from_pretrained("runs/tones", device="cuda")      # EMA weights; vocoder attached for mel models
out = pipe.generate(n=4, seconds=1.0, steps=25, labels=[60, 62, 64, 65], guidance=2.0, seed=0)
out.save("samples/tones", plot=True)
```
Seeds: `seed=s` gives item k the seed `s + k`; a list gives each item its own. Every item draws its noise from
its own CPU generator, so item k is the same whatever else is in the batch and on whichever device.

Every request is checked before any sampling: counts (`n`, `steps`, `batch_size`) are ints >= 1, `guidance` a
finite number >= 0, `strength` in [0, 1], seeds ints in [0, 2**63-1]; a bad value is a one-line `PipelineError`
naming the argument and the allowed values (nothing is rounded or replaced by a default). `Generated.items` (and
`generated.jsonl`) record for each clip the run, checkpoint step, sampler, steps, guidance, seed and conditions.
`Generated.save` writes a whole folder or nothing (temporary sibling folder, then rename).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from . import guidance as guidance_mod
from . import generation, objectives, representations, samplers
from .audio import AudioError, load as load_audio, resample, save as save_audio
from .conditions import ConditionError, ConditionSpec
from .mel import MelSpec
from .representations import RepresentationError
from .errors import AudiodiffError, UsageError

MAX_SEED = 2 ** 63 - 1


class PipelineError(UsageError):
    """A generation request the model cannot honour; the message names the allowed values."""


class SaveError(AudiodiffError, OSError):
    """Generated files could not be written (full disk, no permission); names the file, leaves nothing half-written."""


def _count_arg(name: str, value) -> int:
    """`value` as an int >= 1, or a PipelineError naming `name` (bools, floats such as 4.0 and strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        hint = ""
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
                and float(value) == int(value):
            hint = f" (a float: pass the integer {int(value)})"
        raise PipelineError(f"{name}={value!r} is not allowed{hint}; allowed: an integer >= 1")
    if value < 1:
        raise PipelineError(f"{name}={value!r} is not allowed; allowed: an integer >= 1")
    return int(value)


def _real_arg(name: str, value, lo: float, hi: float | None, allowed: str) -> float:
    """`value` as a finite float in [lo, hi], or a PipelineError naming `name` and `allowed`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < lo or (hi is not None and value > hi):
        raise PipelineError(f"{name}={value!r} is not allowed; allowed: {allowed}")
    return float(value)


def _seed_ok(s) -> bool:
    return not isinstance(s, bool) and isinstance(s, numbers.Integral) and 0 <= s <= MAX_SEED


_SEED_ALLOWED = ("an integer in [0, 2**63-1] (item k uses seed + k), a list of such integers (one per item), "
                 "or None (random)")


@dataclass
class Generated:
    """Generated audio `(B, C, T)` in [-1, 1] at `sample_rate`, with what was asked for each item."""

    audio: torch.Tensor
    sample_rate: int
    items: list[dict] = field(default_factory=list)
    mel: torch.Tensor | None = None

    def save(self, folder, plot: bool = False, prefix: str = "sample", overwrite: bool = False) -> list[Path]:
        """Write one 16-bit WAV per item (+ spectrogram PNGs with `plot=True`) and `generated.jsonl` into `folder`.

        The files are written into a temporary sibling folder that is then renamed to `folder`, so `folder`
        holds either the complete new set or what it held before: never a mix of runs, never a partial file.

        Args:
            folder: the output folder; it must not exist or be empty unless `overwrite=True`.
            plot: also write a spectrogram PNG per item.
            prefix: file names are `<prefix>_000.wav`, ...
            overwrite: replace a non-empty `folder` as a whole (everything in it is removed, but only after
                the new folder is in place; on any failure the old folder is left as it was).
        Returns:
            The WAV paths inside `folder`.
        Raises:
            PipelineError: `folder` is a file, or is not empty and `overwrite` is False.
            SaveError: a file could not be written (e.g. a full disk); the message names it and nothing is left.
            AudioError: the audio cannot be written as WAV (e.g. NaN samples); nothing is left.
        """
        folder = Path(folder)
        if not isinstance(overwrite, bool):
            raise PipelineError(f"overwrite={overwrite!r} is not allowed; allowed: True or False")
        if not isinstance(prefix, str) or not prefix or os.sep in prefix or prefix.startswith("."):
            raise PipelineError(f"prefix={prefix!r} is not allowed; allowed: a non-empty file-name prefix "
                                "without '/' that does not start with '.'")
        if folder.exists() and not folder.is_dir():
            raise PipelineError(f"{folder} is a file, not a folder; choose another output folder")
        existing = sorted(folder.iterdir()) if folder.is_dir() else []
        if existing and not overwrite:
            names = ", ".join(p.name for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
            raise PipelineError(f"{folder} is not empty ({len(existing)} entries: {names}); pass overwrite=True "
                                f"(`overwrite=true` on the command line) to replace it, or choose another folder")
        target = folder.resolve()
        if target == Path.cwd() or target in Path.cwd().parents or target.parent == target:
            raise PipelineError(f"{folder} is the current folder, one above it or a root; "
                                "choose a folder of its own for generated files")
        parent = target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
            tmp.mkdir()
        except OSError as e:
            raise SaveError(f"{folder}: cannot create the output folder ({e.strerror or e})") from e
        current = None  # the file being written, for the message
        try:
            names = []
            lines = []
            for i in range(self.audio.shape[0]):
                name = f"{prefix}_{i:03d}.wav"
                current = name
                save_audio(tmp / name, self.audio[i], self.sample_rate)
                names.append(name)
                entry = {"path": name, "duration": self.audio.shape[-1] / self.sample_rate,
                         "sample_rate": self.sample_rate, **(self.items[i] if i < len(self.items) else {})}
                lines.append(json.dumps(entry, default=_jsonable))
                if plot:
                    current = f"{prefix}_{i:03d}.png"
                    fig = self.plot(indices=[i])
                    import matplotlib.pyplot as plt

                    try:
                        fig.savefig(tmp / current, dpi=80, bbox_inches="tight")
                    finally:
                        plt.close(fig)
            current = "generated.jsonl"
            with open(tmp / current, "w") as f:
                f.write("\n".join(lines) + "\n")
                f.flush()
                os.fsync(f.fileno())
            current = None
            self._move_into_place(tmp, target, folder)
        except AudioError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e.__cause__, OSError) or "could not be written" in e.problem:
                err = SaveError(f"{folder / current}: could not be written ({_os_reason(e.__cause__) or e.problem}); "
                                f"nothing was written to {folder}")
                err.errno = getattr(e.__cause__, "errno", None)
                raise err from e
            raise AudioError(folder / current, e.problem) from None
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            where = folder / current if current else folder
            err = SaveError(f"{where}: could not be written ({_os_reason(e)}); "
                            f"{folder} was left as it was")
            err.errno = e.errno
            raise err from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return [folder / n for n in names]

    @staticmethod
    def _move_into_place(tmp: Path, target: Path, folder: Path) -> None:
        """Rename the finished `tmp` folder to `target`; an old `target` is moved aside and removed only after."""
        if not target.exists():
            os.rename(tmp, target)
            return
        aside = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(target, aside)
        try:
            os.rename(tmp, target)
        except OSError:
            os.rename(aside, target)  # put the old folder back as it was
            raise
        shutil.rmtree(aside, ignore_errors=True)

    def plot(self, indices: Sequence[int] | None = None):
        """Matplotlib figure with a log-mel spectrogram per item (librosa.display), titled with what was asked."""
        from .plots import spectrogram_figure

        indices = list(range(self.audio.shape[0])) if indices is None else list(indices)
        titles = []
        for i in indices:
            asked = self.items[i] if i < len(self.items) else {}
            shown = {k: v for k, v in asked.items() if k not in ("run", "checkpoint_step") and v is not None
                     and v != {}}  # no sampler_options={} in every title
            titles.append(", ".join(f"{k}={v}" for k, v in shown.items()) or f"item {i}")
        return spectrogram_figure([self.audio[i] for i in indices], self.sample_rate, titles)


def _vocoder_settings(run_vocoder: dict | None, changes: dict | None) -> dict | None:
    """The run's vocoder settings (`meta["vocoder"]`; None is Griffin-Lim) with `changes` applied: a dict naming
    another vocoder (or a trained one's `path`) replaces them, any other dict changes or adds keys."""
    if changes is None:
        return run_vocoder
    own = dict(run_vocoder or {"name": "griffinlim"})
    changes = dict(changes)
    if "path" in changes or changes.get("name", own.get("name")) != own.get("name"):
        return changes  # another vocoder: run_vocoder checks that it can be built
    if "path" in own:
        raise PipelineError(f"vocoder={changes}: this run decodes with the trained vocoder at {own['path']}, whose "
                            "settings are its own; give a whole vocoder instead, e.g. {name: griffinlim, init: pghi}")
    return {**own, **changes}


class Pipeline:
    """Network + denoiser + sampler defaults (+ vocoder for mel models) of one trained run.

    Args:
        net: the denoising network (EMA weights for generation).
        meta: the checkpoint's `meta.json` (model, objective, schedule, sampler, representation,
            sample_rate, segment_samples, conditions, vocab, vocoder).
        device: torch device (default: CUDA when available).
        mel: the model's MelSpec (mel models).
        vocoder: a vocoder whose `.mel` contract equals `mel` (mel models; built from meta when None).
        run_dir, step: where the weights come from (set by `from_pretrained`; recorded in `Generated.items`).
    """

    def __init__(self, net, meta: dict, device=None, mel: MelSpec | None = None, vocoder=None, dtype=None,
                 run_dir=None, step: int | None = None):
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.step = step
        self._min_len: int | None = None
        from .device import resolve_device

        self.device = torch.device(resolve_device(device))  # a device this machine lacks: one line naming it
        self.meta = meta
        self.net = net.to(self.device).eval()
        self.dtype = dtype
        self.denoiser = objectives.build(self.net, meta["objective"]).to(self.device).eval()
        self.sample_rate = int(meta["sample_rate"])
        try:  # the run's representation (audiodiff/representations/): what the network sees, and how to hear it
            self.rep = representations.from_meta(meta, mel)
            if self.rep.wants_vocoder:
                if vocoder is None or isinstance(vocoder, dict):
                    vocoder = self._build_vocoder(_vocoder_settings(meta.get("vocoder"), vocoder), self.rep.contract)
                self.rep.with_vocoder(vocoder)
        except RepresentationError as e:
            raise PipelineError(str(e)) from None
        self.mel = self.rep.contract  # the mel contract of a mel model (None for a waveform model)
        self.vocoder = getattr(self.rep, "vocoder", None)
        self.condition_spec = ConditionSpec.from_meta(meta)  # the run's condition contract
        self.condition = next((k for k in ("pitch", "labels") if k in self.condition_spec.fields), None)
        self.vocab = None if self.condition_spec.vocab is None else list(self.condition_spec.vocab)

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
            vocoder: a vocoder object or directory to use instead of the run's own (contracts are checked), or a
                dict of settings changing the run's own (`{"init": "pghi", "n_iter": 0}`: Griffin-Lim from
                phase-gradient phase with no iterations; a dict with another `name` replaces it).
        """
        from .runs.checkpoint import find_run_dir, load_checkpoint
        from .runs.weights import diffusion_net

        ck = load_checkpoint(path, step=step, train_state=False, kind="diffusion")  # RunKindError for another kind
        meta = ck["meta"]
        net = diffusion_net(ck, use_ema=use_ema)  # full weights, merged LoRA, or LoRA adapters on their base
        if isinstance(vocoder, (str, Path)):
            from .runs.vocoder import load_vocoder

            vocoder = load_vocoder(vocoder)
        return cls(net, meta, device=device, mel=ck["mel"], vocoder=vocoder, dtype=dtype,
                   run_dir=find_run_dir(Path(ck["dir"])).resolve(), step=ck["step"])

    def _build_vocoder(self, cfg, contract):
        from .runs.vocoder import run_vocoder
        from .vocoders import VocoderError

        try:
            return run_vocoder(cfg, contract).to(self.device)
        except (VocoderError, ValueError) as e:  # unknown settings, or values outside what the vocoder allows
            raise PipelineError(f"vocoder: {e}") from None

    # ------------------------------------------------------------------ requests
    def _length(self, seconds, check_min: bool = True) -> int:
        """Samples (waveform) or frames (mel) for `seconds`, with a clear error for bad values."""
        default_s = self.meta["segment_samples"] / self.sample_rate
        if seconds is None:
            seconds = default_s
        limit = max(60.0, 20 * default_s)
        if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds) \
                or not 0 < seconds <= limit:
            raise PipelineError(f"seconds={seconds!r} is not allowed; allowed: 0 < seconds <= {limit:g} "
                                f"(trained on {default_s:g} s segments)")
        length = self.rep.length(seconds)
        if check_min and length < self.min_length():
            unit = self.rep.unit
            low = self.min_length() * self.rep.hop / self.sample_rate
            raise PipelineError(f"seconds={seconds!r} gives {length} {unit}; this model needs at least "
                                f"{self.min_length()} {unit}; allowed: {low:.6g} <= seconds <= {limit:g}")
        return length

    def min_length(self) -> int:
        """The shortest input the network takes, in model steps (samples, or mel frames), found by a dry run.

        A U-Net pads its input to a multiple of its downsampling, but normalisation layers need more than one
        position at the coarsest level, so very short inputs fail inside the network (and a mel model's
        vocoder needs enough frames for its STFT padding); this finds the first length that runs (once per
        pipeline) so requests can be refused with the number up front.
        """
        if self._min_len is None:
            m = getattr(self.net, "multiple", 1)
            m = int(m[-1] if isinstance(m, (tuple, list)) else m)
            found = 1  # when no length runs, something else is wrong: let the real error show
            sigma = torch.ones(1, device=self.device)
            with torch.no_grad():
                for k in range(8):
                    length = 1 if k == 0 else k * m + 1
                    try:
                        self.denoiser(torch.zeros(self._shape(1, length), device=self.device), sigma)
                    except (RuntimeError, ValueError):
                        continue
                    found = length
                    break
                found = self.rep.shortest_decodable(found, self.device)  # a vocoder may need more (STFT padding)
            self._min_len = found
        return self._min_len

    def min_samples(self) -> int:
        """The shortest audio (samples at `sample_rate`) that `variation` / `inpaint` / `continue_` accept."""
        return self.rep.min_samples(self.min_length())

    def _shape(self, n: int, length: int):
        return self.rep.shape(n, length)

    def allowed_labels(self) -> str:
        """The conditions a request may give, in words."""
        return self.condition_spec.allowed()

    def _cond(self, labels, n: int, pitch=None) -> tuple[dict, list[dict]]:
        """Network conditions and the per-item record of what was asked (:meth:`ConditionSpec.request`).

        A pitch-only model takes its pitches as `labels` (the short form); a model conditioned on both a class
        and a pitch takes class values as `labels` and MIDI pitches as `pitch`.
        """
        try:
            return self.condition_spec.request(labels, n, pitch, device=self.device)
        except ConditionError as e:
            raise PipelineError(str(e)) from None

    @staticmethod
    def _check_seed(seed) -> None:
        if seed is None or _seed_ok(seed):
            return
        if isinstance(seed, (list, tuple)):
            bad = [s for s in seed if not _seed_ok(s)]
            if not bad and seed:
                return
            raise PipelineError(f"seed={seed!r} is not allowed" + (f" ({bad[0]!r} is not)" if bad else "")
                                + f"; allowed: {_SEED_ALLOWED}")
        raise PipelineError(f"seed={seed!r} is not allowed; allowed: {_SEED_ALLOWED}")

    def _seeds(self, seed, n: int) -> list[int]:
        self._check_seed(seed)
        if seed is None:
            seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        if isinstance(seed, (list, tuple)):
            if len(seed) != n:
                raise PipelineError(f"got {len(seed)} seeds for n={n}; give one per item or a single int")
            return [int(s) for s in seed]
        if int(seed) + n - 1 > MAX_SEED:
            raise PipelineError(f"seed={seed!r} with n={n} makes item seeds up to {int(seed) + n - 1}; "
                                f"allowed: seed <= {MAX_SEED - n + 1} (item k uses seed + k, at most 2**63-1)")
        return [int(seed) + k for k in range(n)]

    def _check(self, steps, sampler, guidance, seed, n=None, batch_size=None, strength=None) -> tuple[int, str]:
        """Validate the arguments shared by generate / variation / inpaint / continue_ (before any work).

        Returns the resolved `(steps, sampler)` (the run's defaults for None). Raises PipelineError naming the
        argument and the allowed values: counts are ints >= 1 (never a bool, a float such as 4.0 or a string),
        guidance a finite number >= 0 or None, strength a finite number in [0, 1], seeds ints in [0, 2**63-1].
        """
        if n is not None:
            _count_arg("n", n)
        if batch_size is not None:
            _count_arg("batch_size", batch_size)
        run_method, run_steps, _ = generation.run_sampler(self.meta.get("sampler"))
        steps = _count_arg("steps", run_steps if steps is None else steps)
        method = run_method if sampler is None else sampler
        if not isinstance(method, str) or method not in samplers.SAMPLERS:
            raise PipelineError(f"unknown sampler {method!r}; allowed: {sorted(samplers.SAMPLERS)}")
        if guidance is not None:
            _real_arg("guidance", guidance, 0.0, None,
                      "a finite number >= 0 (1 = plain conditional sampling), or None")
        if strength is not None:
            _real_arg("strength", strength, 0.0, 1.0, "0 <= strength <= 1 (a finite number)")
        self._check_seed(seed)
        return steps, method

    def _sampler_options(self, method: str, given=None) -> dict:
        """The sampler's settings (eta, s_churn, ...): the run's `sampler.options` when `method` is the run's
        method (they belong to it), updated with `given`; checked before any sampling (PipelineError names them)."""
        run_method, _, run_options = generation.run_sampler(self.meta.get("sampler"))
        base = run_options if method == run_method else {}
        if given is not None and not isinstance(given, dict):
            raise PipelineError(f"sampler_options={given!r} is not allowed; allowed: a mapping of {method} settings "
                                f"{sorted(samplers.sampler_options(method))}, or None")
        try:
            return samplers.check_options(method, {**base, **(given or {})}, where="sampler_options")
        except samplers.SamplerError as e:
            raise PipelineError(str(e)) from None

    def _provenance(self, steps: int, method: str, guidance, options: dict | None = None) -> dict:
        """What every item records about how it was made (run, checkpoint step, sampler and its options, steps,
        guidance, and for a mel model the vocoder that decoded it)."""
        made = {"run": None if self.run_dir is None else str(self.run_dir), "checkpoint_step": self.step,
                "sampler": method, "steps": steps, "guidance": None if guidance is None else float(guidance),
                "sampler_options": self._sampler_options(method) if options is None else options}
        if self.vocoder is not None:
            made["vocoder"] = {"name": self.vocoder.name, **self.vocoder.config()}
        return made

    def _sigmas(self, steps: int, method: str):
        return generation.noise_levels(self.meta.get("schedule"), steps, self.device)

    # ------------------------------------------------------------------ core
    @torch.no_grad()
    def _run(self, shape, seeds, sigmas, method, cond, guidance, progress, wrap=None, x_start=None, options=None):
        options = self._sampler_options(method) if options is None else options
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        noise = samplers.randn(shape, self.device, torch.float32, gens)
        if guidance is not None and self.condition is None:
            raise PipelineError("guidance needs a conditional model; this model takes no labels")
        if guidance is not None and float(guidance) != 1.0 and not cond:
            # guidance mixes the conditional and unconditional branches: with no condition both are the same
            raise PipelineError(f"guidance={guidance} needs a condition to guide toward: pass labels= (and pitch= "
                                f"for a class + pitch model); allowed: {self.allowed_labels()}")
        # x_start: SDEdit starts from the input at sigmas[0] instead of pure noise
        return generation.generate(self.denoiser, noise, sigmas, method, options, generator=gens, cond=cond,
                                   guidance=guidance, wrap=wrap, x_start=x_start, progress=progress, dtype=self.dtype)

    def _to_audio(self, x: torch.Tensor) -> torch.Tensor:
        return self.rep.decode(x).float().clamp(-1, 1)

    def _from_audio(self, audio, sample_rate, what: str = "the input") -> torch.Tensor:
        """User audio `(C, T)`, `(B, C, T)`, a path or a Generated -> model space `(B, ...)` on device.

        Raises PipelineError for a bad shape, non-finite samples, or audio shorter than the model takes
        (`min_samples()`), naming the minimum.
        """
        if isinstance(audio, Generated):
            audio, sample_rate = audio.audio, audio.sample_rate
        if isinstance(audio, (str, Path)):
            audio, sample_rate = load_audio(audio, self.sample_rate)
        if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral)
                                        or sample_rate <= 0):
            raise PipelineError(f"sample_rate={sample_rate!r} is not allowed; allowed: a positive integer (Hz) "
                                f"or None (= the model's {self.sample_rate} Hz)")
        audio = torch.as_tensor(audio, dtype=torch.float32)
        if audio.dim() == 1:
            audio = audio[None]
        if audio.dim() == 2:
            audio = audio[None]
        if audio.dim() != 3:
            raise PipelineError(f"audio must be (T,), (C, T) or (B, C, T); got shape {tuple(audio.shape)}")
        if audio.shape[0] == 0 or audio.shape[1] == 0:
            raise PipelineError(f"audio of shape {tuple(audio.shape)} holds no items or no channels; "
                                "allowed: (T,), (C, T) or (B, C, T) with B, C >= 1")
        if not torch.isfinite(audio).all():
            raise PipelineError(f"audio for {what} contains {int((~torch.isfinite(audio)).sum())} NaN or infinite "
                                "samples; allowed: finite samples in [-1, 1]")
        if sample_rate is not None and sample_rate != self.sample_rate:
            if audio.shape[-1] == 0:
                raise PipelineError(self._too_short(0, what))
            audio = resample(audio, int(sample_rate), self.sample_rate)
        if audio.shape[-1] < self.min_samples():
            raise PipelineError(self._too_short(audio.shape[-1], what))
        try:
            return self.rep.encode(audio.to(self.device))
        except RepresentationError as e:
            raise PipelineError(str(e)) from None

    def _too_short(self, got: int, what: str) -> str:
        low = self.min_samples()
        return (f"audio for {what} has {got} samples at {self.sample_rate} Hz; this model needs at least {low} "
                f"samples ({low / self.sample_rate:.6g} s) per item")

    # ------------------------------------------------------------------ public
    def generate(self, n: int = 1, seconds: float | None = None, steps: int | None = None, sampler: str | None = None,
                 labels=None, guidance: float | None = None, seed=None, batch_size: int | None = None,
                 progress: bool = True, pitch=None, sampler_options: dict | None = None) -> Generated:
        """Generate `n` clips.

        Args:
            n: number of clips, an int >= 1.
            seconds: length of each clip (default: the training segment length).
            steps: sampler steps, an int >= 1 (default: the run's sampler config).
            sampler: one of `samplers.SAMPLERS` (default: the run's).
            labels: one per item (or one for all): MIDI pitches for a pitch-conditioned model,
                vocabulary values for a class-conditioned one (of the vocabulary's type: 3, not '3').
            guidance: classifier-free guidance scale, a finite number >= 0 (None/1 = plain conditional sampling).
            seed: int in [0, 2**63-1] (item k gets `seed + k`) or a list of ints (one per item); None = random.
            batch_size: generate in chunks of this size (memory), an int >= 1; results do not depend on it.
            pitch: MIDI pitches, for a model conditioned on both a class (`labels`) and a pitch.
            sampler_options: the method's settings, e.g. `{"eta": 0.5}` (`samplers.sampler_options(method)` lists
                them); they update the run's `sampler.options` when the method is the run's, else the method's own
                defaults apply to what is not given.
        Returns:
            Generated with `.audio (n, C, T)` in [-1, 1], `.sample_rate` and `.items` (per clip: run,
            checkpoint_step, sampler, sampler_options, steps, guidance, seed and the conditions asked for).
        Raises:
            PipelineError: any argument outside its allowed values (named in the one-line message).
        """
        steps, method = self._check(steps, sampler, guidance, seed, n=n, batch_size=batch_size)
        options = self._sampler_options(method, sampler_options)
        n = int(n)
        length = self._length(seconds)
        seeds = self._seeds(seed, n)
        sigmas = self._sigmas(steps, method)
        cond, items = self._cond(labels, n, pitch)
        bs = n if batch_size is None else int(batch_size)
        outs, mels = [], []
        for a in range(0, n, bs):
            sl = slice(a, min(n, a + bs))
            c = {k: v[sl] for k, v in cond.items()}
            x = self._run(self._shape(sl.stop - sl.start, length), seeds[sl], sigmas, method, c, guidance, progress,
                          options=options)
            mels.append(self.rep.spectrogram(x))
            outs.append(self._to_audio(x).cpu())
        made = self._provenance(steps, method, guidance, options)
        items = [{**made, **it, "seed": s} for it, s in zip(items, seeds)]
        mel = torch.cat(mels).cpu() if mels and mels[0] is not None else None
        return Generated(torch.cat(outs), self.sample_rate, items, mel)

    def variation(self, audio, strength: float = 0.5, sample_rate: int | None = None, steps: int | None = None,
                  sampler: str | None = None, labels=None, guidance=None, seed=None, progress: bool = True,
                  pitch=None) -> Generated:
        """SDEdit (Meng et al. 2022): noise the input to the schedule point `strength` in [0, 1] and denoise.

        Strength 0 returns the input unchanged; 1 starts from pure noise (a fresh sample). The audio must
        hold at least `min_samples()` samples per item.
        """
        if strength is None:
            raise PipelineError("strength=None is not allowed; allowed: 0 <= strength <= 1 (a finite number)")
        steps, method = self._check(steps, sampler, guidance, seed, strength=strength)
        x0 = self._from_audio(audio, sample_rate, "variation")
        made = {**self._provenance(steps, method, guidance), "task": "variation"}
        if strength == 0:
            return Generated(self._to_audio(x0).cpu(), self.sample_rate,
                             [{**made, "strength": 0.0} for _ in range(x0.shape[0])])
        sigmas = self._sigmas(steps, method)
        n_steps = len(sigmas) - 1
        start = min(n_steps - 1, int(round((1 - strength) * n_steps)))
        sub = sigmas[start:]
        cond, items = self._cond(labels, x0.shape[0], pitch)
        seeds = self._seeds(seed, x0.shape[0])
        x = self._run(x0.shape, seeds, sub, method, cond, guidance, progress, x_start=x0)
        return Generated(self._to_audio(x).cpu(), self.sample_rate,
                         [{**made, **it, "strength": float(strength), "seed": s} for it, s in zip(items, seeds)])

    def inpaint(self, audio, mask, sample_rate: int | None = None, steps=None, sampler=None, labels=None,
                guidance=None, seed=None, progress: bool = True, pitch=None) -> Generated:
        """Regenerate where `mask` is 0 and keep the input where it is 1.

        Args:
            audio: `(C, T)` or `(B, C, T)` (or a path), at least `min_samples()` samples.
            mask: `(T,)`, `(B, T)` or broadcastable to the audio, in samples at the model's rate; for mel
                models it is mapped to frames (a frame is kept when all its hop's samples are).
        """
        steps, method = self._check(steps, sampler, guidance, seed)
        x0 = self._from_audio(audio, sample_rate, "inpaint")
        m = torch.as_tensor(mask, dtype=torch.float32, device=self.device)
        if not torch.isfinite(m).all() or bool(((m < 0) | (m > 1)).any()):
            raise PipelineError("mask values must be finite and in [0, 1] (1 = keep, 0 = regenerate)")
        while m.dim() < 3:
            m = m.unsqueeze(0)
        m = self.rep.model_mask(m, x0.shape[-1])
        if m.shape[-1] != x0.shape[-1]:
            raise PipelineError(f"mask length {m.shape[-1]} does not match the audio length {x0.shape[-1]}")
        return self._masked(x0, m, steps, method, labels, guidance, seed, progress, {"task": "inpaint"}, pitch)

    def continue_(self, audio, seconds: float, sample_rate: int | None = None, steps=None, sampler=None,
                  labels=None, guidance=None, seed=None, progress: bool = True, pitch=None) -> Generated:
        """Continue `audio` by `seconds`: the prompt is kept and the rest generated (inpainting at the end).

        The prompt must hold at least `min_samples()` samples per item.
        """
        steps, method = self._check(steps, sampler, guidance, seed)
        extra = self._length(seconds, check_min=False)
        x0 = self._from_audio(audio, sample_rate, "continue_")
        keep = x0.shape[-1]
        x0 = torch.nn.functional.pad(x0, (0, extra))
        m = guidance_mod.continuation_mask((1,) * (x0.dim() - 1) + (x0.shape[-1],), keep, device=self.device)
        return self._masked(x0, m, steps, method, labels, guidance, seed, progress,
                            {"task": "continue", "seconds": float(seconds)}, pitch)

    def _masked(self, x0, m, steps, method, labels, guidance, seed, progress, what, pitch=None):
        sigmas = self._sigmas(steps, method)
        cond, items = self._cond(labels, x0.shape[0], pitch)
        seeds = self._seeds(seed, x0.shape[0])
        m = m.expand_as(x0)
        x = self._run(x0.shape, seeds, sigmas, method, cond, guidance, progress,
                      wrap=lambda d: guidance_mod.Inpaint(d, x0, m))
        made = {**self._provenance(steps, method, guidance), **what}
        return Generated(self._to_audio(x).cpu(), self.sample_rate,
                         [{**made, **it, "seed": s} for it, s in zip(items, seeds)])


def _jsonable(o):
    """numpy / torch scalars as their Python value in `generated.jsonl`; anything else as its text."""
    return o.item() if hasattr(o, "item") and getattr(o, "ndim", 0) == 0 else str(o)


def _os_reason(e) -> str:
    """The OS's words for an OSError (e.g. 'No space left on device'), or its text."""
    if e is None:
        return ""
    if getattr(e, "errno", None) and not getattr(e, "strerror", None):
        return os.strerror(e.errno)
    return getattr(e, "strerror", None) or str(e)
