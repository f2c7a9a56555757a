"""The run format (audiodiff/runs/): every run says its kind and format version, readers refuse another kind
naming the file and both kinds, and a run written before this format still loads and makes the same audio."""
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from audiodiff import Pipeline, vocoders
from audiodiff.mel import MelSpec
from audiodiff.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from audiodiff.runs.meta import FORMAT_VERSION, KINDS, RunKindError, header, read_kind
from audiodiff.runs.vocoder import load_vocoder
from audiodiff.training import loop
from tests.helpers import tiny_cfg, tiny_mel_cfg

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_RUN = FIXTURES / "run_v0_diffusion"  # written by git e461ff1 (before meta.json had format_version)
MEL = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=32, f_max=4000.0)


def meta_of(ckpt_dir) -> dict:
    return json.loads((Path(ckpt_dir) / "meta.json").read_text())


def vocoder_run(run_dir, old: bool = False) -> Path:
    """A vocoder training run's checkpoint as train_vocoder writes it (`old`: format 0, kind in `task`)."""
    voc = vocoders.build({"name": "neural", "dim": 16, "num_layers": 1}, mel=MEL)
    kind = {"task": "vocoder"} if old else header("vocoder")
    return save_checkpoint(run_dir, 2, voc.state_dict(), mel=MEL,
                           meta={**kind, "vocoder": {"name": "neural", "config": voc.config()}, "sample_rate": 8000})


@pytest.fixture(scope="module")
def mel_run(tmp_path_factory):
    return loop.train(tiny_mel_cfg(tmp_path_factory.mktemp("mel") / "run", steps=2))


def test_the_committed_old_run_loads_and_generates_the_audio_recorded_when_it_was_written():
    expected = json.loads((FIXTURES / "run_v0_diffusion_expected.json").read_text())
    ck = load_checkpoint(OLD_RUN, train_state=False)
    assert "format_version" not in ck["meta"] and (ck["kind"], ck["format_version"]) == ("diffusion", 0)
    audio = Pipeline.from_pretrained(OLD_RUN, device="cpu").generate(n=2, steps=2, seed=0, labels=[60, 64],
                                                                      progress=False).audio
    assert list(audio.shape) == expected["shape"]
    torch.testing.assert_close(audio.flatten()[:16], torch.tensor(expected["first"]), rtol=0, atol=1e-6)
    assert float(audio.double().sum()) == pytest.approx(expected["sum"], abs=1e-4)
    assert float(audio.double().abs().sum()) == pytest.approx(expected["abs_sum"], abs=1e-4)


def test_an_old_diffusion_checkpoint_without_kind_still_loads_as_diffusion(tmp_path):
    run = shutil.copytree(OLD_RUN, tmp_path / "run")
    d = load_checkpoint(run)["dir"]
    meta = meta_of(d)
    del meta["kind"]
    (d / "meta.json").write_text(json.dumps(meta))
    assert load_checkpoint(run, kind="diffusion")["kind"] == "diffusion"
    assert Pipeline.from_pretrained(run, device="cpu").generate(n=1, steps=1, seed=0, progress=False).audio.shape[0] == 1


def test_new_diffusion_runs_write_kind_and_format_version(mel_run):
    ck = load_checkpoint(mel_run)
    assert (ck["meta"]["kind"], ck["meta"]["format_version"]) == ("diffusion", FORMAT_VERSION) == (ck["kind"], 1)
    assert FORMAT_VERSION == 1 and KINDS == ("diffusion", "vocoder", "judge")


@pytest.mark.parametrize("old", [False, True])
def test_a_vocoder_run_given_to_the_pipeline_or_init_from_names_its_meta_and_both_kinds(tmp_path, old):
    ckpt = vocoder_run(tmp_path / "voc", old=old)
    assert load_checkpoint(tmp_path / "voc")["kind"] == "vocoder"
    assert isinstance(load_vocoder(tmp_path / "voc"), vocoders.NeuralVocoder)
    msg = f"{ckpt / 'meta.json'}: holds a 'vocoder' run, expected a 'diffusion' run"
    with pytest.raises(RunKindError, match=re.escape(msg)) as e:
        Pipeline.from_pretrained(tmp_path / "voc", device="cpu")
    assert "\n" not in str(e.value)
    cfg = tiny_cfg(tmp_path / "ft", steps=2, init_from=str(tmp_path / "voc"))
    with pytest.raises(RunKindError, match=re.escape(f"train.init_from={tmp_path / 'voc'}: {msg}")):
        loop.train(cfg)
    with pytest.raises(RunKindError, match=re.escape(msg) + ".*train into a new run_dir"):
        loop.train(tiny_cfg(tmp_path / "voc", steps=4))  # a diffusion trainer resuming a vocoder run


def test_a_mel_diffusion_run_is_not_taken_for_a_vocoder(mel_run):
    ckpt = load_checkpoint(mel_run)["dir"]
    assert "vocoder" in meta_of(ckpt)  # what load_vocoder used to look for
    with pytest.raises(RunKindError, match=re.escape(f"{ckpt / 'meta.json'}: holds a 'diffusion' run, expected a "
                                                     "'vocoder' run")):
        load_vocoder(mel_run)


def vocoder_cfg(shared_data, run_dir, steps=2):
    """The tiny GAN vocoder of tests/vocoders/test_train.py."""
    return {
        "task": "vocoder", "run_dir": str(run_dir),
        "data": {"manifest": str(shared_data / "fsdd" / "manifest.jsonl"), "max_items": 6, "valid_fraction": 0.34,
                 "segment_frames": 16, "batch_size": 2, "valid_items": 1, "valid_seconds": 0.3},
        "mel": {"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 32},
        "vocoder": {"name": "neural", "dim": 16, "num_layers": 1},
        "train": {"steps": steps, "device": "cpu", "ckpt_every": 2, "log_every": 1, "progress": False,
                  "mrstft_resolutions": [[128, 32, 128], [256, 64, 256]],
                  "discriminator": {"periods": [2, 3], "mpd_channels": [4, 8], "resolutions": [[256, 64, 256]],
                                    "mrd_channels": 4}},
    }


def test_the_vocoder_trainer_writes_kind_and_refuses_a_diffusion_run(shared_data, tmp_path, mel_run):
    from audiodiff.training.vocoder import train_vocoder

    run = train_vocoder(vocoder_cfg(shared_data, tmp_path / "voc"))
    meta = meta_of(load_checkpoint(run)["dir"])
    assert (meta["kind"], meta["format_version"]) == ("vocoder", 1) and "task" not in meta
    diffusion = shutil.copytree(mel_run, tmp_path / "diffusion")
    ckpt = load_checkpoint(diffusion)["dir"]
    with pytest.raises(RunKindError, match=re.escape(f"{ckpt / 'meta.json'}: holds a 'diffusion' run, expected a "
                                                     "'vocoder' run")):
        train_vocoder(vocoder_cfg(shared_data, diffusion, steps=4))


def test_judge_folders_have_a_meta_and_judges_and_runs_refuse_each_other(tmp_path, mel_run):
    from audiodiff.evaluation.judge import Judge, JudgeNet, default_mel

    mel = default_mel(8000)
    net_cfg = {"n_mels": mel.n_mels, "num_classes": 2, "channels": (4, 8), "hidden": 8, "dropout": 0.0}
    judge = Judge(JudgeNet(**net_cfg), mel, [0, 1], "digit", 0.5, net_cfg)
    d = judge.save(tmp_path / "judge")
    assert meta_of(d) == {"kind": "judge", "format_version": 1}
    assert Judge.load(d).labels == [0, 1]
    with pytest.raises(RunKindError, match=re.escape(f"{d / 'meta.json'}: holds a 'judge' run, expected a "
                                                     "'diffusion' run")):
        Pipeline.from_pretrained(d, device="cpu")
    (d / "meta.json").unlink()  # a judge saved before meta.json: still a judge, named by its judge.json
    assert Judge.load(d).labels == [0, 1]
    with pytest.raises(RunKindError, match=re.escape(f"{d / 'judge.json'}: holds a 'judge' run, expected a "
                                                     "'vocoder' run")):
        load_vocoder(d)
    ckpt = load_checkpoint(mel_run)["dir"]
    with pytest.raises(RunKindError, match=re.escape(f"{ckpt / 'meta.json'}: holds a 'diffusion' run, expected a "
                                                     "'judge' run")):
        Judge.load(mel_run)


def test_a_vocoder_folder_given_to_the_pipeline_names_its_vocoder_json(tmp_path):
    d = vocoders.build({"name": "griffinlim", "n_iter": 4}, mel=MEL).save(tmp_path / "gl")
    with pytest.raises(RunKindError, match=re.escape(f"{d / 'vocoder.json'}: holds a 'vocoder' run, expected a "
                                                     "'diffusion' run")):
        Pipeline.from_pretrained(d, device="cpu")


@pytest.mark.parametrize("change, fragment", [
    ({"format_version": 2}, "format_version 2 is not supported; allowed: an integer 0..1"),
    ({"format_version": "1"}, "format_version '1' is not supported"),
    ({"kind": "banana"}, "kind 'banana' is not allowed; allowed: ['diffusion', 'vocoder', 'judge']"),
    ({"kind": None, "format_version": 1}, "has format_version 1 but no 'kind'"),
])
def test_an_unknown_kind_or_format_version_is_refused_naming_the_file(tmp_path, change, fragment):
    run = shutil.copytree(OLD_RUN, tmp_path / "run")
    d = load_checkpoint(run)["dir"]
    meta = {k: v for k, v in {**meta_of(d), **change}.items() if v is not None}
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=re.escape(f"{d / 'meta.json'}: {fragment}")):
        load_checkpoint(run)


def test_read_kind_of_each_format():
    assert read_kind({}, "m.json") == ("diffusion", 0)
    assert read_kind({"task": "vocoder"}, "m.json") == ("vocoder", 0)
    assert read_kind({"kind": "judge", "format_version": 1}, "m.json") == ("judge", 1)
    assert header("vocoder") == {"kind": "vocoder", "format_version": 1}
