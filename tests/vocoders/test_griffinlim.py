"""Griffin-Lim: mel inversion against closed forms / scipy's NNLS, and convergence of fast Griffin-Lim."""
import math

import numpy as np
import pytest
import torch

from audiodiff.losses import spectral_convergence, stft_magnitude
from audiodiff.mel import MelSpec
from audiodiff.vocoders.griffinlim import GriffinLimVocoder, griffin_lim, mel_to_linear

SR, N_FFT, HOP = 16000, 512, 128
MEL = MelSpec(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, n_mels=64)


def harmonic_chirp(seconds=0.5):
    """A harmonic tone whose fundamental glides 180 -> 260 Hz, five partials with 1/k amplitudes."""
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    f0 = 180 + 80 * t / seconds
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
    y = sum(torch.sin(k * phase) / k for k in range(1, 6))
    return (0.3 * y / y.abs().max()).float()[None]


def _sc(y, S):
    return float(spectral_convergence(S, stft_magnitude(y, N_FFT, HOP)[..., :S.shape[-1]]))


def test_sc_improves_with_iterations_and_momentum_beats_none():
    x = harmonic_chirp()
    S = stft_magnitude(x, N_FFT, HOP)  # the known target magnitude
    kw = dict(n_fft=N_FFT, hop_length=HOP, length=x.shape[-1])
    sc = {n: _sc(griffin_lim(S, n_iter=n, momentum=0.99, **kw), S) for n in (0, 4, 16, 64)}
    assert sc[0] > sc[4] > sc[16] > sc[64]
    assert sc[64] < 0.5 * sc[4]
    for n in (16, 32):
        plain = _sc(griffin_lim(S, n_iter=n, momentum=0.0, **kw), S)
        fast = _sc(griffin_lim(S, n_iter=n, momentum=0.99, **kw), S)
        assert fast < 0.8 * plain, (n, fast, plain)


def test_pseudo_inverse_is_exact_in_the_row_space():
    fb = MEL.filterbank(dtype=torch.float64)
    M = torch.rand(2, 64, 7, dtype=torch.float64) + 0.1
    X = torch.linalg.pinv(fb) @ M  # minimum-norm solution; fb X = M exactly (fb has full row rank)
    assert torch.allclose(fb @ X, M, atol=1e-8)
    X_ours = mel_to_linear(M.float(), MEL, nnls_iters=0)
    assert (X_ours >= 0).all()
    assert torch.allclose(X_ours.double(), X.clamp_min(0), atol=1e-4)


def test_nnls_refinement_approaches_scipy_nnls():
    from scipy.optimize import nnls

    x = harmonic_chirp(0.2)
    M = MEL.power_mel(x)[..., 5:8]  # three frames of a real mel
    fb = MEL.filterbank(dtype=torch.float64).numpy()
    clamp = mel_to_linear(M, MEL, nnls_iters=0)
    refined = mel_to_linear(M, MEL, nnls_iters=500)
    assert (refined >= 0).all()
    for f in range(3):
        m = M[0, :, f].double().numpy()
        _, best = nnls(fb, m, maxiter=5000)
        r_clamp = np.linalg.norm(fb @ clamp[0, :, f].double().numpy() - m)
        r_ref = np.linalg.norm(fb @ refined[0, :, f].double().numpy() - m)
        assert r_ref <= r_clamp + 1e-9
        assert r_ref <= 1.5 * best + 1e-3 * np.linalg.norm(m), (r_ref, best, r_clamp)


def test_power2_contract_takes_square_root():
    mel2 = MelSpec(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, n_mels=64, power=2.0)
    M = torch.rand(1, 64, 3) + 0.5
    X1 = mel_to_linear(M, MEL)
    X2 = mel_to_linear(M, mel2)
    assert torch.allclose(X2, X1.sqrt(), atol=1e-6)


def test_vocoder_resynthesis_mel_error_falls_with_iterations():
    x = harmonic_chirp()
    mel = MEL(x)
    errs = []
    for n in (0, 8, 32):
        y = GriffinLimVocoder(MEL, n_iter=n, nnls_iters=20)(mel)
        errs.append(float((MEL(y[:, 0])[..., :mel.shape[-1]] - mel).abs().mean()))
    assert errs[0] > errs[1] > errs[2]


def test_bad_settings_name_allowed_values():
    with pytest.raises(ValueError, match="allowed"):
        GriffinLimVocoder(MEL, init="ones")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        GriffinLimVocoder(MEL, momentum=1.5)
