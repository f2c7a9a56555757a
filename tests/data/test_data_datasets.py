"""Waveform / mel datasets: reproducible crops, resampling, loudness, labels, bad files, mel cache, collate."""
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from audiodiff.conditions import Vocabulary, VocabularyError
from audiodiff.data import build_dataset
from audiodiff.data.base import crop_rng
from audiodiff.data.collate import collate, split_batch
from audiodiff.representations import Mel
from audiodiff.data.manifest import read_manifest
from audiodiff.data.mel_dataset import MelDataset
from audiodiff.data.sampler import EpochSampler
from audiodiff.data.waveform import WaveformDataset
from audiodiff.mel import MelSpec


def _write(path, x, sr, subtype="FLOAT"):
    sf.write(path, np.asarray(x, dtype=np.float32), sr, subtype=subtype)
    i = sf.info(path)
    return {"path": str(path), "duration": i.frames / sr, "sample_rate": sr}


@pytest.fixture
def ramp_entries(tmp_path):
    """Three 16 kHz files whose sample n holds n * 1e-5 (+ file offset): a crop reveals its start."""
    out = []
    for k, n in enumerate((5000, 7000, 3000)):
        e = _write(tmp_path / f"r{k}.wav", np.arange(n) * 1e-5 + 0.1 * k, 16000)
        e.update(label=["b", "a", "b"][k], pitch=60 + k)
        out.append(e)
    return out


# --------------------------------------------------------------------------- vocabulary
def test_vocabulary_sorted_ids_roundtrip_and_errors(tmp_path):
    v = Vocabulary(["snare", "kick", "tom", "kick"], name="label")
    assert v.values == ["kick", "snare", "tom"] and len(v) == 3
    assert [v.encode(x) for x in ("kick", "snare", "tom")] == [0, 1, 2] and v.decode(2) == "tom"
    with pytest.raises(VocabularyError, match=r"unknown label 'clap'; allowed values: \['kick', 'snare', 'tom'\]"):
        v.encode("clap")
    with pytest.raises(VocabularyError, match=r"out of range; allowed: 0..2"):
        v.decode(3)
    digits = Vocabulary([3, 1, 2, 10])
    assert digits.values == [1, 2, 3, 10]  # numeric order, not string order
    assert digits.encode("3") == 2  # the text "3" is the int label 3 (a folder label given to a digit vocabulary)
    with pytest.raises(VocabularyError, match="allowed values"):
        digits.encode("4")
    with pytest.raises(VocabularyError, match="must be int or str"):
        Vocabulary([1.5])
    assert Vocabulary.load(v.save(tmp_path / "vocab.json")) == v


def test_dataset_label_unknown_to_given_vocab_fails_at_construction(ramp_entries):
    with pytest.raises(VocabularyError, match=r"r1\.wav.*unknown label 'a'; allowed values: \['b', 'c'\]"):
        WaveformDataset(ramp_entries, 16000, conditions={"labels": "label"}, vocab=Vocabulary(["b", "c"]))


def test_conditions_values_and_errors(ramp_entries):
    ds = WaveformDataset(ramp_entries, 16000, segment_samples=1000, conditions={"labels": "label", "pitch": "pitch"})
    items = [ds[i] for i in range(3)]
    assert [it["labels"] for it in items] == [1, 0, 1]  # sorted vocabulary: a=0, b=1
    assert [it["pitch"] for it in items] == [60.0, 61.0, 62.0] and isinstance(items[0]["pitch"], float)
    assert set(items[0]) == {"audio", "labels", "pitch"}
    with pytest.raises(ValueError, match=r"unknown condition key\(s\) \['speaker'\]; allowed: \['labels', 'pitch'\]"):
        WaveformDataset(ramp_entries, 16000, conditions={"speaker": "label"})
    with pytest.raises(ValueError, match="reads field 'instrument', missing in 3 entries"):
        WaveformDataset(ramp_entries, 16000, conditions={"labels": "instrument"})


# --------------------------------------------------------------------------- crops
def test_random_crops_reproducible_from_seed_epoch_index(ramp_entries):
    seg = 1000
    ds = WaveformDataset(ramp_entries, 16000, segment_samples=seg, seed=7)
    full = [sf.read(e["path"], dtype="float32")[0] for e in ramp_entries]
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(3):
            start = int(crop_rng(7, epoch, i).integers(0, len(full[i]) - seg + 1))  # the documented generator
            np.testing.assert_array_equal(ds[i]["audio"][0].numpy(), full[i][start:start + seg])
    # a fresh dataset (a resumed run) at epoch 1 sees the same crops; (epoch, index) pairs equal set_epoch
    again = WaveformDataset(ramp_entries, 16000, segment_samples=seg, seed=7)
    again.set_epoch(1)
    assert torch.equal(again[1]["audio"], ds[1]["audio"])
    assert torch.equal(again[(0, 1)]["audio"], WaveformDataset(ramp_entries, 16000, segment_samples=seg, seed=7)[1]["audio"])
    starts = {round(float(again[(e, 1)]["audio"][0, 0]) / 1e-5 - 1e4) for e in range(10)}
    assert len(starts) > 5  # crops actually move between epochs


def test_center_start_and_padding(ramp_entries):
    ds = WaveformDataset(ramp_entries, 16000, segment_samples=4000, random_crop=False)
    a0, a2 = ds[0]["audio"], ds[2]["audio"]
    assert a0.shape == a2.shape == (1, 4000) and a0.dtype == torch.float32
    np.testing.assert_allclose(a0[0].numpy(), np.arange(4000) * 1e-5, atol=1e-7)  # starts at sample 0
    np.testing.assert_allclose(a2[0, :3000].numpy(), np.arange(3000) * 1e-5 + 0.2, atol=1e-7)
    assert torch.all(a2[0, 3000:] == 0)  # short file zero-padded at the end


def test_resampling_to_model_rate_length_and_frequency(tmp_path):
    sr, f = 8000, 440.0
    t = np.arange(4000) / sr
    e = _write(tmp_path / "tone.flac", 0.5 * np.sin(2 * np.pi * f * t), sr, subtype="PCM_16")
    x = WaveformDataset([e], 22050)[0]["audio"][0].numpy()
    assert len(x) == math.ceil(4000 * 22050 / 8000)  # 0.5 s at 22.05 kHz
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=1 << 18))
    peak = np.fft.rfftfreq(1 << 18, 1 / 22050)[np.argmax(spec)]
    assert abs(1200 * np.log2(peak / f)) < 5
    seg = WaveformDataset([e], 16000, segment_seconds=0.3)[0]["audio"]
    assert seg.shape == (1, 4800)


def test_loudness_and_channels(tmp_path):
    sr = 8000
    t = np.arange(8000) / sr
    st = np.stack([0.01 * np.sin(2 * np.pi * 200 * t), 0.03 * np.sin(2 * np.pi * 200 * t)], axis=1)
    e = _write(tmp_path / "st.wav", st, sr)
    mono = WaveformDataset([e], sr, loudness_db=-20.0)[0]["audio"]
    assert mono.shape == (1, 8000)
    assert 20 * math.log10(float(mono.pow(2).mean().sqrt())) == pytest.approx(-20.0, abs=1e-3)
    stereo = WaveformDataset([e], sr, mono=False)[0]["audio"]
    assert stereo.shape == (2, 8000)
    np.testing.assert_allclose(stereo.numpy(), st.T, atol=1e-7)


# --------------------------------------------------------------------------- bad files at read time
def test_corrupt_file_at_read_time_is_skipped_deterministically(ramp_entries, tmp_path, caplog):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio" * 20)
    entries = ramp_entries[:1] + [{"path": str(bad), "duration": 1.0, "sample_rate": 16000, "label": "b",
                                   "pitch": 61}] + ramp_entries[1:]
    ds = WaveformDataset(entries, 16000, segment_samples=500, conditions={"labels": "label"}, seed=1,
                         max_failure_fraction=0.5)
    item = ds[1]
    assert torch.equal(item["audio"], ds[2]["audio"]) and item["labels"] == ds[2]["labels"]
    assert list(ds.failures) == [str(bad)] and "cannot decode" in ds.failures[str(bad)]
    assert "bad.wav" in caplog.text
    batches = list(DataLoader(ds, batch_size=2, collate_fn=collate))  # a whole epoch runs
    assert sum(b["audio"].shape[0] for b in batches) == 4
    # too many failures is an error, not an endless loop
    strict = WaveformDataset(entries, 16000, segment_samples=500, max_failure_fraction=0.0)
    with pytest.raises(RuntimeError, match=r"1 of 4 files failed to load"):
        strict[1]


# --------------------------------------------------------------------------- collate, sampler, loaders
def test_collate_stacks_and_rejects_ragged():
    items = [{"audio": torch.full((1, 4), float(i)), "labels": i, "pitch": 60.0 + i} for i in range(3)]
    b = collate(items)
    assert b["audio"].shape == (3, 1, 4) and torch.equal(b["audio"][:, 0, 0], torch.tensor([0.0, 1.0, 2.0]))
    assert b["labels"].dtype == torch.long and b["labels"].tolist() == [0, 1, 2]
    assert b["pitch"].dtype == torch.float32 and b["pitch"].tolist() == [60.0, 61.0, 62.0]
    with pytest.raises(ValueError, match=r"'audio' tensors differ in shape \[\(1, 4\), \(1, 5\)\]"):
        collate([{"audio": torch.zeros(1, 4)}, {"audio": torch.zeros(1, 5)}])


def test_epoch_sampler_resume_and_shards():
    s = EpochSampler(10, seed=3, with_epoch=False)
    s.set_epoch(2)
    full = list(s)
    assert sorted(full) == list(range(10)) and full != list(range(10))
    s.set_epoch(2, start=4)
    assert list(s) == full[4:] and len(s) == 6
    s2 = EpochSampler(10, seed=3, with_epoch=False)
    s2.load_state_dict(s.state_dict())
    assert list(s2) == full[4:]
    ranks = [list(EpochSampler(10, seed=3, num_replicas=3, rank=r, with_epoch=False)) for r in range(3)]
    assert all(len(r) == 4 for r in ranks) and set(sum(ranks, [])) == set(range(10))
    assert list(EpochSampler(3, seed=0, shuffle=False)) == [(0, 0), (0, 1), (0, 2)]


def test_dataloader_workers_match_single_process(ramp_entries):
    ds = WaveformDataset(ramp_entries * 3, 16000, segment_samples=800, seed=5)
    sampler = EpochSampler(len(ds), seed=1)
    sampler.set_epoch(3)
    one = list(DataLoader(ds, batch_size=3, sampler=sampler, collate_fn=collate))
    two = list(DataLoader(ds, batch_size=3, sampler=sampler, collate_fn=collate, num_workers=2,
                          persistent_workers=True))
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        assert torch.equal(a["audio"], b["audio"])


# --------------------------------------------------------------------------- mel
def test_mel_dataset_matches_melspec_and_cache_hits(tmp_path):
    rng = np.random.default_rng(0)
    entries = [_write(tmp_path / f"n{i}.wav", 0.1 * rng.standard_normal(n), 16000)
               for i, n in enumerate((4000, 4000, 4000, 2500))]
    mel = MelSpec(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
    cache = tmp_path / "cache"
    first = MelDataset(entries, mel, segment_frames=20, random_crop=False, cache_dir=cache, batch_size=2)
    assert not first.cache_hit and first.cache_path.exists() and mel.fingerprint() in first.cache_path.name
    for i, e in enumerate(entries):  # batched mels equal MelSpec on each file alone
        wav = torch.from_numpy(sf.read(e["path"], dtype="float32")[0])[None]
        torch.testing.assert_close(first.full_mel(i), mel(wav)[0], atol=1e-5, rtol=1e-5)
    item = first[0]
    assert item["mel"].shape == (1, 40, 20)
    torch.testing.assert_close(item["mel"][0], first.full_mel(0)[:, :20], atol=0, rtol=0)

    second = MelDataset(entries, mel, segment_frames=20, random_crop=True, seed=4, cache_dir=cache)
    assert second.cache_hit and second.cache_path == first.cache_path
    for i in range(len(entries)):
        assert torch.equal(second.full_mel(i), first.full_mel(i))
    m = second[1]["mel"][0]
    start = int(crop_rng(4, 0, 1).integers(0, mel.frames(4000) - 20 + 1))
    assert torch.equal(m, first.full_mel(1)[:, start:start + 20])

    other = MelDataset(entries, MelSpec(sample_rate=16000, n_fft=512, hop_length=128, n_mels=48), cache_dir=cache)
    assert not other.cache_hit and other.cache_path != first.cache_path and other.full_mel(0).shape[0] == 48
    louder = MelDataset(entries, mel, loudness_db=-30.0, cache_dir=cache)
    assert not louder.cache_hit  # audio settings are part of the key

    # a short file is padded with the normalised value of silence (the log floor)
    short = MelDataset(entries[3:], mel, segment_frames=40)[0]["mel"]
    assert short.shape == (1, 40, 40)
    expected_pad = float(mel.normalize(torch.tensor(math.log(mel.log_floor))))
    assert torch.allclose(short[0, :, mel.frames(2500):], torch.tensor(expected_pad))


def test_split_batch_computes_the_mel_of_a_waveform_batch(ramp_entries):  # was batch_to_mel's test
    mel = MelSpec(sample_rate=16000, n_fft=256, hop_length=64, n_mels=20)
    b = collate([WaveformDataset(ramp_entries, 16000, segment_samples=1024, conditions={"pitch": "pitch"})[i]
                 for i in range(3)])
    x0, cond = split_batch(b, Mel(mel))
    assert x0.shape == (3, 1, 20, mel.frames(1024)) and "audio" not in cond
    torch.testing.assert_close(x0[:, 0], mel(b["audio"][:, 0]))
    assert torch.equal(cond["pitch"], b["pitch"])


# --------------------------------------------------------------------------- configs/data/*.yaml
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_data_configs_build(name, shared_data, monkeypatch):
    """Every data config works on its own: it resolves against the shared data (custom: a manifest given, its `auto`
    settings chosen from the data for the default network) and yields items of its segment length."""
    monkeypatch.setenv("AUDIODIFF_DATA", str(shared_data))
    from audiodiff.config import compose  # composed: a data config names its mel contract (configs/mel/)
    from audiodiff.data.plan import plan_data

    extra = [f"data.manifest={shared_data}/fsdd/manifest.jsonl"] if name == "custom" else []
    composed = OmegaConf.to_container(compose([f"data={name}", *extra]), resolve=True)
    cfg, _ = plan_data(composed["data"], composed["model"])
    if name == "custom":  # the default network is a waveform one: fsdd's 8 kHz digits, under 1 s, two classes+
        assert (cfg["representation"], cfg["sample_rate"], cfg["conditions"]) == ("waveform", 8000, {"labels": "label"})
    if cfg["kind"] == "synth":
        cfg["synth"]["n"] = 8
    out = build_dataset(cfg, split="train")
    ds, info = out["dataset"], out["info"]
    item = ds[0]
    assert set(item) - {"audio", "mel"} == set(cfg["conditions"])
    samples = round(cfg["segment_seconds"] * cfg["sample_rate"])
    if cfg["representation"] == "mel":
        mel = MelSpec(**cfg["mel"])
        assert item["mel"].shape == (1, mel.n_mels, mel.frames(samples))
    else:
        assert item["audio"].shape == (1, samples) and info["segment_samples"] == samples
    if "labels" in cfg["conditions"]:
        assert 0 <= item["labels"] < info["num_classes"] == len(ds.vocab)
    if cfg["kind"] == "manifest":
        entries = read_manifest(cfg["manifest"])
        valid = build_dataset(cfg, split="valid")["dataset"]
        assert len(ds) + len(valid) == len(entries) and len(valid) == round(cfg["valid_fraction"] * len(entries))


def _sine_manifest(tmp_path, midis, sr=16000, seconds=1.0):
    from audiodiff.data.manifest import write_manifest

    rows = []
    t = np.arange(int(sr * seconds)) / sr
    for m in midis:
        path = tmp_path / f"note_{m}.wav"
        sf.write(str(path), (0.5 * np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * t)).astype(np.float32), sr)
        rows.append({"path": str(path), "duration": seconds, "sample_rate": sr, "pitch": m})
    manifest = tmp_path / "manifest.jsonl"
    write_manifest(rows, manifest)
    return manifest


def _peak_hz(wav, sr):
    spec = np.abs(np.fft.rfft(wav.numpy().reshape(-1) * np.hanning(wav.shape[-1])))
    return np.argmax(spec) * sr / wav.shape[-1]


def test_pitch_shift_adds_resampled_copies_inside_the_recorded_range(tmp_path):
    """data.pitch_shift [-1, 1]: each training note gets copies one semitone down and up (closed form: the
    spectral peak moves by 2^(1/12), the pitch condition by 1), except where the copy leaves the recorded range;
    the held-out split is untouched."""
    sr = 16000
    manifest = _sine_manifest(tmp_path, [57, 60, 63, 66, 69, 72, 75, 78, 81, 84])
    cfg = {"kind": "manifest", "manifest": str(manifest), "sample_rate": sr, "segment_seconds": 1.0,
           "conditions": {"pitch": "pitch"}, "random_crop": False, "valid_fraction": 0.2}
    plain = build_dataset(cfg, split="train")["dataset"]
    shifted = build_dataset({**cfg, "pitch_shift": [-1, 1]}, split="train")["dataset"]
    base = sorted(float(e["pitch"]) for e in plain.entries)
    want = sorted(base + [p + k for k in (-1, 1) for p in base if 57 <= p + k <= 84])
    assert sorted(float(e["pitch"]) for e in shifted.entries) == want
    for i, e in enumerate(shifted.entries):
        item = shifted[i]
        hz = 440.0 * 2 ** ((item["pitch"] - 69) / 12)
        assert abs(_peak_hz(item["audio"], sr) - hz) <= 1.5          # 1 Hz bins: the asked pitch, to a bin
    assert len(build_dataset({**cfg, "pitch_shift": [-1, 1]}, split="valid")["dataset"]) == len(
        build_dataset(cfg, split="valid")["dataset"])
    with pytest.raises(ValueError, match=r"data.pitch_shift=\[0\]; allowed: a list of non-zero semitone shifts"):
        build_dataset({**cfg, "pitch_shift": [0]})
    with pytest.raises(ValueError, match="has no pitch; allowed: \\[\\] for this data"):
        build_dataset({**cfg, "conditions": {}, "pitch_shift": [1]})


def test_pitch_shifted_mels_get_their_own_cache(tmp_path):
    manifest = _sine_manifest(tmp_path, [60, 63, 66, 69, 72])
    mel = {"sample_rate": 16000, "n_fft": 512, "hop_length": 128, "n_mels": 40}
    cfg = {"kind": "manifest", "manifest": str(manifest), "sample_rate": 16000, "segment_seconds": 1.0,
           "conditions": {"pitch": "pitch"}, "representation": "mel", "mel": mel, "precompute_mel": True,
           "cache_dir": str(tmp_path / "cache"), "valid_fraction": 0.2}
    plain = build_dataset(cfg)["dataset"]
    shifted = build_dataset({**cfg, "pitch_shift": [1]})["dataset"]
    assert plain.cache_path != shifted.cache_path and len(shifted) > len(plain)
    copy = next(i for i, e in enumerate(shifted.entries) if e.get("pitch_shift"))
    orig = next(i for i, e in enumerate(shifted.entries) if e["path"] == shifted.entries[copy]["path"]
                and not e.get("pitch_shift"))
    n_copy, n_orig = shifted.full_mel(copy).shape[-1], shifted.full_mel(orig).shape[-1]
    assert abs(n_copy - n_orig * 2 ** (-1 / 12)) <= 1.5     # a semitone up plays 2^(1/12) faster
