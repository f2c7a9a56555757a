"""Pipeline: reproducible seeds item by item, clear errors, WAV round trip, variation / inpaint / continue, mel path."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff import Pipeline, PipelineError
from audiodiff.mel import MelContractError, MelSpec
from audiodiff.training.loop import train
from tests.helpers import tiny_cfg, tiny_mel_cfg


@pytest.fixture(scope="module")
def wave_run(tmp_path_factory):
    return train(tiny_cfg(tmp_path_factory.mktemp("wave") / "run", steps=2))


@pytest.fixture(scope="module")
def pipe(wave_run):
    return Pipeline.from_pretrained(wave_run, device="cpu")


def gen(pipe, **kw):
    return pipe.generate(steps=kw.pop("steps", 4), progress=False, **kw)


def test_same_seed_same_audio(pipe):
    a = gen(pipe, n=2, labels=[60, 64], seed=3)
    b = gen(pipe, n=2, labels=[60, 64], seed=3)
    c = gen(pipe, n=2, labels=[60, 64], seed=4)
    assert torch.equal(a.audio, b.audio)
    assert not torch.allclose(a.audio, c.audio)
    assert a.audio.shape == (2, 1, 1000) and a.sample_rate == 8000


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "dpmpp_2m_sde", "ddpm"])
def test_item_k_independent_of_the_batch(pipe, sampler):
    batch = gen(pipe, n=3, labels=[60, 65, 70], seed=[11, 12, 13], sampler=sampler)
    alone = gen(pipe, n=1, labels=[65], seed=[12], sampler=sampler)
    chunked = gen(pipe, n=3, labels=[60, 65, 70], seed=[11, 12, 13], sampler=sampler, batch_size=2)
    torch.testing.assert_close(batch.audio[1], alone.audio[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batch.audio, chunked.audio, rtol=1e-4, atol=1e-5)


def test_bad_requests_name_allowed_values(pipe):
    with pytest.raises(PipelineError, match=r"allowed: MIDI pitches 60\.\.72"):
        gen(pipe, n=1, labels=[40])
    with pytest.raises(PipelineError, match=r"seconds=-1.*allowed: 0 < seconds"):
        gen(pipe, n=1, seconds=-1)
    with pytest.raises(PipelineError, match=r"allowed: 0 < seconds"):
        gen(pipe, n=1, seconds=float("nan"))
    with pytest.raises(PipelineError, match="unknown sampler 'bogus'; allowed"):
        gen(pipe, n=1, sampler="bogus")
    with pytest.raises(PipelineError, match="2 labels for n=3"):
        gen(pipe, n=3, labels=[60, 61])
    with pytest.raises(PipelineError, match=r"guidance=3.0 needs a condition.*allowed: MIDI pitches 60\.\.72"):
        gen(pipe, n=1, guidance=3.0)     # no labels: both CFG branches would be the unconditional one
    assert gen(pipe, n=1, guidance=1.0, seed=0).audio.shape == (1, 1, 1000)   # scale 1 is plain sampling


def test_save_reads_back_with_rate_and_length(pipe, tmp_path):
    out = gen(pipe, n=2, labels=[60, 62], seed=0, seconds=0.2)
    paths = out.save(tmp_path / "s", plot=True)
    assert len(paths) == 2
    for i, p in enumerate(paths):
        data, sr = sf.read(p, dtype="float32")
        assert sr == 8000 and data.shape == (1600,)
        assert sf.info(p).subtype == "PCM_16"
        np.testing.assert_allclose(data, out.audio[i, 0].numpy(), atol=1 / 32768 + 1e-6)
        assert p.with_suffix(".png").is_file()
    rows = [json.loads(l) for l in open(tmp_path / "s" / "generated.jsonl")]
    assert [r["pitch"] for r in rows] == [60, 62] and rows[0]["path"] == paths[0].name


def test_variation_strength_zero_returns_input_and_one_changes_it(pipe):
    x = 0.5 * torch.sin(torch.arange(1000) / 8000 * 2 * torch.pi * 440)[None]
    same = pipe.variation(x, strength=0.0, progress=False)
    torch.testing.assert_close(same.audio[0], x)
    diff = pipe.variation(x, strength=1.0, steps=4, labels=[69], seed=0, progress=False)
    assert diff.audio.shape == (1, 1, 1000) and not torch.allclose(diff.audio[0], x, atol=1e-2)
    with pytest.raises(PipelineError, match="allowed: 0 <= strength <= 1"):
        pipe.variation(x, strength=1.5)


def test_inpaint_and_continue_keep_the_known_audio(pipe):
    x = 0.5 * torch.sin(torch.arange(1000) / 8000 * 2 * torch.pi * 440)[None]
    mask = torch.ones(1000)
    mask[400:600] = 0
    out = pipe.inpaint(x, mask, steps=4, labels=[69], seed=0, progress=False)
    torch.testing.assert_close(out.audio[0, :, :400], x[:, :400], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.audio[0, :, 600:], x[:, 600:], atol=1e-5, rtol=0)
    assert not torch.allclose(out.audio[0, :, 400:600], x[:, 400:600], atol=1e-3)
    cont = pipe.continue_(x, seconds=0.05, steps=4, labels=[69], seed=0, progress=False)
    assert cont.audio.shape == (1, 1, 1400)
    torch.testing.assert_close(cont.audio[0, :, :1000], x, atol=1e-5, rtol=0)


def test_mel_model_with_vocoder_and_contract_check(tmp_path):
    from audiodiff import vocoders

    run = train(tiny_mel_cfg(tmp_path / "mel", steps=2))
    pipe = Pipeline.from_pretrained(run, device="cpu")
    out = pipe.generate(n=2, steps=3, seed=0, progress=False)
    hop = pipe.mel.hop_length
    assert out.audio.shape[0] == 2 and out.audio.shape[-1] == out.mel.shape[-1] * hop
    assert torch.isfinite(out.audio).all() and out.audio.abs().max() <= 1
    other = MelSpec(**{**pipe.mel.to_dict(), "n_fft": 512})
    wrong = vocoders.build({"name": "griffinlim", "mel": other.to_dict()})
    with pytest.raises(MelContractError, match="n_fft"):
        Pipeline.from_pretrained(run, device="cpu", vocoder=wrong)
    x = torch.sin(torch.arange(2000) / 8000 * 2 * torch.pi * 300)[None] * 0.5
    assert pipe.continue_(x, seconds=0.1, steps=2, seed=0, progress=False).audio.shape[-1] > 2000


def test_a_mel_runs_own_vocoder_is_changed_by_a_dict_of_settings(tmp_path, capsys):
    """`vocoder={"init": "pghi", "n_iter": 0}` (Python) / `vocoder='{init:pghi,n_iter:0}'` (generate): the run's
    Griffin-Lim with those settings, the rest kept; the clips say which vocoder made them; bad settings are one line."""
    from audiodiff import cli

    run = train(tiny_mel_cfg(tmp_path / "mel", steps=2))  # its vocoder: {name: griffinlim, n_iter: 4}
    own = Pipeline.from_pretrained(run, device="cpu")
    pghi = Pipeline.from_pretrained(run, device="cpu", vocoder={"init": "pghi", "n_iter": 0})
    assert pghi.vocoder.config() == {**own.vocoder.config(), "init": "pghi", "n_iter": 0}
    assert own.vocoder.config()["n_iter"] == 4 and pghi.rep.vocoder is pghi.vocoder
    a, b = (p.generate(n=1, steps=2, seed=0, progress=False) for p in (own, pghi))
    assert torch.equal(a.mel, b.mel) and not torch.allclose(a.audio, b.audio)  # same mel, another decoder
    assert b.items[0]["vocoder"] == {"name": "griffinlim", **pghi.vocoder.config()}
    whole = Pipeline.from_pretrained(run, device="cpu", vocoder={"name": "griffinlim"})  # same name: changes
    assert whole.vocoder.config()["n_iter"] == 4
    with pytest.raises(PipelineError, match="allowed settings: .*'init'"):
        Pipeline.from_pretrained(run, device="cpu", vocoder={"inti": "pghi"})
    with pytest.raises(PipelineError, match="learns its weights"):
        Pipeline.from_pretrained(run, device="cpu", vocoder={"name": "neural"})
    out = tmp_path / "gen"
    cli.main(["generate", f"run={run}", "n=1", "steps=2", f"out={out}", "vocoder={init:pghi,n_iter:0}"])
    item = json.loads((out / "generated.jsonl").read_text().splitlines()[0])
    assert item["vocoder"]["init"] == "pghi" and item["vocoder"]["n_iter"] == 0
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", f"run={run}", "n=1", f"out={tmp_path / 'bad'}", "vocoder={n_iter:-1}"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "n_iter" in err, err


def test_model_with_class_and_pitch_takes_both(tmp_path):
    cfg = tiny_cfg(tmp_path / "both", steps=2)
    cfg["data"]["conditions"] = {"pitch": "pitch", "labels": "timbre"}
    cfg["data"]["synth"]["timbres"] = ["sine", "square"]
    pipe = Pipeline.from_pretrained(train(cfg), device="cpu")
    out = pipe.generate(n=2, labels=["square", "sine"], pitch=[60, 72], steps=3, seed=0, progress=False)
    assert out.items[0]["timbre"] == "square" and out.items[1]["pitch"] == 72
    only_pitch = pipe.generate(n=2, pitch=[60, 72], steps=3, seed=0, progress=False)
    assert not torch.allclose(out.audio, only_pitch.audio)  # the class changes the result
    with pytest.raises(PipelineError, match=r"not in the model's vocabulary; allowed: \['sine', 'square'\]"):
        pipe.generate(n=1, labels=["saw"], pitch=[60], steps=2, progress=False)
    with pytest.raises(PipelineError, match=r"allowed: MIDI pitches 60\.\.72"):
        pipe.generate(n=1, labels=["sine"], pitch=[90], steps=2, progress=False)


def test_continue_takes_class_and_pitch(tmp_path):
    cfg = tiny_cfg(tmp_path / "both2", steps=2)
    cfg["data"]["conditions"] = {"pitch": "pitch", "labels": "timbre"}
    cfg["data"]["synth"]["timbres"] = ["sine", "square"]
    pipe = Pipeline.from_pretrained(train(cfg), device="cpu")
    x = 0.5 * torch.sin(torch.arange(800) / 8000 * 2 * torch.pi * 262)[None]
    out = pipe.continue_(x, seconds=0.05, labels=["sine"], pitch=[60], steps=3, seed=0, progress=False)
    assert out.audio.shape == (1, 1, 1200) and out.items[0]["timbre"] == "sine" and out.items[0]["pitch"] == 60
