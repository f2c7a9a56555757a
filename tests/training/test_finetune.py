"""Fine-tuning from a run on a folder of audio: full and LoRA; the result loads in the Pipeline."""
import pytest
import torch

from audiodiff import Pipeline
from audiodiff.data.synth import write_synth_dataset
from audiodiff.runs.checkpoint import load_checkpoint
from audiodiff.training import loop
from tests.helpers import tiny_cfg


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return loop.train(tiny_cfg(tmp_path_factory.mktemp("base") / "run", steps=2))


@pytest.fixture(scope="module")
def folder_manifest(tmp_path_factory):
    # "the user's audio": 16 kHz files; the fine-tune resamples them to the base model's 8 kHz
    return write_synth_dataset(tmp_path_factory.mktemp("mine"), n=8, format="wav", sample_rate=16000,
                               seconds=0.2, pitches=[55, 57], timbres=("square",), velocity=0.7, seed=5)


def ft_cfg(run_dir, base, manifest, **train):
    cfg = tiny_cfg(run_dir, steps=2, init_from=str(base), **train)
    cfg["model"] = {"name": "unet1d"}  # ignored: the base run's network is used
    cfg["data"] = {"kind": "manifest", "manifest": str(manifest), "sample_rate": 16000, "segment_seconds": 0.125,
                   "conditions": {}, "valid_fraction": 0.0}
    return cfg


@pytest.mark.parametrize("lora", [None, {"rank": 2, "alpha": 4}])
def test_finetune_from_run_on_a_folder(tmp_path, base, folder_manifest, lora):
    run = loop.train(ft_cfg(tmp_path / "ft", base, folder_manifest, lora=lora))
    ck = load_checkpoint(run)
    assert ck["meta"]["sample_rate"] == 8000 and ck["meta"]["init_from"]
    base_w = load_checkpoint(base)["ema"]
    if lora:  # a LoRA run stores what it trained (the adapters) and a reference to its base, not a full copy
        assert ck["meta"]["weights"] == "adapters"
        assert ck["model"] and all(".down." in k or ".up." in k for k in ck["model"])
        assert set(ck["ema"]) == set(ck["model"]) and not any(k in base_w for k in ck["model"])
    pipe = Pipeline.from_pretrained(run, device="cpu")
    out = pipe.generate(n=2, steps=3, seed=0, progress=False)  # unconditional: the pitch is dropped
    assert out.audio.shape == (2, 1, 1000) and torch.isfinite(out.audio).all()
    if lora:
        merged = dict(pipe.net.state_dict())
        assert not any(".lora" in k or ".down." in k for k in merged)
