"""`export_base`: a trained diffusion run written as a base that ships inside the package (see :mod:`.bases`)."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from .. import representations
from .bases import BASES_DIR, CARD
from .checkpoint import find_run_dir, load_checkpoint, save_checkpoint
from .meta import ADOPTED_DATA_KEYS, CheckpointError
from .quant import STORAGE, quantize_state

log = logging.getLogger("audiodiff.runs")

__all__ = ["export_base"]


def export_base(run, name: str, out_root=None, step: int | None = None, card: str | None = None,
                overwrite: bool = False, vocoder: dict | None = None) -> Path:
    """Write the newest (or `step`) checkpoint of diffusion `run` as base `name`: its EMA weights stored as int8
    per output channel (:mod:`.quant`), its meta and mel contract; the card (README.md) beside them.

    Args:
        run: a run or checkpoint folder (a full-weights diffusion run: a LoRA run stores adapters only).
        name: the base's name (a folder name: letters, digits, `_`, `-`).
        out_root: where base folders go (default: the package's `audiodiff/bases/`).
        card: the model card's text (README.md); None keeps the folder's card when there is one.
        overwrite: replace an existing base of that name (else an error).
        vocoder: the vocoder settings the base decodes with (`{"name": "griffinlim", "init": "pghi", "n_iter": 0}`);
            None keeps the run's.
    Returns:
        the base's folder.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name or ""):
        raise CheckpointError(f"base name {name!r} is not allowed; allowed: letters, digits, '_' and '-'")
    root = Path(out_root) if out_root is not None else BASES_DIR
    target = root / name
    old_card = (target / CARD).read_text() if (target / CARD).is_file() else None
    if target.exists() and not overwrite:
        raise CheckpointError(f"{target}: a base of that name exists; give overwrite=True to replace it")
    ck = load_checkpoint(run, step=step, train_state=False, kind="diffusion")
    meta = dict(ck["meta"])
    if meta.get("weights", "full") != "full" or meta.get("lora"):
        raise CheckpointError(f"{ck['dir']}: a base needs full weights; this run stores LoRA ({meta.get('weights')}): "
                              "fine-tune with 'train.lora={...,merge:true}' or fully")
    weights = ck["ema"] if ck["ema"] is not None else ck["model"]
    small = quantize_state(weights)  # int8 per output channel: a 5 M parameter network in about 5 MB
    meta.pop("step", None)
    meta["storage"] = STORAGE
    if vocoder is not None:
        from .vocoder import run_vocoder

        run_vocoder(vocoder, ck["mel"])  # settings it cannot build with are an error here, not at the first generate
        meta["vocoder"] = dict(vocoder)
    config = find_run_dir(Path(ck["dir"])) / "config.yaml"
    if config.is_file():  # what a fine-tune adopts (loudness, crops, ...): a base has no config.yaml of its own
        import yaml

        data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
        own = representations.representation_class(meta.get("representation", "waveform")).settings_keys
        meta["data"] = {k: v for k, v in data.items() if k in ADOPTED_DATA_KEYS or k in own}
    meta["base"] = {"name": name, "from_run": str(find_run_dir(Path(ck["dir"]))), "from_step": ck["step"],
                    "weights": "ema" if ck["ema"] is not None else "model"}
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(tmp, ck["step"], small, mel=ck["mel"], meta=meta)  # tmp/checkpoints/<step>/
    step_dir = max(p for p in (tmp / "checkpoints").iterdir() if p.name.isdigit())
    text = card if card is not None else old_card
    if text is not None:
        (step_dir / CARD).write_text(text)
    if target.exists():
        shutil.rmtree(target)
    root.mkdir(parents=True, exist_ok=True)
    step_dir.rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
    target.chmod(0o755)  # package data: readable by everyone (the checkpoint writer's temp folder is private)
    for p in target.iterdir():
        p.chmod(0o644)
    log.info("exported %s (step %d) as base %r: %s (%.1f MiB)", ck["dir"], ck["step"], name, target,
             sum(p.stat().st_size for p in target.iterdir()) / 2 ** 20)
    return target


