"""Phase-gradient integration: the phase of a tone and of a click against their closed forms, and what it buys
Griffin-Lim (its consistency at 0 and 8 iterations against random phase at 8 and 32)."""
import math

import pytest
import torch

from audiodiff.losses import spectral_convergence, stft_magnitude
from audiodiff.vocoders.griffinlim import GriffinLimVocoder, griffin_lim
from audiodiff.vocoders.pghi import _peak_owner, pghi_phase

SR, N_FFT, HOP = 8000, 512, 128
WINDOW = torch.hann_window(N_FFT)


def _stft(y):
    return torch.stft(y, N_FFT, HOP, window=WINDOW, center=True, return_complex=True)


def _istft(X, length):
    return torch.istft(X, N_FFT, HOP, window=WINDOW, center=True, length=length)


def _sc(y, S):
    return float(spectral_convergence(S, stft_magnitude(y, N_FFT, HOP)[..., :S.shape[-1]]))


def _signal(kind, n=SR):
    t = torch.arange(n, dtype=torch.float64) / SR
    if kind == "tone":
        y = torch.sin(2 * math.pi * 1003.7 * t)
    elif kind == "chirp":
        y = torch.sin(2 * math.pi * (200 * t + 1500 * t ** 2))
    else:  # harmonic: 220 Hz, seven partials with 1/k amplitudes
        y = sum(torch.sin(2 * math.pi * k * 220 * t + k) / k for k in range(1, 8))
    return (0.5 * y / y.abs().max()).float()[None]


def test_a_tones_phase_advances_by_its_frequency_per_hop():
    """Closed form: a tone at f advances 2 pi f hop / rate per frame, at its peak bin and at the bins beside it."""
    f = 1003.7
    y = _signal("tone")
    S = _stft(y).abs()
    phase = pghi_phase(S, N_FFT, HOP)
    k = round(f * N_FFT / SR)
    expect = 2 * math.pi * f * HOP / SR
    for m in (k - 1, k, k + 1):
        d = phase[0, m, 5:-5].diff()  # away from the clip's edges, where the window meets the padding
        err = torch.remainder(d - expect + math.pi, 2 * math.pi) - math.pi
        assert err.abs().max() < 0.05, (m, err.abs().max())  # 0.02 rad: 0.2 Hz (Hann is not a Gaussian)


def test_a_clicks_phase_places_it_in_time():
    """Closed form: a click at t0 has, in the frame centred at x, phase slope -2 pi (t0 - x) / n_fft per bin; the
    reconstruction from magnitude alone puts the click back within two samples of t0."""
    n, t0 = 4000, 2000 + 37
    y = torch.zeros(1, n)
    y[0, t0] = 1.0
    S = _stft(y).abs()
    phase = pghi_phase(S, N_FFT, HOP)
    out = _istft(torch.polar(S, phase), n)
    assert abs(int(out[0].abs().argmax()) - t0) <= 2
    frame = round(t0 / HOP)  # the frame whose centre is nearest the click
    slope = torch.remainder(phase[0, 20:200, frame].diff() + math.pi, 2 * math.pi) - math.pi
    expect = -2 * math.pi * (t0 - frame * HOP) / N_FFT + math.pi  # + pi: torch.stft's frame-start reference
    err = torch.remainder(slope - expect + math.pi, 2 * math.pi) - math.pi
    assert err.abs().median() < 0.05


@pytest.mark.parametrize("kind", ["tone", "chirp", "harmonic"])
def test_pghi_beats_random_phase_and_gives_griffin_lim_a_head_start(kind):
    y = _signal(kind)
    S = _stft(y).abs()
    kw = dict(n_fft=N_FFT, hop_length=HOP, length=y.shape[-1])
    sc = {(init, it): _sc(griffin_lim(S, n_iter=it, init=init, **kw), S) for init in ("pghi", "random")
          for it in (0, 8, 32)}
    assert sc["pghi", 0] < 0.2 < 0.5 < sc["random", 0], sc  # measured: 0.07-0.12 against 0.63-0.68
    assert sc["pghi", 0] < sc["random", 8], sc  # no iterations beat eight from random phase
    assert sc["pghi", 8] < 0.6 * sc["random", 32], sc  # eight from PGHI beat thirty-two from random phase
    assert sc["pghi", 32] <= sc["pghi", 8] * 1.05, sc


def test_peak_owner_climbs_to_the_local_maximum():
    S = torch.tensor([1.0, 3.0, 2.0, 0.5, 4.0, 5.0, 1.0, 2.0])[None, :, None]
    owner = _peak_owner(S[:, :, 0])[0].tolist()
    assert owner == [1, 1, 1, 5, 5, 5, 5, 7]
    flat = _peak_owner(torch.ones(1, 6))[0].tolist()  # a plateau is one peak (its last bin)
    assert flat == [5] * 6


def test_pghi_is_checked_and_runs_in_the_vocoder():
    with pytest.raises(ValueError, match=r"magnitude must be \(B, 257, frames\)"):
        pghi_phase(torch.zeros(1, 10, 5), N_FFT, HOP)
    with pytest.raises(ValueError, match="tol_db must be > 0"):
        pghi_phase(torch.zeros(1, 257, 5), N_FFT, HOP, tol_db=0)
    from audiodiff.mel import MelSpec

    mel = MelSpec(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, n_mels=64)
    voc = GriffinLimVocoder(mel, n_iter=4, init="pghi")
    y = _signal("harmonic", 4000)
    out = voc(mel(y))
    assert out.shape == (1, 1, mel(y).shape[-1] * HOP) and torch.isfinite(out).all()
    assert voc.config()["init"] == "pghi"
