"""Issue 13, generation and data side: every bad request or file gets one clear line, nothing is lost.

Each test reproduces a probe (what a user typed or fed in) and asserts the outcome: the package's own
exception with a one-line message naming the argument / file and the allowed values, the files on disk.
"""
import errno
import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff import Pipeline, PipelineError, audio
from audiodiff.audio import AudioError
from audiodiff.data import build_dataset
from audiodiff.data.check import DatasetError
from audiodiff.data.mel_dataset import MelDataset
from audiodiff.data.waveform import WaveformDataset
from audiodiff.data.manifest import build_manifest, write_manifest
from audiodiff.errors import AudiodiffError
from audiodiff.mel import MelSpec
from audiodiff.pipeline import MAX_SEED, SaveError
from audiodiff.training.loop import train
from tests.helpers import tiny_cfg

SR = 8000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(tiny_cfg(tmp_path_factory.mktemp("gen") / "run", steps=2))


@pytest.fixture(scope="module")
def pipe(run):
    return Pipeline.from_pretrained(run, device="cpu")


@pytest.fixture
def no_sampling(monkeypatch):
    """Fail the test if a request gets as far as the sampler: a bad argument must be refused before any work."""
    def boom(*a, **k):
        raise AssertionError("the sampler ran for a request that should have been refused")

    monkeypatch.setattr("audiodiff.samplers.sample", boom)


def one_line(e) -> str:
    text = str(e.value)
    assert "\n" not in text, text
    return text


def _tone(seconds=0.2, sr=SR, f=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


# ============================================================== 6. no silent coercion in generate
@pytest.mark.parametrize("kw, fragment", [
    ({"steps": 0}, "steps=0 is not allowed; allowed: an integer >= 1"),
    ({"steps": 2.5}, "steps=2.5 is not allowed; allowed: an integer >= 1"),
    ({"steps": 4.0}, "steps=4.0 is not allowed (a float: pass the integer 4); allowed: an integer >= 1"),
    ({"steps": "4"}, "steps='4' is not allowed; allowed: an integer >= 1"),
    ({"n": 2.7}, "n=2.7 is not allowed; allowed: an integer >= 1"),
    ({"n": 0}, "n=0 is not allowed; allowed: an integer >= 1"),
    ({"n": True}, "n=True is not allowed; allowed: an integer >= 1"),
    ({"batch_size": 0}, "batch_size=0 is not allowed; allowed: an integer >= 1"),
    ({"batch_size": -1}, "batch_size=-1 is not allowed; allowed: an integer >= 1"),
    ({"batch_size": 2.0}, "batch_size=2.0 is not allowed (a float: pass the integer 2)"),
    ({"guidance": float("nan")}, "guidance=nan is not allowed; allowed: a finite number >= 0"),
    ({"guidance": float("inf")}, "guidance=inf is not allowed; allowed: a finite number >= 0"),
    ({"guidance": -1.0}, "guidance=-1.0 is not allowed; allowed: a finite number >= 0"),
    ({"guidance": "2"}, "guidance='2' is not allowed; allowed: a finite number >= 0"),
    ({"seed": "abc"}, "seed='abc' is not allowed; allowed: an integer in [0, 2**63-1]"),
    ({"seed": 2 ** 70}, f"seed={2 ** 70} is not allowed; allowed: an integer in [0, 2**63-1]"),
    ({"seed": -1}, "seed=-1 is not allowed; allowed: an integer in [0, 2**63-1]"),
    ({"seed": 1.5}, "seed=1.5 is not allowed"),
    ({"seed": [0, "x"]}, "seed=[0, 'x'] is not allowed ('x' is not); allowed: an integer in [0, 2**63-1]"),
    ({"seed": MAX_SEED, "n": 2}, "makes item seeds up to 9223372036854775808; allowed: seed <= 9223372036854775806"),
    ({"sampler": "bogus"}, "unknown sampler 'bogus'; allowed: ["),
    ({"sampler": 3}, "unknown sampler 3; allowed: ["),
])
def test_generate_refuses_bad_arguments_before_sampling(pipe, no_sampling, kw, fragment):
    kw = {"n": 1, **kw}
    with pytest.raises(PipelineError) as e:
        pipe.generate(progress=False, labels=60, **kw)
    assert fragment in one_line(e)


@pytest.mark.parametrize("method, kw, fragment", [
    ("variation", {"strength": float("nan")}, "strength=nan is not allowed; allowed: 0 <= strength <= 1"),
    ("variation", {"strength": 1.5}, "strength=1.5 is not allowed; allowed: 0 <= strength <= 1"),
    ("variation", {"strength": "0.5"}, "strength='0.5' is not allowed"),
    ("variation", {"steps": 0}, "steps=0 is not allowed; allowed: an integer >= 1"),
    ("inpaint", {"guidance": float("nan")}, "guidance=nan is not allowed"),
    ("inpaint", {"steps": 3.0}, "steps=3.0 is not allowed (a float: pass the integer 3)"),
    ("continue_", {"seed": "abc"}, "seed='abc' is not allowed"),
    ("continue_", {"sampler": "nope"}, "unknown sampler 'nope'"),
])
def test_variation_inpaint_continue_share_the_same_check(pipe, no_sampling, method, kw, fragment):
    x = torch.from_numpy(_tone(0.1))[None]
    args = {"variation": (x,), "inpaint": (x, torch.ones(x.shape[-1])), "continue_": (x, 0.05)}[method]
    with pytest.raises(PipelineError) as e:
        getattr(pipe, method)(*args, progress=False, **kw)
    assert fragment in one_line(e)


def test_valid_edge_values_are_accepted(pipe):
    out = pipe.generate(n=np.int64(1), steps=2, seed=MAX_SEED, labels=60, guidance=0, progress=False)
    assert out.audio.shape[0] == 1 and out.items[0]["seed"] == MAX_SEED and out.items[0]["guidance"] == 0.0


def test_generated_jsonl_records_how_each_file_was_made(pipe, run, tmp_path):
    out = pipe.generate(n=2, steps=3, sampler="euler", labels=[60, 62], guidance=2.0, seed=5, progress=False)
    out.save(tmp_path / "g")
    rows = [json.loads(line) for line in (tmp_path / "g" / "generated.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == ["sample_000.wav", "sample_001.wav"]
    for r, pitch, seed in zip(rows, [60, 62], [5, 6]):
        assert r["run"] == str(run.resolve()) and r["checkpoint_step"] == 2
        assert (r["sampler"], r["steps"], r["guidance"], r["seed"], r["pitch"]) == ("euler", 3, 2.0, seed, pitch)
        assert r["sample_rate"] == SR and r["duration"] == pytest.approx(out.audio.shape[-1] / SR)
    # the run's defaults are recorded as used, not as None
    default = pipe.generate(n=1, labels=60, seed=0, progress=False).items[0]
    assert default["steps"] == pipe.meta["sampler"]["steps"] and default["sampler"] == pipe.meta["sampler"]["method"]
    var = pipe.variation(out, strength=0.5, steps=2, seed=1, progress=False).items[0]
    assert var["task"] == "variation" and var["strength"] == 0.5 and var["checkpoint_step"] == 2


# ============================================================== 10. save: refuse, replace whole, never half-written
def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_save_refuses_a_non_empty_folder(pipe, tmp_path):
    out = pipe.generate(n=1, steps=2, labels=60, seed=0, progress=False)
    out.save(tmp_path / "s")
    before = _snapshot(tmp_path / "s")
    with pytest.raises(PipelineError) as e:
        out.save(tmp_path / "s")
    msg = one_line(e)
    assert str(tmp_path / "s") in msg and "overwrite=true" in msg and "not empty" in msg
    assert _snapshot(tmp_path / "s") == before
    (tmp_path / "empty").mkdir()   # an existing empty folder is fine
    assert out.save(tmp_path / "empty") == [tmp_path / "empty" / "sample_000.wav"]


def test_save_overwrite_replaces_the_folder_without_stale_files(pipe, tmp_path):
    first = pipe.generate(n=3, steps=2, labels=[60, 61, 62], seed=0, progress=False)
    first.save(tmp_path / "s", plot=True)
    assert {p.suffix for p in (tmp_path / "s").iterdir()} == {".wav", ".png", ".jsonl"}
    second = pipe.generate(n=1, steps=2, labels=64, seed=9, progress=False)
    paths = second.save(tmp_path / "s", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["generated.jsonl", "sample_000.wav"]
    assert paths == [tmp_path / "s" / "sample_000.wav"]
    data, sr = sf.read(paths[0], dtype="float32")
    np.testing.assert_allclose(data, second.audio[0, 0].numpy(), atol=1 / 32768 + 1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]   # no temporary or moved-aside folder remains


def _full_disk_on(monkeypatch, call: int):
    """soundfile.write that writes a truncated file and then raises ENOSPC on its `call`-th use."""
    real, calls = sf.write, []

    def write(file, data, *a, **k):
        calls.append(file)
        if len(calls) == call:
            real(file, data[: len(data) // 2], *a, **k)   # half a file on disk, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, data, *a, **k)

    monkeypatch.setattr(sf, "write", write)


def test_save_on_a_full_disk_leaves_nothing_and_names_the_file(pipe, tmp_path, monkeypatch):
    out = pipe.generate(n=3, steps=2, labels=[60, 61, 62], seed=0, progress=False)
    _full_disk_on(monkeypatch, call=2)
    with pytest.raises(SaveError) as e:
        out.save(tmp_path / "new")
    msg = one_line(e)
    assert isinstance(e.value, AudiodiffError) and e.value.errno == errno.ENOSPC
    assert str(tmp_path / "new" / "sample_001.wav") in msg and "No space left on device" in msg
    assert list(tmp_path.iterdir()) == []   # no folder, no temporary folder, no partial WAV


def test_save_overwrite_failure_keeps_the_old_folder(pipe, tmp_path, monkeypatch):
    old = pipe.generate(n=2, steps=2, labels=[60, 61], seed=0, progress=False)
    old.save(tmp_path / "s")
    before = _snapshot(tmp_path / "s")
    new = pipe.generate(n=2, steps=2, labels=[70, 71], seed=1, progress=False)
    _full_disk_on(monkeypatch, call=1)
    with pytest.raises(SaveError, match="sample_000.wav: could not be written"):
        new.save(tmp_path / "s", overwrite=True)
    assert _snapshot(tmp_path / "s") == before and [p.name for p in tmp_path.iterdir()] == ["s"]


def test_audio_save_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    x = _tone(0.2)
    target = audio.save(tmp_path / "x.wav", x, SR)
    good = target.read_bytes()
    _full_disk_on(monkeypatch, call=1)
    with pytest.raises(AudioError) as e:
        audio.save(tmp_path / "x.wav", 0.5 * x, SR)
    assert str(tmp_path / "x.wav") in one_line(e) and "No space left on device" in str(e.value)
    assert target.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["x.wav"]
    monkeypatch.undo()
    _full_disk_on(monkeypatch, call=1)   # a fresh name: no file at all afterwards
    with pytest.raises(AudioError, match="could not be written"):
        audio.save(tmp_path / "y.wav", x, SR)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


# ============================================================== 11. prepare decodes; datasets fail up front
def _broken_folder(root, n_good=5):
    """Good tones next to a NaN float WAV, an infinite one, a WAV cut in half and a text file named .wav."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        sf.write(root / f"good{i}.wav", _tone(0.2, f=300 + 50 * i), SR)
    nan = _tone(0.2)
    nan[100] = np.nan
    sf.write(root / "nan.wav", nan, SR, subtype="FLOAT")
    inf = _tone(0.2)
    inf[5] = np.inf
    sf.write(root / "inf.wav", inf, SR, subtype="FLOAT")
    sf.write(root / "cut.wav", _tone(0.5), SR)
    whole = (root / "cut.wav").read_bytes()
    (root / "cut.wav").write_bytes(whole[: len(whole) // 2])
    (root / "text.wav").write_text("this is a text file, not audio\n" * 20)
    return {"nan.wav": "NaN or infinite", "inf.wav": "NaN or infinite", "cut.wav": "truncated",
            "text.wav": "cannot decode"}


def test_prepare_decodes_and_skips_nan_inf_truncated_and_undecodable_files(tmp_path, capsys):
    bad = _broken_folder(tmp_path / "wavs")
    rep = build_manifest(tmp_path / "wavs", out=tmp_path / "m.jsonl", progress=True)
    assert sorted(e["path"].rsplit("/", 1)[-1] for e in rep.entries) == [f"good{i}.wav" for i in range(5)]
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in rep.skipped}
    assert set(reasons) == set(bad)
    for name, fragment in bad.items():
        assert fragment in reasons[name], (name, reasons[name])
        assert f"skipped {tmp_path / 'wavs' / name}: {reasons[name]}" in str(rep)   # listed with the reason
    assert "prepare wavs" in capsys.readouterr().err   # the progress bar
    header_only = build_manifest(tmp_path / "wavs", decode=False)   # what prepare used to do: keeps them
    assert len(header_only.entries) == 8


def _manifest_with(tmp_path, bad_names, n_good):
    folder = tmp_path / "data"
    _broken_folder(folder, n_good)
    names = [f"good{i}.wav" for i in range(n_good)] + list(bad_names)
    entries = [{"path": str(folder / n), "duration": 0.2, "sample_rate": SR} for n in names]
    return write_manifest(entries, tmp_path / "data" / "manifest.jsonl")


def _manifest_cfg(manifest):
    return {"kind": "manifest", "manifest": str(manifest), "sample_rate": SR, "segment_seconds": 0.125,
            "valid_fraction": 0.0, "conditions": {}}


def test_too_many_bad_files_fail_before_the_first_training_step(tmp_path):
    manifest = _manifest_with(tmp_path, ["nan.wav", "cut.wav", "text.wav"], n_good=5)
    with pytest.raises(DatasetError) as e:
        build_dataset(_manifest_cfg(manifest))
    msg = one_line(e)
    assert str(manifest) in msg and "3 of 8 files failed to load" in msg
    assert "nan.wav: contains 1 NaN or infinite samples" in msg and "cut.wav: is truncated" in msg
    assert "text.wav: cannot decode" in msg and "audiodiff prepare" in msg
    cfg = tiny_cfg(tmp_path / "run", steps=2)
    cfg["data"] = _manifest_cfg(manifest)
    with pytest.raises(DatasetError, match="3 of 8 files failed to load"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_few_bad_files_are_left_out_with_one_warning(tmp_path, caplog):
    manifest = _manifest_with(tmp_path, ["nan.wav"], n_good=10)   # 1 of 11: under the 10% limit
    with caplog.at_level(logging.WARNING, logger="audiodiff.data"):
        ds = build_dataset(_manifest_cfg(manifest))["dataset"]
        for _ in range(3):   # every access after the build: no more warnings
            for i in range(len(ds)):
                ds[i]
    assert len(ds) == 10 and all("nan.wav" not in e["path"] for e in ds.entries)
    assert caplog.text.count("nan.wav") == 1 and "leaving out 1 of 11" in caplog.text


def test_a_file_failing_at_read_time_is_warned_about_once(tmp_path, caplog):
    bad = _broken_folder(tmp_path)
    entries = [{"path": str(tmp_path / n), "duration": 0.2, "sample_rate": SR}
               for n in ["good0.wav", "cut.wav", "good1.wav", "good2.wav"]]
    ds = WaveformDataset(entries, SR, segment_samples=400, max_failure_fraction=0.5)
    with caplog.at_level(logging.WARNING, logger="audiodiff.data"):
        for _ in range(5):
            ds[1]
    assert caplog.text.count("cut.wav") == 1 and bad["cut.wav"] in ds.failures[str(tmp_path / "cut.wav")]


def test_mel_dataset_counts_every_bad_file_before_failing(tmp_path):
    manifest = _manifest_with(tmp_path, ["nan.wav", "inf.wav", "text.wav"], n_good=2)
    mel = MelSpec(sample_rate=SR, n_fft=256, hop_length=64, n_mels=16)
    with pytest.raises(DatasetError) as e:
        MelDataset(manifest, mel, segment_frames=4)
    msg = one_line(e)
    assert f"manifest {manifest}: 3 of 5 files failed to load" in msg and "audiodiff prepare" in msg


# ============================================================== 12. short audio, label types
@pytest.mark.parametrize("method", ["variation", "inpaint", "continue_"])
@pytest.mark.parametrize("length", [0, 1])
def test_audio_shorter_than_the_model_takes_is_refused_with_the_minimum(pipe, no_sampling, method, length):
    low = pipe.min_samples()
    assert low > 1   # the tiny U-Net's normalisation needs more than one position at its coarsest level
    x = torch.zeros(1, length)
    args = {"variation": (x,), "inpaint": (x, torch.ones(length)), "continue_": (x, 0.05)}[method]
    with pytest.raises(PipelineError) as e:
        getattr(pipe, method)(*args, progress=False, steps=2)
    msg = one_line(e)
    assert f"audio for {method} has {length} samples at 8000 Hz" in msg
    assert f"needs at least {low} samples ({low / SR:.6g} s)" in msg


def test_the_minimum_length_is_exact(pipe):
    low = pipe.min_samples()
    ok = pipe.variation(torch.zeros(1, low), strength=0.5, steps=2, seed=0, progress=False)
    assert ok.audio.shape == (1, 1, low)
    with pytest.raises(PipelineError, match=f"needs at least {low} samples"):
        pipe.variation(torch.zeros(1, low - 1), steps=2, progress=False)
    with pytest.raises(PipelineError, match=rf"seconds=0.000125 gives 1 samples; this model needs at least {low}"):
        pipe.generate(n=1, seconds=1 / SR, steps=2, labels=60, progress=False)
    with pytest.raises(PipelineError, match="contains 1 NaN or infinite samples"):
        pipe.variation(torch.tensor([[float("nan")] + [0.0] * 99]), steps=2, progress=False)


def _class_pipe(pipe, vocab):
    """The tiny network behind a class-conditioned meta: only the request checks run, never the network."""
    meta = {**pipe.meta, "conditions": {"labels": "digit"}, "vocab": vocab}
    return Pipeline(pipe.net, meta, device="cpu")


def test_label_of_the_wrong_type_says_what_to_pass(pipe, no_sampling):
    digits = _class_pipe(pipe, list(range(10)))
    cond, items = digits._cond(["3", "7"], 2)  # a label is what the user wrote: the text "3" is the digit 3
    assert cond["labels"].tolist() == [3, 7] and items[0]["digit"] == "3"
    with pytest.raises(PipelineError, match=r"labels \[3.0\] are floats but the vocabulary holds integers \[0..9\]"):
        digits.generate(n=1, labels=[3.0], steps=2, progress=False)
    with pytest.raises(PipelineError, match=r"labels \[True\] are not in the model's vocabulary; allowed: \[0, 1"):
        digits.generate(n=1, labels=[True], steps=2, progress=False)   # True is not the label 1
    with pytest.raises(PipelineError, match=r"labels \['x'\] are not in the model's vocabulary"):
        digits.generate(n=1, labels=["x"], steps=2, progress=False)
    names = _class_pipe(pipe, ["3", "7"])  # classes named by folders "3" and "7": labels=[3,7] picks them
    assert names._cond([7, 3], 2)[0]["labels"].tolist() == [1, 0]
    with pytest.raises(PipelineError, match=r"labels \[7.0\] are floats but the vocabulary holds strings"):
        names.generate(n=1, labels=[7.0], steps=2, progress=False)
    cond, items = digits._cond([3, np.int64(4)], 2)   # the right type maps to the vocabulary ids
    assert cond["labels"].tolist() == [3, 4] and items[0]["digit"] == 3
