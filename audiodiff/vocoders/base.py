"""The vocoder interface: normalised log-mel `(B, n_mels, frames)` -> waveform `(B, 1, frames * hop)`.

Every vocoder stores the :class:`~audiodiff.mel.MelSpec` it inverts (`.mel`) and refuses a mel that was
made under another contract or has the wrong shape (:class:`~audiodiff.mel.MelContractError`, naming the
fields). A vocoder folder holds `vocoder.json` (name + constructor settings), `mel.json` and
`model.safetensors`; nothing is pickled and loading executes no code from the folder.

The registry lives here too (:data:`VOCODERS`, :func:`vocoder_class`, :func:`build`): each subclass registers
itself under its `name` when it is defined, so :meth:`Vocoder.from_pretrained` builds whatever a folder names
without this module importing the subclasses (`audiodiff/vocoders/__init__.py` imports every built-in one, and
Python runs that file before this one can be imported). A vocoder *training run* is read by the run format:
:func:`audiodiff.runs.vocoder.load_vocoder`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import AudiodiffError
from ..jsonfile import read_json, short_reason as _first_line
from ..mel import MelContractError, MelSpec

CONFIG_FILE = "vocoder.json"
WEIGHTS_FILE = "model.safetensors"
MEL_FILE = "mel.json"


class VocoderError(AudiodiffError, ValueError):
    """A vocoder folder or config is missing or malformed; the message names it."""


# name -> class, filled by `Vocoder.__init_subclass__` as each vocoder class is defined
VOCODERS: dict[str, type["Vocoder"]] = {}


class Vocoder(nn.Module):
    """Base class: check the mel contract, synthesise, save / load without pickle.

    Subclasses set `name` and implement :meth:`synthesize` and :meth:`config`.

    Args:
        mel: the mel contract this vocoder inverts.
    """

    name: str = "base"
    # False for an algorithm with no weights (Griffin-Lim): a diffusion run may name it by its settings alone; one that
    # learns is named by the folder it was trained into (`vocoder.path`)
    trained: bool = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in vars(cls):  # a class that names itself is built by that name (`build`, `from_pretrained`)
            VOCODERS[cls.name] = cls

    def __init__(self, mel: MelSpec):
        super().__init__()
        if not isinstance(mel, MelSpec):
            raise TypeError(f"{type(self).__name__} needs a MelSpec; got {type(mel).__name__}")
        if not mel.center:
            raise MelContractError(f"{self.name} vocoder: MelSpec.center=False is not supported; allowed: center=True "
                                   "(frame k centred on sample k * hop, so frames * hop samples come out)")
        self.mel = mel

    # ------------------------------------------------------------------ contract
    def check_input(self, mel: torch.Tensor, mel_spec: MelSpec | None = None) -> None:
        """Raise :class:`MelContractError` if `mel` is not `(B, n_mels, frames)` under this vocoder's contract.

        Args:
            mel: `(B, n_mels, frames)` normalised log-mel.
            mel_spec: the contract `mel` was computed under; compared field by field when given.
        """
        who = f"{self.name} vocoder"
        if mel_spec is not None:
            self.mel.check_compatible(mel_spec, what=f"{who}: its mel contract and the input's")
        if not isinstance(mel, torch.Tensor):
            raise MelContractError(f"{who}: mel must be a torch.Tensor (B, n_mels, frames); got {type(mel).__name__}")
        self.mel.check_mel(mel, who=who)
        if mel.shape[-1] < 1:
            raise MelContractError(f"{who}: mel has no frames; shape {tuple(mel.shape)}")
        if not mel.is_floating_point():
            raise MelContractError(f"{who}: mel must be a float tensor; got {mel.dtype}")

    def output_length(self, frames: int) -> int:
        """Samples produced for `frames` mel frames: `frames * hop_length`."""
        return int(frames) * self.mel.hop_length

    def forward(self, mel: torch.Tensor, mel_spec: MelSpec | None = None) -> torch.Tensor:
        """Synthesise audio from normalised log-mel.

        Args:
            mel: `(B, n_mels, frames)` in the model range (`MelSpec.__call__`).
            mel_spec: optional contract of `mel`; refused with the differing fields if it is not this vocoder's.
        Returns:
            `(B, 1, frames * hop_length)` float32 waveform.
        """
        self.check_input(mel, mel_spec)
        wav = self.synthesize(mel)
        expect = (mel.shape[0], 1, self.output_length(mel.shape[-1]))
        if tuple(wav.shape) != expect:  # an internal bug, never the caller's
            raise RuntimeError(f"{self.name} vocoder produced {tuple(wav.shape)}, expected {expect}")
        return wav

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """Constructor settings (JSON values, no `mel`) that rebuild this vocoder with `build`."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ persistence
    def save(self, directory) -> Path:
        """Write `vocoder.json`, `mel.json` and `model.safetensors` into `directory` (created)."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        save_file(state, str(d / WEIGHTS_FILE))
        self.mel.save(d / MEL_FILE)
        with open(d / CONFIG_FILE, "w") as f:
            json.dump({"name": self.name, "config": self.config()}, f, indent=2, sort_keys=True)
        return d

    @classmethod
    def from_pretrained(cls, directory, device=None) -> "Vocoder":
        """Load a vocoder saved with :meth:`save` (a vocoder training run: :func:`audiodiff.runs.vocoder.load_vocoder`).

        Called on a subclass, the folder must hold that kind of vocoder.
        """
        d = Path(directory)
        if not (d / CONFIG_FILE).is_file() and ((d / "checkpoints").is_dir() or (d / "meta.json").is_file()):
            raise VocoderError(f"{d}: is a run or checkpoint folder, not a vocoder folder written by Vocoder.save; a "
                               "vocoder training run loads with audiodiff.runs.vocoder.load_vocoder")
        voc = from_state(*read_vocoder_dir(d), where=directory)
        if cls is not Vocoder and not isinstance(voc, cls):
            raise VocoderError(f"{directory} holds a {voc.name!r} vocoder, not {cls.name!r}")
        return voc.to(device) if device is not None else voc


def vocoder_class(name: str) -> type[Vocoder]:
    """The class registered under `name`; unknown names raise listing the allowed ones."""
    if name not in VOCODERS:
        raise VocoderError(f"unknown vocoder {name!r}; allowed: {sorted(VOCODERS)}")
    return VOCODERS[name]


def _as_mel(mel: Any) -> MelSpec:
    if isinstance(mel, MelSpec):
        return mel
    if mel is None:
        raise VocoderError("a vocoder needs a mel contract: pass mel=MelSpec(...) or a 'mel' dict in its config")
    if hasattr(mel, "items"):
        return MelSpec.from_dict(dict(mel))
    raise VocoderError(f"mel must be a MelSpec or a dict of its fields; got {type(mel).__name__}")


def build(cfg: dict, mel: MelSpec | dict | None = None) -> Vocoder:
    """Build a vocoder from `{"name": ..., **settings}` (settings as in `configs/vocoder/*.yaml`).

    Args:
        cfg: `name` plus constructor settings; may hold `mel` (a dict of MelSpec fields).
        mel: the mel contract; overrides `cfg["mel"]`.
    """
    cfg = dict(cfg)
    if "name" not in cfg:
        raise VocoderError(f"vocoder config needs a 'name'; allowed: {sorted(VOCODERS)}")
    cls = vocoder_class(cfg.pop("name"))
    cfg_mel = cfg.pop("mel", None)
    spec = _as_mel(mel if mel is not None else cfg_mel)
    try:
        return cls(spec, **cfg)
    except TypeError as e:
        import inspect

        allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "mel")]
        raise VocoderError(f"bad settings for vocoder {cls.name!r}: {e}; allowed settings: {allowed}") from None


def from_state(spec: dict, mel: MelSpec, state: dict[str, torch.Tensor], where) -> Vocoder:
    """The vocoder `spec` names (`{"name", "config"}`, as in `vocoder.json`) under `mel`, holding the weights
    `state`, in eval mode; VocoderError naming `where` (the folder or checkpoint they came from) when they do not fit.
    """
    voc = build({"name": spec["name"], **spec.get("config", {})}, mel=mel)
    own = voc.state_dict()
    shapes = [f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}" for k, v in state.items()
              if k in own and v.shape != own[k].shape]
    if shapes:
        raise VocoderError(f"{where}: weights do not fit a {spec['name']!r} vocoder with config {spec.get('config')}: "
                           f"shapes {shapes[:3]}")
    missing, unexpected = voc.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VocoderError(f"{where}: weights do not fit a {spec['name']!r} vocoder with config {spec.get('config')}: "
                           f"missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
    return voc.eval()


def read_vocoder_dir(directory) -> tuple[dict, MelSpec, dict[str, torch.Tensor]]:
    """Read `(vocoder.json contents, MelSpec, state dict)` from a vocoder folder; clear errors when incomplete."""
    from safetensors.torch import load_file

    d = Path(directory)
    if not d.is_dir():
        raise VocoderError(f"{d}: no such vocoder directory")
    missing = [n for n in (CONFIG_FILE, MEL_FILE, WEIGHTS_FILE) if not (d / n).is_file()]
    if missing:
        raise VocoderError(f"{d}: not a vocoder folder, missing {missing}")
    spec = _read_json(d / CONFIG_FILE)
    if not isinstance(spec, dict) or "name" not in spec or not isinstance(spec.get("config", {}), dict):
        raise VocoderError(f"{d / CONFIG_FILE}: expected {{'name': ..., 'config': {{...}}}}")
    mel_fields = _read_json(d / MEL_FILE)
    try:
        mel = MelSpec.from_dict(mel_fields) if isinstance(mel_fields, dict) else None
    except (MelContractError, TypeError, ValueError) as e:
        raise VocoderError(f"{d / MEL_FILE}: not a valid mel contract ({_first_line(e)})") from None
    if mel is None:
        raise VocoderError(f"{d / MEL_FILE}: expected a JSON object of MelSpec fields")
    from safetensors import SafetensorError

    try:
        state = load_file(str(d / WEIGHTS_FILE))
    except (SafetensorError, OSError) as e:
        raise VocoderError(f"{d / WEIGHTS_FILE}: not a readable safetensors file ({_first_line(e)}); "
                           f"{_DAMAGED}") from None
    return spec, mel, state


_DAMAGED = "the file is damaged or was cut short (an interrupted copy?): copy the vocoder folder again"


def _read_json(path: Path):
    """Parsed JSON from a vocoder folder's file; VocoderError naming it when it is empty or not JSON."""
    return read_json(path, VocoderError, _DAMAGED, obj=False)
