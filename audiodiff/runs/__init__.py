"""The run format: checkpoint I/O, the run meta (kind + format_version) and a run's weights at load time.

It sits below training and the pipeline (CONTRIBUTING.md "Layering"): training writes runs through it, the
pipeline, the vocoder loader and fine-tuning read them through it, and neither side imports the other.

- :mod:`.meta`: `KINDS`, `FORMAT_VERSION`, `header(kind)`, `read_kind`, `RunKindError`, `CheckpointError` (the bottom
  of the run format: it imports none of the modules below).
- :mod:`.checkpoint`: run directories, atomic checkpoints, `load_checkpoint(path, kind=...)`, `kind_at(path)`.
- :mod:`.weights`: a diffusion run's network (full weights, merged LoRA or LoRA adapters on a sha256-checked base).
- :mod:`.vocoder`: `load_vocoder` (a `Vocoder.save` folder or a vocoder training run).
- :mod:`.bases`: the trained bases shipped in `audiodiff/bases/`, by name (`list_bases`); :mod:`.export` writes one.
"""
from .bases import list_bases
from .checkpoint import RunNotFoundError, load_checkpoint, save_checkpoint
from .meta import FORMAT_VERSION, KINDS, CheckpointError, RunKindError, header, read_kind

__all__ = ["CheckpointError", "RunNotFoundError", "list_bases", "FORMAT_VERSION", "KINDS", "RunKindError", "header", "load_checkpoint", "read_kind",
           "save_checkpoint"]
