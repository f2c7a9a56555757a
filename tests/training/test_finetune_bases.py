"""Fine-tuning from every kind of base: it adopts the base's meaning (representation, mel, rate, segment,
conditions, vocabulary), keeps or drops conditions by what the new manifest has, and saves LoRA runs small."""
import copy
import json
import logging

import pytest
import torch

from audiodiff import Pipeline, cli
from audiodiff.data.manifest import read_manifest, write_manifest
from audiodiff.data.synth import write_synth_dataset
from audiodiff.runs.checkpoint import load_checkpoint
from audiodiff.runs.weights import FinetuneError
from audiodiff.training import loop
from tests.helpers import tiny_cfg, tiny_mel_cfg

BASES = [(rep, cond) for rep in ("waveform", "mel") for cond in ("class", "pitch", "class+pitch")]
CONDITIONS = {"class": {"labels": "timbre"}, "pitch": {"pitch": "pitch"},
              "class+pitch": {"labels": "timbre", "pitch": "pitch"}}


def base_cfg(run_dir, rep, cond):
    cfg = tiny_cfg(run_dir, steps=2) if rep == "waveform" else tiny_mel_cfg(run_dir, steps=2)
    cfg["model"] = dict(cfg["model"], pitch="pitch" in CONDITIONS[cond])
    cfg["data"]["conditions"] = CONDITIONS[cond]
    cfg["data"]["synth"] = dict(cfg["data"]["synth"], timbres=["sine", "square"], pitches=[60, 64, 67])
    cfg["objective"]["cond_drop_prob"] = 0.2
    return cfg


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {(rep, cond): loop.train(base_cfg(root / f"{rep}_{cond}", rep, cond)) for rep, cond in BASES}


@pytest.fixture(scope="module")
def new_notes(tmp_path_factory):
    """The user's folder: 16 kHz notes with `pitch` and `timbre` fields (resampled to the base's 8 kHz)."""
    return write_synth_dataset(tmp_path_factory.mktemp("mine"), n=8, format="wav", sample_rate=16000, seconds=0.3,
                               pitches=[62, 65], timbres=("square", "sine"), velocity=0.7, seed=5)


def ft_cfg(run_dir, base, manifest, lora=None, **data):
    """What `audiodiff finetune data.manifest=M train.init_from=R` gives: a data section naming the manifest only."""
    cfg = tiny_cfg(run_dir, steps=2, init_from=str(base), lora=lora)
    cfg["model"] = {"name": "unet1d"}  # replaced by the base run's network
    cfg["data"] = {"kind": "manifest", "manifest": str(manifest), "valid_fraction": 0.0, **data}
    return cfg


def _ask(meta, n=2):
    conds = meta["conditions"]
    kw = {}
    if "labels" in conds:
        kw["labels"] = [meta["vocab"][0]] * n
        if "pitch" in conds:
            kw["pitch"] = [64] * n
    elif "pitch" in conds:
        kw["labels"] = [64] * n
    return kw


@pytest.mark.parametrize("lora", [None, {"rank": 2, "alpha": 4}], ids=["full", "lora"])
@pytest.mark.parametrize("rep,cond", BASES)
def test_finetune_adopts_the_base_and_generates(tmp_path, bases, new_notes, rep, cond, lora):
    base = bases[(rep, cond)]
    run = loop.train(ft_cfg(tmp_path / "ft", base, new_notes, lora=lora))
    ck, b = load_checkpoint(run), load_checkpoint(base)
    for key in ("representation", "sample_rate", "segment_samples", "conditions", "vocab", "model"):
        assert ck["meta"][key] == b["meta"][key], key
    if rep == "mel":
        assert ck["mel"].fingerprint() == b["mel"].fingerprint()
    data = json.loads(json.dumps(__import__("yaml").safe_load((run / "config.yaml").read_text())["data"]))
    assert data["segment_seconds"] == pytest.approx(b["meta"]["segment_samples"] / 8000)
    assert data["conditions"] == CONDITIONS[cond]  # the new manifest has both fields: every condition is kept
    if lora:
        assert ck["meta"]["weights"] == "adapters"
        size = (ck["dir"] / "model.safetensors").stat().st_size
        assert size < (b["dir"] / "model.safetensors").stat().st_size
    pipe = Pipeline.from_pretrained(run, device="cpu")
    out = pipe.generate(n=2, steps=2, seed=0, guidance=2.0, progress=False, **_ask(ck["meta"]))
    assert torch.isfinite(out.audio).all() and out.audio.shape[0] == 2


def test_cli_finetune_of_a_mel_run_names_only_the_manifest(tmp_path, bases, new_notes, capsys):
    """The issue's reproduction: a mel base fine-tuned through the documented command (it failed on shapes)."""
    base = bases[("mel", "class")]
    cli.main(["finetune", f"data.manifest={new_notes}", f"train.init_from={base}", "train.steps=2",
              "train.batch_size=4", "train.progress=false", "train.num_workers=0", f"run_dir={tmp_path / 'ft'}",
              "data.valid_fraction=0.0"])
    ck = load_checkpoint(tmp_path / "ft")
    assert ck["meta"]["representation"] == "mel" and ck["meta"]["conditions"] == {"labels": "timbre"}
    assert ck["meta"]["vocab"] == ["sine", "square"] and ck["step"] == 2


def test_a_condition_the_manifest_lacks_falls_back_to_the_null_embedding(tmp_path, bases, new_notes, caplog):
    no_pitch = tmp_path / "no_pitch.jsonl"
    write_manifest([{k: v for k, v in e.items() if k != "pitch"} for e in read_manifest(new_notes)], no_pitch)
    with caplog.at_level(logging.INFO, logger="audiodiff.train"):
        run = loop.train(ft_cfg(tmp_path / "ft", bases[("waveform", "class+pitch")], no_pitch))
    assert any("no field 'pitch'" in r.getMessage() and "null embedding" in r.getMessage() for r in caplog.records)
    ck = load_checkpoint(run)
    assert ck["meta"]["conditions"] == {"labels": "timbre", "pitch": "pitch"}  # the model still takes both
    data = __import__("yaml").safe_load((run / "config.yaml").read_text())["data"]
    assert data["conditions"] == {"labels": "timbre"}


def _with_timbre(tmp_path, new_notes, timbre):
    path = tmp_path / f"{timbre}.jsonl"
    entries = read_manifest(new_notes)
    entries[0] = {**entries[0], "timbre": timbre}
    return write_manifest(entries, path)


def test_a_label_outside_the_base_vocabulary_is_an_error(tmp_path, bases, new_notes):
    manifest = _with_timbre(tmp_path, new_notes, "violin")
    with pytest.raises(FinetuneError, match=r"labels \['violin'\].*not in the base run's vocabulary "
                                            r"\['sine', 'square'\].*finetune.extend_vocab=true"):
        loop.train(ft_cfg(tmp_path / "ft", bases[("waveform", "class")], manifest))
    assert not (tmp_path / "ft" / "checkpoints").exists()


@pytest.mark.parametrize("lora", [None, {"rank": 2, "alpha": 4}], ids=["full", "lora"])
def test_extend_vocab_adds_trained_rows_and_keeps_the_old_ids(tmp_path, bases, new_notes, lora):
    base = bases[("waveform", "class")]
    cfg = ft_cfg(tmp_path / "ft", base, _with_timbre(tmp_path, new_notes, "violin"), lora=lora)
    cfg["finetune"] = {"extend_vocab": True}
    run = loop.train(cfg)
    ck, b = load_checkpoint(run), load_checkpoint(base)
    assert ck["meta"]["vocab"] == ["sine", "square", "violin"] and ck["meta"]["model"]["num_classes"] == 3
    pipe = Pipeline.from_pretrained(run, device="cpu")
    key = next(k for k in pipe.net.state_dict() if k.endswith("label_emb.weight"))
    rows, old = pipe.net.state_dict()[key], b["ema"][key]
    assert rows.shape[0] == 4 and old.shape[0] == 3
    if lora:  # frozen base: the old rows are exactly the base's, the new row (id 2) trained away from the null row
        torch.testing.assert_close(rows[:2], old[:2])
        torch.testing.assert_close(rows[3], old[2])
        assert key in ck["model"]
    assert not torch.equal(rows[2], old[2])
    out = pipe.generate(n=2, steps=2, seed=0, labels=["violin", "sine"], progress=False)
    assert torch.isfinite(out.audio).all()


def test_representation_and_mel_cannot_change(tmp_path, bases, new_notes):
    with pytest.raises(FinetuneError, match=r"data.representation='waveform' but the base run .* 'mel'"):
        loop.train(ft_cfg(tmp_path / "a", bases[("mel", "class")], new_notes, representation="waveform"))
    mel = dict(load_checkpoint(bases[("mel", "class")])["mel"].to_dict(), n_mels=16)
    with pytest.raises(FinetuneError, match=r"data.mel="):
        loop.train(ft_cfg(tmp_path / "b", bases[("mel", "class")], new_notes, mel=mel))


def test_a_condition_the_base_lacks_is_an_error(tmp_path, bases, new_notes):
    with pytest.raises(FinetuneError, match=r"data.conditions \['pitch'\] are not conditions of the base"):
        loop.train(ft_cfg(tmp_path / "ft", bases[("waveform", "class")], new_notes,
                          conditions={"labels": "timbre", "pitch": "pitch"}))


def test_lora_merge_saves_full_weights_that_generate_the_same(tmp_path, bases, new_notes):
    base = bases[("waveform", "pitch")]
    lora = {"rank": 2, "alpha": 4}
    small = loop.train(ft_cfg(tmp_path / "small", base, new_notes, lora=lora))
    full = loop.train(ft_cfg(tmp_path / "full", base, new_notes, lora={**lora, "merge": True}))
    ck = load_checkpoint(full)
    assert ck["meta"]["weights"] == "merged" and set(ck["model"]) == set(load_checkpoint(base)["model"])
    a = Pipeline.from_pretrained(small, device="cpu").generate(n=2, steps=2, seed=3, labels=[64, 64], progress=False)
    b = Pipeline.from_pretrained(full, device="cpu").generate(n=2, steps=2, seed=3, labels=[64, 64], progress=False)
    torch.testing.assert_close(a.audio, b.audio, atol=1e-5, rtol=1e-4)
    # a finished merged run re-run is a no-op, not an error
    assert loop.train(ft_cfg(tmp_path / "full", base, new_notes, lora={**lora, "merge": True})) == full


def test_an_adapter_run_names_a_missing_or_changed_base(tmp_path, bases, new_notes):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(bases[("waveform", "pitch")], base)
    run = loop.train(ft_cfg(tmp_path / "ft", base, new_notes, lora={"rank": 2, "alpha": 4}))
    ema = load_checkpoint(base)["dir"] / "ema.safetensors"
    data = bytearray(ema.read_bytes())
    data[-1] ^= 1  # another base with the same shapes
    ema.write_bytes(bytes(data))
    with pytest.raises(FinetuneError, match=r"base weights .*ema.safetensors changed"):
        Pipeline.from_pretrained(run, device="cpu")
    shutil.rmtree(base)
    with pytest.raises(FinetuneError, match=r"stores adapters only; its base checkpoint .* is missing"):
        Pipeline.from_pretrained(run, device="cpu")
