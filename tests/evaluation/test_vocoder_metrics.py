"""Vocoder distances against closed forms: identical -> 0, scaling by a -> |1 - a|, |log a|, |20 log10 a|."""
import math

import numpy as np
import pytest
import torch

from audiodiff import losses
from audiodiff.evaluation import vocoder_metrics as VM
from audiodiff.mel import MelSpec

MEL = MelSpec(sample_rate=16000, n_fft=512, hop_length=128, n_mels=64)
MEL8K = MelSpec(sample_rate=8000, n_fft=512, hop_length=128, n_mels=64)


def _noise(n=2, T=8000):
    return torch.randn(n, T, generator=torch.Generator().manual_seed(0)) * 0.1


def test_identical_signals_are_at_distance_zero():
    x = _noise()
    assert float(losses.mrstft_distance(x, x)) == 0.0
    assert float(losses.log_spectral_distance(x, x)) == 0.0
    assert float(losses.mel_l1(x, x, MEL)) == 0.0


@pytest.mark.parametrize("a", [0.5, 2.0])
def test_scaled_signal_closed_forms(a):
    x = _noise()
    y = a * x
    # every STFT bin scales by a: LSD = |20 log10 a|, SC = |1 - a|, log-magnitude L1 = |ln a| (noise has no
    # bins below the floor), log-mel L1 = |ln a| (power 1 mel is linear in the magnitude)
    assert float(losses.log_spectral_distance(x, y)) == pytest.approx(abs(20 * math.log10(a)), rel=1e-4)
    assert float(losses.mrstft_distance(x, y)) == pytest.approx(abs(1 - a) + abs(math.log(a)), rel=1e-4)
    assert float(losses.mel_l1(x, y, MEL)) == pytest.approx(abs(math.log(a)), rel=1e-4)


def test_spectral_convergence_and_lsd_match_numpy():
    x, y = _noise(1), _noise(1).roll(7, -1) * 0.8 + 0.01 * _noise(1).flip(-1)
    R = losses.stft_magnitude(x, 512, 128).numpy()[0]
    E = losses.stft_magnitude(y, 512, 128).numpy()[0]
    sc = np.linalg.norm(R - E) / np.linalg.norm(R)
    assert float(losses.spectral_convergence(torch.tensor(R)[None], torch.tensor(E)[None])) == pytest.approx(sc, rel=1e-5)
    import librosa

    P = np.abs(librosa.stft(x.numpy()[0].astype(np.float64), n_fft=2048, hop_length=512, pad_mode="reflect")) ** 2 + 1e-10
    Q = np.abs(librosa.stft(y.numpy()[0].astype(np.float64), n_fft=2048, hop_length=512, pad_mode="reflect")) ** 2 + 1e-10
    lsd = np.mean(np.sqrt(np.mean((10 * np.log10(P) - 10 * np.log10(Q)) ** 2, axis=0)))
    assert float(losses.log_spectral_distance(x, y)) == pytest.approx(lsd, rel=1e-3)


def test_shapes_lengths_and_per_item():
    x = _noise(3)
    y = torch.cat([x, torch.zeros(3, 100)], -1)[:, None]  # (B, 1, T + 100): cut to T
    assert float(losses.mrstft_distance(x, y)) == pytest.approx(0.0, abs=1e-6)
    per = losses.log_spectral_distance(x, 2 * x, reduce=False)
    assert per.shape == (3,)
    with pytest.raises(ValueError, match="differ in length by 5000"):
        losses.mrstft_distance(x, x[:, :3000])
    with pytest.raises(ValueError, match="batch sizes differ"):
        losses.mrstft_distance(x, x[:2])
    with pytest.raises(ValueError, match=r"mono \(B, 1, T\)"):
        losses.mel_l1(x[:, None].expand(3, 2, -1), x, MEL)


def test_real_time_factor_reports_consistent_numbers():
    calls = []
    r = VM.real_time_factor(lambda: calls.append(sum(range(1000))), audio_seconds=10.0, repeats=3, warmup=2)
    assert len(calls) == 5
    assert r["seconds"] > 0
    assert r["rtf"] == pytest.approx(r["seconds"] / 10.0)
    assert r["x_real_time"] == pytest.approx(10.0 / r["seconds"])
    with pytest.raises(ValueError):
        VM.real_time_factor(lambda: None, audio_seconds=0)


def _speechlike(seconds=2.0, sr=16000, seed=0):
    """A voiced, syllable-rate modulated harmonic signal: what PESQ and STOI are designed for."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * torch.sin(2 * math.pi * 1.3 * t)
    ph = 2 * math.pi * torch.cumsum(f0, 0) / sr
    y = sum(torch.sin(k * ph) / k for k in range(1, 12)) * (0.5 + 0.5 * torch.sin(2 * math.pi * 4 * t)).clamp_min(0)
    return (0.3 * y / y.abs().max() + 0.001 * torch.randn(t.shape, generator=g))[None]


def test_pesq_and_stoi_against_the_reference_packages():
    """`make test` installs the `metrics` extra: identical clips score PESQ > 4 and STOI = ESTOI = 1 (closed
    form: the correlation of a signal with itself); added noise lowers both, monotonically in its level."""
    import pesq  # noqa: F401  (the reference implementations)
    import pystoi  # noqa: F401

    x = _speechlike()
    g = torch.Generator().manual_seed(1)
    noisy = {snr: x + x.std() * 10 ** (-snr / 20) * torch.randn(x.shape, generator=g) for snr in (20, 5, -5)}
    assert VM.pesq_score(x, x, 16000) > 4.0
    assert VM.stoi_score(x, x, 16000) == pytest.approx(1.0, abs=1e-6)
    assert VM.stoi_score(x, x, 16000, extended=True) == pytest.approx(1.0, abs=1e-6)
    p = [VM.pesq_score(x, noisy[s], 16000) for s in (20, 5, -5)]
    s = [VM.stoi_score(x, noisy[k], 16000) for k in (20, 5, -5)]
    e = [VM.stoi_score(x, noisy[k], 16000, extended=True) for k in (20, 5, -5)]
    assert 4.0 > p[0] > p[1] > p[2] and 1.0 > s[0] > s[1] > s[2] and 1.0 > e[0] > e[1] > e[2], (p, s, e)
    # narrow band at 8 kHz, and the resynthesis report carries all three
    x8 = x[:, ::2]
    assert VM.pesq_score(x8, x8, 8000) > 4.0
    est = x8 + 0.01 * x8.std() * torch.randn(x8.shape, generator=g)
    r = VM.resynthesis_metrics(x8, est, MEL8K)
    assert r["pesq"] == pytest.approx(VM.pesq_score(x8, est, 8000), abs=1e-6) and r["pesq"] > 4.0
    assert r["stoi"] == pytest.approx(VM.stoi_score(x8, est, 8000), abs=1e-9)
    assert r["estoi"] == pytest.approx(VM.stoi_score(x8, est, 8000, extended=True), abs=1e-9)
    assert VM.stoi_score(x[:, :3000], x[:, :3000], 16000) is None  # 0.19 s: no 384 ms segment to score
