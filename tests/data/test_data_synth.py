"""Procedural notes: exact fundamentals (pYIN and FFT), no aliasing, ADSR, determinism, files + manifest."""
import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.data.manifest import read_manifest
from audiodiff.data.synth import TIMBRES, SynthNotes, adsr, midi_to_hz, render_note, write_synth_dataset

SR = 16000


def _cents(f, ref):
    return 1200 * np.log2(f / ref)


def _pyin_median(x, sr=SR):
    # fmin on a MIDI note, so pYIN's 10-cent grid contains every equal-tempered pitch
    f0, voiced, _ = librosa.pyin(x, fmin=librosa.note_to_hz("C2"), fmax=librosa.note_to_hz("C7"), sr=sr,
                                 frame_length=1024)
    assert voiced.mean() > 0.8
    return float(np.median(f0[voiced]))


def _spectrum(x, sr=SR, nfft=1 << 19):
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=nfft))
    return np.fft.rfftfreq(nfft, 1 / sr), mag


def test_midi_to_hz_matches_librosa():
    for p in (21, 48, 60, 69, 72, 108):
        assert midi_to_hz(p) == pytest.approx(librosa.midi_to_hz(p), rel=1e-12)


@pytest.mark.parametrize("timbre", TIMBRES)
def test_fundamental_is_the_midi_pitch(timbre):
    for pitch in (48, 67):
        x = render_note(pitch, timbre, SR, seconds=0.3)
        f0 = midi_to_hz(pitch)
        assert abs(_cents(_pyin_median(x), f0)) <= 10
        # the lowest strong partial is f0 itself (within 1 cent), nothing significant below it
        freqs, mag = _spectrum(x)
        near = (freqs > f0 * 2 ** (-0.5 / 12)) & (freqs < f0 * 2 ** (0.5 / 12))
        peak = freqs[near][np.argmax(mag[near])]
        assert abs(_cents(peak, f0)) < 1
        below = freqs < 0.75 * f0  # e.g. a subharmonic at f0 / 2 (window leakage stays under 1%)
        assert mag[below].max() < 0.01 * mag[near].max()


def test_vibrato_and_noise_keep_the_median_pitch():
    x = render_note(57, "saw", SR, seconds=1.0, vibrato_cents=40, vibrato_hz=5.0, noise=0.02,
                    rng=np.random.default_rng(1))
    assert abs(_cents(_pyin_median(x), midi_to_hz(57))) <= 10
    with pytest.raises(ValueError, match="needs an rng"):
        render_note(57, "saw", noise=0.1)


def test_band_limited_and_peak_normalised():
    x = render_note(100, "saw", SR, seconds=0.5, velocity=0.7)  # 2637 Hz: only 2 harmonics fit
    assert np.abs(x).max() == pytest.approx(0.7, rel=1e-6) and x.dtype == np.float32
    freqs, mag = _spectrum(x)
    assert mag[freqs > 0.95 * SR / 2].max() < 1e-4 * mag.max()
    with pytest.raises(ValueError, match="above 0.95 x Nyquist"):
        render_note(120, "sine", SR)
    with pytest.raises(ValueError, match=r"unknown timbre 'violin'; allowed: \['sine', 'square'"):
        render_note(60, "violin")


def test_adsr_closed_form():
    sr = 1000
    env = adsr(1000, sr, attack=0.1, decay=0.2, sustain=0.5, release=0.1)
    assert env[0] == 0 and env[50] == pytest.approx(0.5) and env[100] == pytest.approx(1.0)
    # exponential decay: at attack + decay, sustain + (1 - sustain) * e^-5
    assert env[300] == pytest.approx(0.5 + 0.5 * np.exp(-5), rel=1e-9)
    assert env[899] == pytest.approx(0.5 + 0.5 * np.exp(-(0.899 - 0.1) / 0.04), rel=1e-6)
    assert env[-1] == 0 and np.all(np.diff(env[900:]) <= 0)


def test_synth_notes_deterministic_and_labelled():
    a = SynthNotes(50, seed=3)
    b = SynthNotes(10, seed=3)  # the note at an index does not depend on n
    for i in (0, 7):
        assert torch.equal(a[i]["audio"], b[i]["audio"]) and a[i]["pitch"] == b[i]["pitch"]
    assert not torch.equal(SynthNotes(10, seed=4)[0]["audio"], a[0]["audio"])
    params = [a.params(i) for i in range(50)]
    assert {p["pitch"] for p in params} <= set(range(48, 73)) and len({p["timbre"] for p in params}) == 5
    item = a[5]
    assert item["audio"].shape == (1, SR) and item["pitch"] == float(params[5]["pitch"])
    assert a.vocab.decode(item["labels"]) == params[5]["timbre"]
    np.testing.assert_array_equal(item["audio"][0].numpy(),
                                  render_note(params[5]["pitch"], params[5]["timbre"], SR, 1.0,
                                              velocity=params[5]["velocity"]))


def test_easy_setting():
    train = SynthNotes(8, sample_rate=8000, seconds=0.25, pitches=range(60, 65), timbres=("sine",), velocity=0.8,
                       conditions={"pitch": "pitch"})
    item = train[0]
    assert set(item) == {"audio", "pitch"} and item["audio"].shape == (1, 2000) and train.vocab is None
    assert float(item["audio"].abs().max()) == pytest.approx(0.8, rel=1e-6)
    p = train.params(0)
    assert p["timbre"] == "sine" and p["vibrato_cents"] == 0 and p["noise"] == 0 and 60 <= p["pitch"] <= 64
    with pytest.raises(ValueError, match=r"unknown timbre\(s\) \['organ'\]"):
        SynthNotes(4, timbres=("sine", "organ"))
    with pytest.raises(ValueError, match="allowed fields"):
        SynthNotes(4, conditions={"labels": "instrument"})


def test_write_synth_dataset_files_and_manifest(tmp_path):
    m = write_synth_dataset(tmp_path / "tones", 6, sample_rate=8000, seconds=0.25, seed=2)
    entries = read_manifest(m)
    ds = SynthNotes(6, sample_rate=8000, seconds=0.25, seed=2)
    assert len(entries) == 6
    for i, e in enumerate(entries):
        x, sr = sf.read(e["path"], dtype="float32")
        assert sr == 8000 and len(x) == 2000 and e["duration"] == 0.25 and e["path"].endswith(".flac")
        assert e["pitch"] == ds.params(i)["pitch"] and e["timbre"] == ds.params(i)["timbre"]
        np.testing.assert_allclose(x, ds.render(i), atol=1 / 32768 + 1e-7)  # 16-bit FLAC
    assert '"path": "notes/' in m.read_text()  # stored relative to the manifest
