"""Fine-tuning from a trained run: what the new run adopts from its base, and the base's weights fitted to it.

A fine-tune (`train.init_from=<run>`) keeps everything that defines what the base model *means*: the network,
the parameterisation, the representation and mel contract, the sample rate, the segment length and loudness
policy, the conditions and their vocabulary. The rule for the data section is simple and the same for the
command line and the Python API: **data settings present in the fine-tune config win; absent ones come from
the base run** (its resolved `config.yaml`, or its `meta.json` for a checkpoint folder copied alone). The
shipped `configs/data/custom.yaml` therefore names only the manifest. Two settings cannot be changed, because
the network would not understand the result: `data.representation` and `data.mel` (an error names them);
the sample rate is always the model's (files are resampled to it, and the log says so when the config asked
for another).

Conditions: a condition of the base whose field the new manifest lacks falls back to the network's null
embedding (the log names it); a label outside the base vocabulary is an error, unless
`finetune.extend_vocab=true`, which appends rows for the new labels to the label embedding (initialised from
the null row: a new class starts as the unconditional model) and trains them, under LoRA as well.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .. import representations
from ..runs.checkpoint import load_checkpoint
from ..runs.meta import ADOPTED_DATA_KEYS, RunKindError  # the data settings a fine-tune adopts from its base
from ..runs.weights import FinetuneError  # the load-time half of fine-tuning is run format (runs/weights.py)

log = logging.getLogger("audiodiff.train")

FINETUNE_DEFAULTS = {"extend_vocab": False}


def load_base(init_from) -> dict:
    """The base checkpoint (`load_checkpoint` output, no train state) plus `data`: the base run's data section."""
    try:
        init = load_checkpoint(init_from, train_state=False, kind="diffusion")
    except RunKindError as e:
        raise RunKindError(f"train.init_from={init_from}: {e}") from None
    init["data"] = base_data_section(init)
    return init


def base_data_section(init: dict) -> dict:
    """The data settings the base was trained with: its run's `config.yaml`, else rebuilt from `meta.json`."""
    import yaml

    meta, ckpt_dir = init["meta"], Path(init["dir"])
    config = ckpt_dir.parent.parent / "config.yaml" if ckpt_dir.parent.name == "checkpoints" else None
    data = dict(meta.get("data") or {})  # a shipped base stores its run's data settings in meta.json
    if config is not None and config.is_file():
        try:
            data = dict((yaml.safe_load(config.read_text()) or {}).get("data") or {})
        except yaml.YAMLError as e:
            log.warning("init_from: %s is not valid YAML (%s); using the checkpoint's meta.json", config, e)
    sr = int(meta["sample_rate"])
    rep = representations.from_meta(meta, init.get("mel"))  # the base's representation writes its own settings
    data.update(rep.data_settings())
    data["sample_rate"] = sr
    data["segment_seconds"] = meta["segment_samples"] / sr
    data["conditions"] = dict(meta.get("conditions") or {})
    return {k: v for k, v in data.items() if k in adopted_keys(rep)}


def adopted_keys(rep) -> tuple:
    """The data settings a fine-tune of a base with representation `rep` adopts: the run format's list and the
    representation's own settings (`mel` for a mel base)."""
    return tuple(dict.fromkeys((*ADOPTED_DATA_KEYS, *type(rep).settings_keys)))


def adopt_base(cfg: dict, init: dict) -> dict:
    """Fill `cfg` (in place) with what the fine-tune adopts from `init`; returns the fine-tune plan.

    The plan holds `conditions` (the base's, all kept in the new run's meta), `vocab` (label values in id order,
    the base's plus any added ones), `added_labels`, `pitch_range` and `num_classes` for the network.
    """
    meta, base_data = init["meta"], init["data"]
    ft = {**FINETUNE_DEFAULTS, **(cfg.get("finetune") or {})}

    if cfg["model"] != meta["model"]:
        log.info("init_from: using the network of %s (%s)", init["dir"], meta["model"].get("name"))
    cfg["model"] = dict(meta["model"])
    user_obj = dict(cfg.get("objective") or {})
    obj = dict(meta["objective"])
    if "cond_drop_prob" in user_obj:  # how often the fine-tune drops conditions is a training choice
        obj["cond_drop_prob"] = user_obj["cond_drop_prob"]
    differs = sorted(k for k in set(obj) | set(user_obj) if k != "cond_drop_prob" and obj.get(k) != user_obj.get(k))
    if differs:
        log.info("init_from: objective %s from the base run (%s)", {k: obj.get(k) for k in differs}, init["dir"])
    cfg["objective"] = obj
    cfg["schedule"], cfg["sampler"] = dict(meta["schedule"]), dict(meta["sampler"])

    data = cfg["data"]
    rep = representations.from_meta(meta, init.get("mel"))
    adopted = adopted_keys(rep)
    for key in [k for k in adopted if data.get(k) == "auto"]:  # `auto` (configs/data/custom.yaml): the base's
        del data[key]
    for key in ("representation", *type(rep).settings_keys):  # the network cannot take another one
        if key in data and key in base_data and data[key] != base_data[key]:
            raise FinetuneError(f"data.{key}={data[key]!r} but the base run ({init['dir']}) was trained with "
                                f"{base_data[key]!r}; a fine-tune keeps the base's {key}: leave data.{key} unset")
    for key in adopted:
        if key not in data and key in base_data:
            data[key] = base_data[key]
            log.info("init_from: data.%s = %r (the base run's)", key, base_data[key])
    if data.get("sample_rate") != meta["sample_rate"]:
        log.info("init_from: data.sample_rate %s -> %s (the model's; files are resampled)", data.get("sample_rate"),
                 meta["sample_rate"])
        data["sample_rate"] = int(meta["sample_rate"])

    base_conds = dict(meta.get("conditions") or {})
    conds = dict(data.get("conditions") or {})
    new = sorted(set(conds) - set(base_conds))
    if new:
        raise FinetuneError(f"data.conditions {new} are not conditions of the base run ({init['dir']}); allowed: "
                            f"{sorted(base_conds)} (the network takes only those)")
    entries = _manifest_entries(data)  # read once: its fields decide the conditions, its labels the vocabulary
    fields = None  # the built-in notes have every field
    if entries is not None:
        fields = set.intersection(*(set(e) for e in entries)) if entries else set()
    for key in sorted(conds):
        if fields is not None and conds[key] not in fields:
            log.info("init_from: the manifest has no field %r, so condition %r falls back to the null embedding",
                     conds[key], key)
            del conds[key]
    for key in sorted(set(base_conds) - set(conds)):
        if fields is None or base_conds[key] in fields:
            log.info("init_from: condition %r is not used by this fine-tune; it falls back to the null embedding", key)
    data["conditions"] = conds

    vocab = list(meta.get("vocab") or [])
    added = []
    if "labels" in conds and data.get("kind", "manifest") == "manifest":
        from ..conditions import Vocabulary, label_key

        values = list(dict.fromkeys(e[conds["labels"]] for e in entries))  # first-seen order, no repeats
        known = Vocabulary.ordered(vocab, conds["labels"]) if vocab else None
        outside = sorted((v for v in values if known is None or v not in known),
                         key=lambda v: (isinstance(v, str), str(v)))
        retyped = [v for v in values if known is not None and v in known and label_key(known.canonical(v)) !=
                   label_key(v)]
        if retyped:
            log.info("init_from: labels %s of %s are the base's labels %s (the same text, another type)",
                     retyped[:10], data["manifest"], [known.canonical(v) for v in retyped[:10]])
        if outside and not ft["extend_vocab"]:
            raise FinetuneError(f"labels {outside[:10]} (field {conds['labels']!r} of {data['manifest']}) are not in "
                                f"the base run's vocabulary {vocab}; remove them, or set finetune.extend_vocab=true to "
                                "add embedding rows for them")
        added = outside
        if added:
            log.info("init_from: finetune.extend_vocab adds labels %s to the vocabulary %s", added, vocab)
        vocab = vocab + added
    num_classes = meta["model"].get("num_classes") or 0
    if added:
        cfg["model"]["num_classes"] = num_classes + len(added)
    return {"conditions": base_conds, "vocab": vocab or None, "added_labels": added,
            "base_num_classes": num_classes, "pitch_range": meta.get("pitch_range")}


def _manifest_entries(data: dict) -> list | None:
    """The entries of the data's manifest (None for the built-in notes: their fields are fixed)."""
    if data.get("kind", "manifest") != "manifest" or not data.get("manifest"):
        return None
    from ..data.manifest import read_manifest

    return read_manifest(data["manifest"])


def base_weights(init: dict) -> tuple[dict, str]:
    """The base's weights a fine-tune starts from (EMA when stored) and which file they came from."""
    if init["ema"] is not None:
        return init["ema"], "ema"
    return init["model"], "model"
