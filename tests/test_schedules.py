"""audiodiff.schedules: shapes, endpoints and closed forms of every schedule; VP <-> VE conversions; errors."""
import math

import numpy as np
import pytest
import torch

from audiodiff import schedules as S
from audiodiff.schedules import ScheduleError

ALL = ["karras", "vp_linear", "vp_cosine", "exponential"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_descending_and_ending_in_zero(name, n):
    s = S.build(name, n)
    assert s.dim() == 1 and len(s) == n + 1 and s.dtype == torch.float32
    assert s[-1].item() == 0.0
    assert bool((s[:-1] > 0).all()) and bool((s[1:] < s[:-1]).all())
    S.check_sigmas(s)


def _f32(v: float) -> float:
    return float(np.float32(v))


@pytest.mark.parametrize("sigma_min,sigma_max,rho", [(0.002, 80.0, 7.0), (0.01, 3.0, 3.0), (0.0123, 17.3, 7.0)])
def test_karras_endpoints_and_closed_form(sigma_min, sigma_max, rho):
    n = 18
    s = S.karras(n, sigma_min, sigma_max, rho)
    assert s[0].item() == _f32(sigma_max) and s[-2].item() == _f32(sigma_min)  # exactly
    i = np.arange(n)
    ref = (sigma_max ** (1 / rho) + i / (n - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    np.testing.assert_allclose(s[:-1].double().numpy(), ref, rtol=1e-6)
    steps = np.diff(s[:-1].double().numpy() ** (1 / rho))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-4)  # evenly spaced in sigma^(1/rho)
    assert S.karras(1, sigma_min, sigma_max, rho).tolist() == [_f32(sigma_max), 0.0]


def test_exponential_endpoints_and_closed_form():
    s = S.exponential(12, 0.01, 50.0)
    assert s[0].item() == _f32(50.0) and s[-2].item() == _f32(0.01)
    np.testing.assert_allclose(s[:-1].double().numpy(), np.geomspace(50.0, 0.01, 12), rtol=1e-6)


def _abar_linear_numpy(T=1000, b0=1e-4, b1=0.02):
    betas = b0 + (b1 - b0) * np.arange(T) / (T - 1)
    return np.cumprod(1 - betas)


def test_vp_linear_closed_form():
    abar = _abar_linear_numpy()
    train = np.sqrt((1 - abar) / abar)
    np.testing.assert_allclose(S.sigmas_from_betas(S.betas_linear()).numpy(), train, rtol=1e-12)
    s = S.vp_linear(10)
    idx = np.round(np.linspace(999, 0, 10)).astype(int)
    np.testing.assert_allclose(s[:-1].double().numpy(), train[idx], rtol=1e-6)
    assert s[0].item() == pytest.approx(157.4, abs=0.1)       # sqrt((1 - abar_999) / abar_999)
    assert s[-2].item() == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)), rel=1e-6)
    full = S.vp_linear(1000)  # every training timestep, noisiest first
    np.testing.assert_allclose(full[:-1].double().numpy(), train[::-1], rtol=1e-6)


def test_vp_cosine_closed_form():
    T, off = 1000, 0.008
    t = np.arange(T + 1) / T
    f = np.cos((t + off) / (1 + off) * np.pi / 2) ** 2
    abar_closed = (f / f[0])[1:]
    abar = S.alpha_bar_from_betas(S.betas_cosine(T, off)).numpy()
    np.testing.assert_allclose(abar[:-1], abar_closed[:-1], rtol=1e-9)  # the last beta is clipped at 0.999
    assert S.betas_cosine(T, off)[-1].item() == pytest.approx(0.999)
    s = S.vp_cosine(20)
    idx = np.round(np.linspace(T - 1, 0, 20)).astype(int)
    np.testing.assert_allclose(s[:-1].double().numpy(), np.sqrt((1 - abar) / abar)[idx], rtol=1e-6)


@pytest.mark.parametrize("betas", [S.betas_linear(1000), S.betas_linear(50, 1e-3, 0.05), S.betas_cosine(200)])
def test_vp_conversions_round_trip(betas):
    abar = S.alpha_bar_from_betas(betas)
    assert bool((abar[1:] < abar[:-1]).all()) and 0 < abar[-1] < abar[0] < 1
    torch.testing.assert_close(S.betas_from_alpha_bar(abar), betas, rtol=1e-9, atol=1e-12)
    sig = S.sigmas_from_alpha_bar(abar)
    torch.testing.assert_close(S.alpha_bar_from_sigmas(sig), abar, rtol=1e-10, atol=0)
    torch.testing.assert_close(S.sigmas_from_betas(betas), sig)
    # closed forms: alpha_bar = 1 / (1 + sigma^2) and the running product of (1 - beta)
    np.testing.assert_allclose(sig.numpy() ** 2, (1 - abar.numpy()) / abar.numpy(), rtol=1e-12)
    np.testing.assert_allclose(abar.numpy(), np.cumprod(1 - betas.numpy()), rtol=1e-12)


def test_alpha_bar_from_sigmas_closed_form():
    sig = torch.tensor([0.0, 0.5, 1.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(S.alpha_bar_from_sigmas(sig), torch.tensor([1.0, 0.8, 0.5, 0.1], dtype=torch.float64))


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10"])
def test_bad_step_counts_raise(name, n):
    with pytest.raises(ScheduleError, match=r"n must be an integer >= 1"):
        S.build(name, n)


def test_numpy_integer_steps_accepted():
    assert len(S.karras(np.int64(5))) == 6


@pytest.mark.parametrize("name", ["karras", "exponential"])
@pytest.mark.parametrize("lo,hi", [(1.0, 1.0), (2.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (0.1, math.inf), (math.nan, 1.0)])
def test_bad_sigma_range_raises(name, lo, hi):
    with pytest.raises(ScheduleError, match="0 < sigma_min < sigma_max"):
        S.build(name, 10, sigma_min=lo, sigma_max=hi)


def test_other_bad_values_raise():
    with pytest.raises(ScheduleError, match="rho must be a positive"):
        S.karras(10, rho=0)
    with pytest.raises(ScheduleError, match=r"n=1001 .*allowed: 1 <= n <= 1000"):
        S.vp_linear(1001)
    with pytest.raises(ScheduleError, match=r"allowed: 1 <= n <= 100"):
        S.vp_cosine(101, num_train_steps=100)
    with pytest.raises(ScheduleError, match="0 < beta_start < beta_end < 1"):
        S.betas_linear(1000, 0.02, 1e-4)
    with pytest.raises(ScheduleError, match="num_train_steps must be an integer >= 1"):
        S.betas_cosine(0)
    with pytest.raises(ScheduleError, match="max_beta"):
        S.betas_cosine(100, max_beta=1.0)
    with pytest.raises(ScheduleError, match=r"unknown schedule 'linear'; allowed: \['exponential', 'karras', "
                                            r"'vp_cosine', 'vp_linear'\]"):
        S.build("linear", 10)
    assert issubclass(ScheduleError, ValueError)


@pytest.mark.parametrize("bad,match", [
    (torch.tensor([3.0, 2.0, 2.0, 0.0]), "strictly descending"),
    (torch.tensor([1.0, 2.0, 0.0]), "strictly descending"),
    (torch.tensor([3.0, 2.0, 1.0]), "must end in 0"),
    (torch.tensor([3.0, 2.0, 0.0, 0.0]), "strictly descending"),
    (torch.tensor([3.0, -1.0, 0.0]), "must end in 0|strictly descending"),
    (torch.tensor([0.0]), ">= 2 values"),
    (torch.tensor([[2.0, 0.0]]), "1-D"),
    ([2.0, 1.0, 0.0], "1-D tensor"),
    (torch.tensor([math.nan, 1.0, 0.0]), "NaN"),
])
def test_check_sigmas_rejects(bad, match):
    with pytest.raises(ScheduleError, match=match):
        S.check_sigmas(bad)
