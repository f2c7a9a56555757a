"""Embedding Frechet distance with a pluggable embedder (FAD, Kilgour et al. 2019; FID, Heusel et al. 2017).

An :class:`Embedder` maps a batch of clips to one vector each. Three are registered:

- `judge` (default): the penultimate features of a trained :class:`~audiodiff.evaluation.judge.Judge`.
- `vggish`: VGGish (Hershey et al. 2017), the classic Frechet Audio Distance embedder; needs the
  `torchvggish` package and a local weights file (the `vggish-*.pth` state dict).
- `clap`: the audio tower of CLAP (Wu et al. 2023, LAION-CLAP); needs the `transformers` package and a
  local model folder (`config.json`, weights and `preprocessor_config.json`, e.g. a saved
  `laion/clap-htsat-unfused`).

Nothing here downloads: VGGish and CLAP are built only from a path the user gives, and a missing package
or file raises an error that says what to install or provide.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from audiodiff.evaluation.metrics import frechet_distance_features

from ..errors import AudiodiffError

__all__ = ["Embedder", "JudgeEmbedder", "VGGishEmbedder", "CLAPEmbedder", "EMBEDDERS", "build",
           "EmbedderError", "as_clips", "embed_frechet_distance"]


class EmbedderError(AudiodiffError, ValueError):
    """An embedder cannot be built (unknown name, missing package or weights) or applied."""


@runtime_checkable
class Embedder(Protocol):
    """Maps clips to vectors. `embed(audios, sample_rate) -> (B, D)`; `dim` is D."""

    name: str
    dim: int

    def embed(self, audios, sample_rate: int) -> torch.Tensor:  # pragma: no cover - protocol
        """Embeddings `(B, D)` of `audios` (a `(B, 1, T)` tensor or a list of `(T,)` / `(1, T)` clips)."""
        ...


def as_clips(audios) -> list[torch.Tensor]:
    """A `(B, 1, T)` / `(B, T)` tensor or a list of `(T,)` / `(1, T)` clips -> list of `(T,)` float tensors."""
    if isinstance(audios, np.ndarray):
        audios = torch.from_numpy(audios)
    if isinstance(audios, torch.Tensor):
        if audios.dim() == 3:
            if audios.shape[1] != 1:
                raise EmbedderError(f"embedders take mono audio (B, 1, T); got shape {tuple(audios.shape)}")
            audios = audios[:, 0]
        if audios.dim() != 2:
            raise EmbedderError(f"audio batch must be (B, 1, T) or (B, T); got shape {tuple(audios.shape)}")
        clips = list(audios)
    else:
        clips = []
        for a in audios:
            a = torch.as_tensor(a)
            if a.dim() == 2 and a.shape[0] == 1:
                a = a[0]
            if a.dim() != 1:
                raise EmbedderError(f"each clip must be (T,) or (1, T); got shape {tuple(a.shape)}")
            clips.append(a)
    if not clips:
        raise EmbedderError("no clips to embed")
    for i, c in enumerate(clips):
        if c.numel() == 0 or not torch.isfinite(c).all():
            raise EmbedderError(f"clip {i} is empty or contains NaN/inf samples")
    return [c.float() for c in clips]


def _resample(clip: torch.Tensor, sr: int, target: int) -> torch.Tensor:
    from audiodiff.audio import resample

    return resample(clip, sr, target)


class JudgeEmbedder:
    """Penultimate-layer features of a judge (default embedder). Clips are centre-cropped / padded."""

    name = "judge"

    def __init__(self, judge):
        self.judge = judge
        self.dim = judge.feature_dim

    def embed(self, audios, sample_rate: int, batch_size: int = 128) -> torch.Tensor:
        from audiodiff.evaluation.judge import fit_length

        n = self.judge.num_samples
        clips = [_resample(c, sample_rate, self.judge.sample_rate) for c in as_clips(audios)]
        batch = torch.cat([fit_length(c.view(1, 1, -1), n) for c in clips])
        return self.judge.features(batch, batch_size=batch_size)


def _require(module: str, pip_name: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EmbedderError(f"the {what} embedder needs the `{pip_name}` package: pip install {pip_name}") from None


def _require_path(weights, what: str, expect: str) -> Path:
    if weights is None:
        raise EmbedderError(f"the {what} embedder needs a local weights path (weights=<{expect}>); "
                            f"audiodiff never downloads model weights")
    p = Path(weights).expanduser()
    if not p.exists():
        raise EmbedderError(f"{what} weights {p} do not exist (expected {expect})")
    return p


class VGGishEmbedder:
    """VGGish embeddings (Hershey et al. 2017), 128-D, averaged over a clip's 0.96 s examples.

    Args:
        weights: local VGGish state dict (`.pth` from torchvggish's release, or `.safetensors` with the same
            keys: `features.*`, `embeddings.*`; PCA keys `pproc.*` are ignored — raw embeddings are used,
            as in Frechet Audio Distance).
        device: where to run.
    """

    name = "vggish"
    dim = 128
    sample_rate = 16000

    def __init__(self, weights=None, device=None):
        path = _require_path(weights, "vggish", "a VGGish state dict, .pth or .safetensors")
        vggish = _require("torchvggish.vggish", "torchvggish", "vggish")
        self._input = _require("torchvggish.vggish_input", "torchvggish", "vggish")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("pproc.")}
        self.model = vggish.VGG(vggish.make_layers())
        try:
            self.model.load_state_dict(state)
        except RuntimeError as e:
            raise EmbedderError(f"{path} is not a VGGish state dict: {e}") from None
        self.device = torch.device(device or "cpu")
        self.model.to(self.device).eval()

    @torch.no_grad()
    def embed(self, audios, sample_rate: int) -> torch.Tensor:
        out = []
        min_len = int(0.96 * self.sample_rate) + 1
        for c in as_clips(audios):
            c = _resample(c, sample_rate, self.sample_rate)
            if c.numel() < min_len:
                c = torch.nn.functional.pad(c, (0, min_len - c.numel()))
            ex = self._input.waveform_to_examples(c.numpy(), self.sample_rate)
            ex = torch.as_tensor(np.asarray(ex), dtype=torch.float32)
            if ex.dim() == 3:
                ex = ex.unsqueeze(1)  # (n, 1, 96, 64)
            out.append(self.model(ex.to(self.device)).mean(dim=0).cpu())
        return torch.stack(out)


class CLAPEmbedder:
    """LAION-CLAP audio embeddings (Wu et al. 2023) through `transformers`' ClapModel, from a local folder.

    Args:
        weights: a local folder saved with `ClapModel.save_pretrained` plus its feature extractor
            (`config.json`, `model.safetensors`, `preprocessor_config.json`). Loaded with
            `local_files_only=True`.
        device: where to run.
    """

    name = "clap"
    sample_rate = 48000

    def __init__(self, weights=None, device=None):
        path = _require_path(weights, "clap", "a folder with a saved transformers ClapModel")
        if not path.is_dir() or not (path / "config.json").is_file():
            raise EmbedderError(f"clap weights {path} must be a folder with config.json (ClapModel.save_pretrained)")
        tf = _require("transformers", "transformers", "clap")
        self.model = tf.ClapModel.from_pretrained(str(path), local_files_only=True)
        self.extractor = tf.ClapFeatureExtractor.from_pretrained(str(path), local_files_only=True)
        self.sample_rate = int(getattr(self.extractor, "sampling_rate", 48000))
        self.dim = int(self.model.config.projection_dim)
        self.device = torch.device(device or "cpu")
        self.model.to(self.device).eval()

    @torch.no_grad()
    def embed(self, audios, sample_rate: int, batch_size: int = 16) -> torch.Tensor:
        clips = [_resample(c, sample_rate, self.sample_rate).numpy() for c in as_clips(audios)]
        out = []
        for i in range(0, len(clips), batch_size):
            inputs = self.extractor(clips[i:i + batch_size], sampling_rate=self.sample_rate, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_features", "is_longer")}
            emb = self.model.get_audio_features(**inputs)
            emb = getattr(emb, "pooler_output", emb)
            out.append(emb.float().cpu())
        return torch.cat(out)


EMBEDDERS: dict[str, type] = {"judge": JudgeEmbedder, "vggish": VGGishEmbedder, "clap": CLAPEmbedder}


def build(cfg: dict[str, Any] | str = "judge", judge=None, device=None) -> Embedder:
    """Build an embedder from `{"name": ..., "weights": path}` (or just a name).

    `judge` (a Judge object) or `cfg["judge"]` (a judge folder) is needed for `name="judge"`;
    `cfg["weights"]` is needed for `vggish` and `clap`. Unknown names raise listing the allowed ones.
    """
    cfg = {"name": cfg} if isinstance(cfg, str) else dict(cfg)
    name = cfg.pop("name", "judge")
    if name not in EMBEDDERS:
        raise EmbedderError(f"unknown embedder {name!r}; allowed: {sorted(EMBEDDERS)}")
    if name == "judge":
        folder = cfg.pop("judge", None)
        if judge is None and folder is None:
            raise EmbedderError("the judge embedder needs a trained judge (judge=<folder>)")
        if cfg:
            raise EmbedderError(f"unknown option(s) {sorted(cfg)} for the judge embedder; allowed: ['judge']")
        if judge is None:
            from audiodiff.evaluation.judge import Judge

            judge = Judge.load(folder, device=device)
        return JudgeEmbedder(judge)
    unknown = sorted(set(cfg) - {"weights"})
    if unknown:
        raise EmbedderError(f"unknown option(s) {unknown} for the {name} embedder; allowed: ['weights']")
    return EMBEDDERS[name](weights=cfg.get("weights"), device=device)


def embed_frechet_distance(embedder: Embedder, audios_a, audios_b, sample_rate_a: int,
                           sample_rate_b: int | None = None) -> float:
    """Frechet distance between Gaussians fitted to the embeddings of two sets of clips.

    Args:
        embedder: any :class:`Embedder`. audios_a, audios_b: `(B, 1, T)` tensors or lists of clips.
        sample_rate_a, sample_rate_b: their rates (b defaults to a).
    """
    ea = embedder.embed(audios_a, sample_rate_a)
    eb = embedder.embed(audios_b, sample_rate_b or sample_rate_a)
    return frechet_distance_features(ea.double().numpy(), eb.double().numpy())

