"""audiodiff.audio: round trips for every format soundfile writes, clear errors, resampling, shared data."""
import json
import math
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff import audio
from audiodiff.audio import AudioError

SR = 16000
F32_RES = 2.0 ** -23  # float32 spacing just below 1.0: the finest a (C, T) float32 tensor can hold

# (suffix, subtype, quantisation step of the subtype for full scale [-1, 1])
LOSSLESS = [
    (".wav", "PCM_U8", 2.0 ** -7),
    (".wav", "PCM_16", 2.0 ** -15),
    (".wav", "PCM_24", 2.0 ** -23),
    (".wav", "PCM_32", 2.0 ** -31),
    (".wav", "FLOAT", 0.0),
    (".wav", "DOUBLE", 0.0),
    (".flac", "PCM_S8", 2.0 ** -7),
    (".flac", "PCM_16", 2.0 ** -15),
    (".flac", "PCM_24", 2.0 ** -23),
    # other containers libsndfile reads and writes
    (".aiff", "PCM_16", 2.0 ** -15),
    (".aiff", "FLOAT", 0.0),
    (".au", "PCM_24", 2.0 ** -23),
    (".caf", "PCM_16", 2.0 ** -15),
    (".w64", "PCM_32", 2.0 ** -31),
    (".rf64", "PCM_16", 2.0 ** -15),
]
LOSSY = [(".ogg", "VORBIS"), (".ogg", "OPUS"), (".mp3", "MPEG_LAYER_III")]


def _signal(channels: int, n: int = 4000, seed: int = 0) -> np.ndarray:
    """`(C, T)` float32 test audio in [-0.9, 0.9] with a different content per channel."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.9, 0.9, size=(channels, n)).astype(np.float32)


def _sines(freqs, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([amp * np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)


def _peak_freq(x: np.ndarray, sr: int) -> float:
    """Frequency of the strongest sinusoid: Hann-windowed, 8x zero-padded FFT with parabolic peak interpolation."""
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(n), 8 * n))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1: k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (8 * n)


def _available(suffix: str, subtype: str) -> bool:
    fmt = suffix[1:].upper()
    return fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("suffix,subtype,step", LOSSLESS, ids=[f"{s[1:]}-{t}" for s, t, _ in LOSSLESS])
def test_lossless_round_trip(tmp_path, suffix, subtype, step, channels):
    if not _available(suffix, subtype):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {suffix} {subtype}")
    x = _signal(channels)
    path = audio.save(tmp_path / f"x{suffix}", torch.from_numpy(x), SR, subtype=subtype)
    assert sf.info(str(path)).subtype == subtype

    y, sr = audio.load(path, mono=False)
    assert sr == SR and y.dtype == torch.float32 and tuple(y.shape) == x.shape

    # Same samples as soundfile's own (float64) read, up to float32 rounding.
    ref, ref_sr = sf.read(str(path), dtype="float64", always_2d=True)
    assert ref_sr == SR
    np.testing.assert_allclose(y.numpy(), ref.T, rtol=0, atol=F32_RES)
    # And the original signal within one quantisation step of the subtype.
    np.testing.assert_allclose(y.numpy(), x, rtol=0, atol=max(step, F32_RES))
    if step > 0:  # the quantisation is really there (the tolerance is not vacuous)
        assert np.abs(y.numpy() - x).max() > step / 100

    # mono=True averages the channels.
    m, _ = audio.load(path)
    assert tuple(m.shape) == (1, x.shape[1])
    np.testing.assert_allclose(m.numpy()[0], ref.mean(axis=1), rtol=0, atol=2 * F32_RES)


@pytest.mark.parametrize("suffix,subtype", LOSSY, ids=[t for _, t in LOSSY])
def test_lossy_round_trip(tmp_path, suffix, subtype):
    if not _available(suffix, subtype):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {suffix} {subtype}")
    sr = 48000 if subtype == "OPUS" else SR  # Opus only runs at 8/12/16/24/48 kHz and decodes at 48 kHz
    x = _sines([440.0, 660.0], sr)
    path = audio.save(tmp_path / f"x{suffix}", x, sr, subtype=subtype)
    y, got_sr = audio.load(path, mono=False)
    ref, ref_sr = sf.read(str(path), dtype="float64", always_2d=True)
    assert got_sr == ref_sr == sr and tuple(y.shape) == (2, len(ref))
    np.testing.assert_allclose(y.numpy(), ref.T, rtol=0, atol=F32_RES)
    # Lossy but faithful: the length is kept, each channel stays on its own sine, SNR > 20 dB.
    assert y.shape[1] == x.shape[1]
    for c, f in enumerate([440.0, 660.0]):
        err = y[c].numpy() - x[c]
        snr = 10 * np.log10((x[c] ** 2).sum() / (err ** 2).sum())
        assert snr > 20, (c, snr)
        assert abs(_peak_freq(y[c].numpy(), sr) - f) < 0.5


def test_default_subtype_per_format(tmp_path):
    x = _signal(1, 2000) * 0.5
    assert sf.info(str(audio.save(tmp_path / "a.wav", x, SR))).subtype == "PCM_16"
    assert sf.info(str(audio.save(tmp_path / "a.flac", x, SR))).subtype == "PCM_16"
    assert sf.info(str(audio.save(tmp_path / "a.ogg", x, SR))).subtype == "VORBIS"


def test_load_of_1d_save_and_mono_false_on_mono_file(tmp_path):
    x = _signal(1)[0]
    audio.save(tmp_path / "m.wav", x, SR, subtype="FLOAT")
    y, _ = audio.load(tmp_path / "m.wav", mono=False)
    assert tuple(y.shape) == (1, len(x))
    np.testing.assert_array_equal(y[0].numpy(), x)


# ----------------------------------------------------------------------------- resampling
@pytest.mark.parametrize("src,dst,freq", [(16000, 22050, 440.0), (22050, 16000, 1000.0), (8000, 24000, 300.0)])
def test_load_resamples_keeping_length_and_frequency(tmp_path, src, dst, freq):
    x = _sines([freq], src, seconds=1.0)
    audio.save(tmp_path / "s.wav", x, src, subtype="FLOAT")
    y, sr = audio.load(tmp_path / "s.wav", sample_rate=dst)
    assert sr == dst
    assert y.shape[-1] == math.ceil(x.shape[-1] * dst / src)
    assert abs(_peak_freq(y[0].numpy(), dst) - freq) < 0.5
    # Amplitude is kept away from the edges (windowed-sinc passband).
    mid = y[0, dst // 10: -dst // 10].numpy()
    assert abs(np.sqrt(2 * np.mean(mid ** 2)) - 0.5) < 0.01


def test_load_same_rate_is_untouched(tmp_path):
    x = _signal(1)
    audio.save(tmp_path / "s.wav", x, SR, subtype="FLOAT")
    y, sr = audio.load(tmp_path / "s.wav", sample_rate=SR)
    assert sr == SR
    np.testing.assert_array_equal(y.numpy(), x)


def test_resample_rejects_bad_rates(tmp_path):
    audio.save(tmp_path / "s.wav", _signal(1), SR)
    with pytest.raises(AudioError, match="sample_rate must be a positive integer"):
        audio.load(tmp_path / "s.wav", sample_rate=0)
    with pytest.raises(ValueError, match="new_sr must be a positive integer"):
        audio.resample(torch.zeros(1, 10), 16000, -1)


# ----------------------------------------------------------------------------- errors on load
def _wav_bytes(tmp_path, subtype="PCM_16", channels=2, n=4000, name="full.wav"):
    p = tmp_path / name
    sf.write(str(p), _signal(channels, n).T, SR, subtype=subtype)
    return p.read_bytes()


def _expect(path, *words):
    with pytest.raises(AudioError) as ei:
        audio.load(path)
    msg = str(ei.value)
    assert isinstance(ei.value, ValueError)
    assert msg == f"{path}: {ei.value.problem}", msg
    for w in words:  # in the problem, not the path (pytest's tmp_path holds the test's name, e.g. "truncated")
        assert w in ei.value.problem, msg
    return msg


def test_error_missing_file(tmp_path):
    _expect(tmp_path / "nope.wav", "does not exist")


def test_error_empty_file_and_directory(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    _expect(tmp_path / "empty.wav", "empty")
    _expect(tmp_path, "directory")


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_error_truncated_wav(tmp_path, subtype):
    data = _wav_bytes(tmp_path, subtype)
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "cut.wav", "truncated")
    (tmp_path / "header_only.wav").write_bytes(data[:44] if subtype == "PCM_16" else data[:80])
    _expect(tmp_path / "header_only.wav", "truncated")


@pytest.mark.parametrize("suffix", [".aiff", ".au", ".w64", ".rf64"])
def test_error_truncated_other_containers(tmp_path, suffix):
    p = tmp_path / f"full{suffix}"
    sf.write(str(p), _signal(2).T, SR, subtype="PCM_16")
    audio.load(p)  # the whole file is fine
    data = p.read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / f"cut{suffix}", "truncated")


def test_missing_pad_byte_is_not_truncation(tmp_path):
    """An odd-sized data chunk whose writer left out the pad byte still loads (a 1-byte shortfall)."""
    p = tmp_path / "odd.wav"
    x = _signal(1, 101)
    sf.write(str(p), x.T, SR, subtype="PCM_U8")
    data = p.read_bytes()
    assert len(data) == 44 + 101 + 1  # header, 101 one-byte samples, the pad byte
    (tmp_path / "nopad.wav").write_bytes(data[:-1])
    y, _ = audio.load(tmp_path / "nopad.wav")
    assert y.shape == (1, 101)


def test_error_truncated_ogg(tmp_path):
    p = tmp_path / "full.ogg"
    sf.write(str(p), _sines([440.0, 660.0], SR, seconds=3.0).T, SR, subtype="VORBIS")
    data = p.read_bytes()
    (tmp_path / "cut.ogg").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "cut.ogg", "truncated", "end-of-stream")


@pytest.mark.parametrize("sr,channels", [(44100, 2), (16000, 1)])
def test_mp3_decoding_fewer_frames_than_its_header_is_not_truncated(tmp_path, sr, channels):
    """An MP3's header frame count is an estimate (sox's files say 30672 frames and decode 30528): load keeps
    what decodes, and probe's duration is the decoded count over the rate. Cutting a few hundred bytes off the
    end of a soundfile-written MP3 makes the same mismatch."""
    if not _available(".mp3", "MPEG_LAYER_III"):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write MP3")
    from audiodiff.data.manifest import probe

    p = tmp_path / "full.mp3"
    sf.write(str(p), _sines([440.0, 660.0][:channels], sr).T, sr)
    data = p.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[:-300])
    header = sf.info(str(cut)).frames
    decoded = len(sf.read(str(cut), always_2d=True)[0])
    assert header == sr and decoded < header - 500  # the header says 1 s; several hundred frames fewer decode

    y, got_sr = audio.load(cut, mono=False)
    assert got_sr == sr and tuple(y.shape) == (channels, decoded)
    e = probe(cut)
    assert e["duration"] == round(decoded / sr, 6) and e["duration"] < header / sr
    assert (e["sample_rate"], e["channels"]) == (sr, channels)
    assert probe(cut, decode=False)["duration"] == 1.0  # the header alone says 1 s
    # the whole file decodes to its header's count
    assert probe(p)["duration"] == 1.0


def test_wav_and_aiff_with_a_short_data_chunk_stay_truncated(tmp_path):
    """The MP3 exception does not reach the containers whose header is exact: a few hundred bytes off a WAV or
    an AIFF is still refused, from libsndfile's "(should be N)" log note."""
    for suffix in (".wav", ".aiff"):
        p = tmp_path / f"full{suffix}"
        sf.write(str(p), _signal(1, 4000).T, SR, subtype="PCM_16")
        data = p.read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[:-300])
        _expect(tmp_path / f"cut{suffix}", "is truncated", "header says")


def test_error_truncated_flac_cannot_decode(tmp_path):
    p = tmp_path / "full.flac"
    sf.write(str(p), _signal(2).T, SR)
    data = p.read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "cut.flac", "cannot decode")


def test_error_undecodable(tmp_path):
    (tmp_path / "junk.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    _expect(tmp_path / "junk.wav", "cannot decode", "Format not recognised")
    (tmp_path / "notes.flac").write_text("these are not audio samples\n" * 20)
    _expect(tmp_path / "notes.flac", "cannot decode")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_error_non_finite_samples(tmp_path, bad):
    x = _signal(2)
    x[1, 123] = bad
    x[0, 7] = bad
    sf.write(str(tmp_path / "bad.wav"), x.T, SR, subtype="FLOAT")
    _expect(tmp_path / "bad.wav", "2 NaN or infinite samples")


def test_error_zero_channels(tmp_path):
    data = bytearray(_wav_bytes(tmp_path))
    assert data[12:16] == b"fmt " and struct.unpack_from("<H", data, 22)[0] == 2
    struct.pack_into("<H", data, 22, 0)  # WAVE fmt chunk: channel count at byte 22
    (tmp_path / "zero.wav").write_bytes(bytes(data))
    _expect(tmp_path / "zero.wav", "zero channels")
    with pytest.raises(AudioError, match="zero channels"):
        audio.info(tmp_path / "zero.wav")


def test_error_no_samples(tmp_path):
    sf.write(str(tmp_path / "nothing.wav"), np.zeros((0, 1), np.float32), SR)
    _expect(tmp_path / "nothing.wav", "no samples")


def test_info_errors_name_file(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        audio.info(tmp_path / "nope.flac")
    (tmp_path / "junk.wav").write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(AudioError, match="cannot decode") as ei:
        audio.info(tmp_path / "junk.wav")
    assert str(tmp_path / "junk.wav") in str(ei.value)


# ----------------------------------------------------------------------------- errors on save
def test_save_refuses_bad_input(tmp_path):
    x = _signal(1)
    with pytest.raises(AudioError, match=r"outside \[-1, 1\]"):
        audio.save(tmp_path / "loud.wav", x * 2, SR)
    audio.save(tmp_path / "loud_float.wav", x * 2, SR, subtype="FLOAT")  # float keeps it, no clipping
    y, _ = audio.load(tmp_path / "loud_float.wav")
    np.testing.assert_array_equal(y.numpy(), x * 2)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        audio.save(tmp_path / "nan.wav", bad, SR)
    with pytest.raises(AudioError, match="allowed suffixes"):
        audio.save(tmp_path / "x.xyz", x, SR)
    with pytest.raises(AudioError, match="allowed: .*PCM_16"):
        audio.save(tmp_path / "x.wav", x, SR, subtype="PCM_12")
    with pytest.raises(AudioError, match="cannot be written as OGG"):
        audio.save(tmp_path / "x.ogg", x, SR, subtype="PCM_16")
    with pytest.raises(AudioError, match="non-empty"):
        audio.save(tmp_path / "e.wav", np.zeros((1, 0), np.float32), SR)
    with pytest.raises(AudioError, match="sample_rate"):
        audio.save(tmp_path / "r.wav", x, 0)
    assert not (tmp_path / "loud.wav").exists() and not (tmp_path / "x.ogg").exists()


# ----------------------------------------------------------------------------- helpers
def test_to_mono_and_loudness():
    x = torch.tensor([[0.2, -0.4, 0.6], [0.0, 0.4, -0.2]])
    torch.testing.assert_close(audio.to_mono(x), torch.tensor([[0.1, 0.0, 0.2]]))
    y = torch.from_numpy(_signal(1, 8000, seed=3)) * 0.01
    out = audio.loudness_normalize(y, target_db=-20.0, peak=1.0)
    assert abs(20 * math.log10(out.pow(2).mean().sqrt().item()) + 20.0) < 1e-3
    limited = audio.loudness_normalize(y, target_db=0.0, peak=0.5)  # RMS 0 dB would peak above 0.5
    assert abs(limited.abs().max().item() - 0.5) < 1e-6
    torch.testing.assert_close(limited / limited.abs().max(), y / y.abs().max())
    silence = torch.zeros(1, 100)
    assert audio.loudness_normalize(silence) is silence


# ----------------------------------------------------------------------------- the shared recordings
def test_every_shared_file_loads_and_matches_manifest(shared_data):
    manifests = sorted(shared_data.glob("*/manifest.jsonl"))
    assert len(manifests) >= 5, manifests
    total = 0
    for manifest in manifests:
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        assert rows, manifest
        for row in rows:
            path = manifest.parent / row["path"]
            x, sr = audio.load(path)
            assert sr == row["sample_rate"], (path, sr, row)
            assert x.dim() == 2 and x.shape[0] == 1 and x.dtype == torch.float32, (path, x.shape)
            # Manifest durations are rounded to the millisecond.
            assert abs(x.shape[1] / sr - row["duration"]) <= 0.0005 + 1 / sr, (path, x.shape[1] / sr, row)
            assert float(x.abs().max()) <= 1.0, path
            total += 1
    assert total >= 3000, total
