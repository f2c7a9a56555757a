"""train_vocoder: config checks, a few real steps with discriminators, checkpoints, resume, init_from, diffusion."""
import pytest
import torch

from audiodiff import vocoders
from audiodiff.runs.checkpoint import list_checkpoints, load_checkpoint
from audiodiff.runs.vocoder import load_vocoder
from audiodiff.training.vocoder import VocoderTrainError, resolve_config, train_vocoder
from tests.helpers import VOCODER_MEL, tiny_vocoder_cfg

MEL = VOCODER_MEL


def _cfg(shared_data, run_dir, **train):
    return tiny_vocoder_cfg(shared_data, run_dir, **train)


def test_config_errors_name_the_problem(tmp_path):
    base = {"task": "vocoder", "run_dir": str(tmp_path), "data": {"manifest": "m.jsonl"}, "mel": MEL,
            "vocoder": {"name": "neural"}}
    with pytest.raises(VocoderTrainError, match="task: vocoder"):
        resolve_config({**base, "task": "mel"})
    with pytest.raises(VocoderTrainError, match=r"unknown train settings \['stepz'\]; allowed"):
        resolve_config({**base, "train": {"stepz": 3}})
    with pytest.raises(VocoderTrainError, match="cannot be trained; allowed"):
        resolve_config({**base, "vocoder": {"name": "griffinlim"}})
    with pytest.raises(VocoderTrainError, match="lr_schedule.*allowed"):
        resolve_config({**base, "train": {"lr_schedule": "step"}})
    with pytest.raises(VocoderTrainError, match="lacks 'mel'"):
        resolve_config({k: v for k, v in base.items() if k != "mel"})


def test_gan_training_checkpoints_resumes_and_fine_tunes(shared_data, tmp_path):
    run = tmp_path / "run"
    train_vocoder(_cfg(shared_data, run))
    assert [p.name for p in list_checkpoints(run)] == ["000000002"]
    ck = load_checkpoint(run)
    assert ck["meta"]["vocoder"]["name"] == "neural" and ck["mel"].n_mels == 32
    ts = ck["train_state"]
    assert {"opt_g", "opt_d", "disc", "sched_g", "rng"} <= set(ts)
    assert ts["opt_g"]["state"][0]["step"].item() == 2  # two generator updates
    assert (run / "config.yaml").is_file() and any((run / "tensorboard").iterdir())
    exported = load_vocoder(run / "vocoder")
    from_run = load_vocoder(run)
    mel = exported.mel(torch.randn(1, 1000) * 0.1)
    assert torch.equal(exported(mel), from_run(mel))

    train_vocoder(_cfg(shared_data, run, steps=3, resume="force"))  # resume with one more step (asked for)
    ck3 = load_checkpoint(run)
    assert ck3["step"] == 3 and ck3["train_state"]["opt_g"]["state"][0]["step"].item() == 3

    tuned = tmp_path / "tuned"
    train_vocoder(_cfg(shared_data, tuned, steps=1, init_from=str(run / "vocoder"), lr=0.0))
    same = load_vocoder(tuned / "vocoder")  # lr 0: the weights are the initial ones
    src = load_vocoder(run / "vocoder").state_dict()
    assert all(torch.equal(v, src[k]) for k, v in same.state_dict().items())

    bad = _cfg(shared_data, tmp_path / "bad", init_from=str(run / "vocoder"))
    bad["vocoder"]["dim"] = 8
    with pytest.raises(VocoderTrainError, match="init_from"):
        train_vocoder(bad)


def test_max_seconds_stops_with_a_checkpoint_and_a_rerun_continues(shared_data, tmp_path):
    run = tmp_path / "run"
    train_vocoder(_cfg(shared_data, run, steps=50, ckpt_every=50, max_seconds=1e-9))  # out of time after step 1
    assert [p.name for p in list_checkpoints(run)] == ["000000001"]
    assert (run / "vocoder").is_dir()            # the vocoder as it stands is exported at the stop
    train_vocoder(_cfg(shared_data, run, steps=50, ckpt_every=50, max_seconds=1e-9))
    ck = load_checkpoint(run)
    assert ck["step"] == 2 and ck["train_state"]["opt_g"]["state"][0]["step"].item() == 2


def test_diffusion_vocoder_trains_with_the_denoiser_loss(shared_data, tmp_path):
    cfg = _cfg(shared_data, tmp_path / "diff", ema_decay=0.9)
    cfg["vocoder"] = {"name": "diffusion", "steps": 2, "net": {"patch": 4, "channels": [8, 16], "factors": [1, 2],
                                                               "blocks": [1, 1], "attention": [False, False]}}
    train_vocoder(cfg)
    ck = load_checkpoint(tmp_path / "diff")
    assert ck["ema"] is not None and ck["meta"]["vocoder"]["name"] == "diffusion"
    voc = load_vocoder(tmp_path / "diff")
    assert isinstance(voc, vocoders.vocoder_class("diffusion"))
    assert voc(voc.mel(torch.randn(1, 640) * 0.1)).shape == (1, 1, 11 * 64)


def test_gan_losses_closed_forms():
    from audiodiff.training.vocoder import discriminator_hinge, feature_matching, generator_hinge

    real = [(torch.tensor([[2.0, 0.5]]), [torch.ones(1, 3)]), (torch.tensor([[1.0]]), [torch.zeros(2)])]
    fake = [(torch.tensor([[-0.5, -2.0]]), [torch.zeros(1, 3)]), (torch.tensor([[0.0]]), [torch.ones(2)])]
    # D: mean(relu(1 - r)) + mean(relu(1 + f)) per discriminator, averaged: ((0.25 + 0.25) + (0 + 1)) / 2
    assert float(discriminator_hinge(real, fake)) == pytest.approx(0.75)
    # G: mean(relu(1 - f)): (2.25 + 1) / 2
    assert float(generator_hinge(fake)) == pytest.approx(1.625)
    # feature matching: mean |real - fake| per map, averaged over maps: (1 + 1) / 2
    assert float(feature_matching(real, fake)) == pytest.approx(1.0)


def test_a_corrupt_file_is_reported_and_skipped_not_fatal(tmp_path, caplog):
    import logging
    from pathlib import Path

    from audiodiff.data.manifest import read_manifest
    from audiodiff.data.synth import write_synth_dataset
    from audiodiff.runs.checkpoint import load_checkpoint
    from audiodiff.training.vocoder import train_vocoder

    m = write_synth_dataset(tmp_path / "d", n=12, format="wav", sample_rate=8000, seconds=0.5, pitches=[60, 64],
                            timbres=("saw",), seed=1)
    bad = read_manifest(m)[0]["path"]
    Path(bad).write_bytes(b"garbage" * 100)
    cfg = {"task": "vocoder", "run_dir": str(tmp_path / "run"),
           "data": {"manifest": str(m), "valid_fraction": 0.2, "segment_frames": 16, "batch_size": 4, "num_workers": 0},
           "mel": {"sample_rate": 8000, "n_fft": 512, "hop_length": 128, "n_mels": 64},
           "vocoder": {"name": "neural", "dim": 32, "intermediate_dim": 64, "num_layers": 2},
           "train": {"steps": 4, "device": "cpu", "ckpt_every": 4, "log_every": 2, "progress": False}}
    with caplog.at_level(logging.WARNING):
        run = train_vocoder(cfg)
    assert load_checkpoint(run)["step"] == 4
    assert any(bad in r.getMessage() and "skipping" in r.getMessage() for r in caplog.records)
