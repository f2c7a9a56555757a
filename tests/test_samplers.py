"""audiodiff.samplers against data whose exact denoiser is known in closed form.

Data: a 1-D Gaussian mixture sum_k w_k N(mu_k, s_k^2). Its exact denoiser (the posterior mean) at noise
level sigma is E[x0 | x] = sum_k r_k(x) (mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k)), with responsibilities
r_k(x) proportional to w_k N(x; mu_k, s_k^2 + sigma^2). A perfect sampler driven by it reproduces the mixture.
For a single Gaussian the probability-flow ODE has the closed-form solution
x(0) = mu + (x_T - mu) * s / sqrt(s^2 + sigma_max^2), which measures each solver's order.
"""
import math

import numpy as np
import pytest
import torch

from audiodiff import samplers, schedules
from audiodiff.samplers import SamplerError
from audiodiff.schedules import ScheduleError

W, MU, S = [0.3, 0.7], [-2.0, 1.5], [0.3, 0.5]
THRESHOLD = -0.8  # splits the two components (4 std from each mean)
N = 20000


class Mixture:
    """Exact denoiser of the 1-D Gaussian mixture, for x shaped `(B, 1)` or `(B, D)` (D independent coordinates)."""

    def __init__(self, w=W, mu=MU, s=S):
        self.w, self.mu, self.s = torch.tensor(w), torch.tensor(mu), torch.tensor(s)
        self.calls = []

    def __call__(self, x, sigma, **cond):
        self.calls.append(x.shape[0])
        assert sigma.shape == (x.shape[0],)
        w, mu, s = (t.to(x.dtype) for t in (self.w, self.mu, self.s))
        xs = x.unsqueeze(-1)                                              # (B, D, 1)
        var = s ** 2 + sigma.to(x.dtype).reshape(-1, *([1] * x.dim())) ** 2  # (B, 1, K)
        dx = xs - mu
        logp = w.log() - 0.5 * var.log() - 0.5 * dx * dx / var
        p = (logp - logp.amax(-1, keepdim=True)).exp()
        return ((p * (mu + s ** 2 / var * dx)).sum(-1) / p.sum(-1)).to(x.dtype)


def _truth():
    """Exact weight, mean and variance of each side of THRESHOLD under the mixture (numerical integration)."""
    grid = np.linspace(-8, 8, 400001)
    dens = sum(w / math.sqrt(2 * math.pi * s * s) * np.exp(-0.5 * (grid - m) ** 2 / (s * s)) for w, m, s in zip(W, MU, S))
    out = []
    for side in (grid <= THRESHOLD, grid > THRESHOLD):
        p = dens * side
        mass = np.trapezoid(p, grid)
        mean = np.trapezoid(p * grid, grid) / mass
        out.append((mass, mean, np.trapezoid(p * (grid - mean) ** 2, grid) / mass))
    return out


TRUTH = _truth()


def _check_mixture(x, label):
    """Weight, mean and variance of each component within 5 standard errors for N independent samples.

    Standard errors: weight sqrt(w (1 - w) / N); mean s_k / sqrt(N w_k); variance s_k^2 sqrt(2 / (N w_k))
    (Gaussian components). 5 standard errors bound a fluctuation to p < 1e-6 per statistic; the step counts
    below keep each sampler's discretisation bias under about one standard error (measured: see report).
    """
    x = x.flatten().double()
    assert bool(torch.isfinite(x).all()), label
    for side, (w, mean, var) in zip((x <= THRESHOLD, x > THRESHOLD), TRUTH):
        got_w = side.double().mean().item()
        xs = x[side]
        n_k = N * w
        assert abs(got_w - w) < 5 * math.sqrt(w * (1 - w) / N), (label, "weight", got_w, w)
        assert abs(xs.mean().item() - mean) < 5 * math.sqrt(var / n_k), (label, "mean", xs.mean().item(), mean)
        assert abs(xs.var().item() - var) < 5 * var * math.sqrt(2 / n_k), (label, "var", xs.var().item(), var)


def _noise(n=N, d=1, seed=0, dtype=torch.float32):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------- distributions
@pytest.mark.parametrize("method,steps", [("euler", 200), ("heun", 40), ("dpmpp_2m", 50)])
def test_deterministic_samplers_reproduce_mixture(method, steps):
    x = samplers.sample(Mixture(), _noise(), schedules.karras(steps), method, progress=False)
    _check_mixture(x, method)


@pytest.mark.parametrize("method,steps,options", [
    ("ddpm", 1000, {}),
    ("dpmpp_2m_sde", 200, {}),
    ("heun", 100, {"s_churn": 20.0}),
])
def test_stochastic_samplers_reproduce_mixture(method, steps, options):
    x = samplers.sample(Mixture(), _noise(), schedules.karras(steps), method, options=options,
                        generator=torch.Generator().manual_seed(1), progress=False)
    _check_mixture(x, method)


def test_mixture_check_can_fail():
    """Guard: too few steps, or the wrong noise scale, is caught by the same check."""
    with pytest.raises(AssertionError):
        _check_mixture(samplers.sample(Mixture(), _noise(), schedules.karras(100), "ddpm",
                                       generator=torch.Generator().manual_seed(1), progress=False), "ddpm-100")
    with pytest.raises(AssertionError):
        _check_mixture(samplers.sample(Mixture(), _noise(), schedules.karras(50), "heun", progress=False,
                                       options={"s_churn": 20.0, "s_noise": 1.2},
                                       generator=torch.Generator().manual_seed(1)), "heun-noisy")


# ----------------------------------------------------------------------------- exact ancestral transition law
def _ancestral_law(sigmas, mu, s, eta, s_noise=1.0):
    """Mean and variance of DDIM(eta) sampling of N(mu, s^2) data, propagated exactly step by step.

    One step maps x to D + sigma_down (x - D) / sigma + sigma_up z with D = mu + s^2 / (s^2 + sigma^2) (x - mu):
    x' - mu = k (x - mu) + s_noise sigma_up z, k = (s^2 + sigma_down sigma) / (s^2 + sigma^2)
    (Song et al. 2021, eq. 12, in the variance-exploding view).
    """
    m, v = 0.0, float(sigmas[0]) ** 2  # x_T = sigma_max * unit noise
    for a, b in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        up = eta * b * math.sqrt(1 - b * b / (a * a)) if b > 0 else 0.0
        down = math.sqrt(b * b - up * up)
        k = (s * s + down * a) / (s * s + a * a)
        m, v = mu + k * (m - mu), k * k * v + (s_noise * up) ** 2
    return m, v


@pytest.mark.parametrize("method,eta,s_noise", [("ddpm", 1.0, 1.0), ("ddim", 0.5, 1.0), ("ddpm", 1.0, 0.7)])
def test_ancestral_step_has_the_exact_ddim_law(method, eta, s_noise):
    """With few steps DDPM/DDIM is biased; its output law is still known exactly for Gaussian data."""
    mu, s = 0.4, 0.5
    sig = schedules.karras(12, 0.01, 20.0)
    m, v = _ancestral_law(sig.double(), mu, s, eta, s_noise)
    assert abs(v - s * s) > 0.1 * s * s  # 12 steps are visibly biased, so the check below means something
    opts = {"s_noise": s_noise} if method == "ddpm" else {"eta": eta, "s_noise": s_noise}
    x = samplers.sample(Mixture([1.0], [mu], [s]), _noise(), sig, method, options=opts,
                        generator=torch.Generator().manual_seed(2), progress=False).double()
    assert abs(x.mean().item() - m) < 5 * math.sqrt(v / N)
    assert abs(x.var().item() - v) < 5 * v * math.sqrt(2 / N)


# ----------------------------------------------------------------------------- orders of accuracy
def _ode_errors(method, steps_list, mu=0.3, s=0.5, sigma_min=0.002, sigma_max=80.0):
    noise = torch.linspace(-2.5, 2.5, 11, dtype=torch.float64)[:, None]
    exact = mu + (noise * sigma_max - mu) * s / math.sqrt(s * s + sigma_max ** 2)
    errs = []
    for n in steps_list:
        x = samplers.sample(Mixture([1.0], [mu], [s]), noise, schedules.karras(n, sigma_min, sigma_max).double(),
                            method, progress=False)
        assert x.dtype == torch.float64
        errs.append((x - exact).abs().max().item())
    return errs


def test_euler_is_first_order():
    e = _ode_errors("euler", [16, 32, 64])
    for a, b in zip(e, e[1:]):
        assert 1.7 < a / b < 2.3, e


@pytest.mark.parametrize("method", ["heun", "dpmpp_2m"])
def test_second_order_methods(method):
    e = _ode_errors(method, [16, 32, 64])
    for a, b in zip(e, e[1:]):
        assert a / b > 3.0, e
    assert e[-1] < 1e-2


def test_x_start_follows_the_ode_from_there():
    """SDEdit start: x = x_start + sigma_0 * noise, then the ODE; closed form for Gaussian data."""
    mu, s, s0 = 0.3, 0.5, 2.0
    x_start = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    noise = torch.linspace(1, -1, 7, dtype=torch.float64)[:, None]
    x = samplers.sample(Mixture([1.0], [mu], [s]), noise, schedules.karras(64, 0.002, s0).double(), "heun",
                        x_start=x_start, progress=False)
    exact = mu + (x_start + s0 * noise - mu) * s / math.sqrt(s * s + s0 * s0)
    torch.testing.assert_close(x, exact, rtol=0, atol=1e-3)  # heun at 64 steps: error ~2e-4
    without = samplers.sample(Mixture([1.0], [mu], [s]), noise, schedules.karras(64, 0.002, s0).double(), "heun",
                              progress=False)
    assert (without - exact).abs().max() > 0.1
    with pytest.raises(SamplerError, match="x_start"):
        samplers.sample(Mixture(), noise, schedules.karras(4), "euler", x_start=x_start[:3], progress=False)


# ----------------------------------------------------------------------------- identities between samplers
def test_ddim_eta0_equals_euler_and_ddpm_equals_ddim_eta1():
    noise, sig = _noise(256, 3), schedules.karras(15)
    e = samplers.sample(Mixture(), noise, sig, "euler", progress=False)
    d = samplers.sample(Mixture(), noise, sig, "ddim", progress=False, options={"eta": 0.0})
    assert torch.equal(e, d)
    a = samplers.sample(Mixture(), noise, sig, "ddpm", generator=torch.Generator().manual_seed(4), progress=False)
    b = samplers.sample(Mixture(), noise, sig, "ddim", generator=torch.Generator().manual_seed(4), progress=False,
                        options={"eta": 1.0})
    assert torch.equal(a, b) and not torch.equal(a, e)


def test_dpmpp_2m_sde_with_eta0_is_dpmpp_2m():
    noise, sig = _noise(64, 2, dtype=torch.float64), schedules.karras(12).double()
    a = samplers.sample(Mixture(), noise, sig, "dpmpp_2m", progress=False)
    b = samplers.sample(Mixture(), noise, sig, "dpmpp_2m_sde", progress=False, options={"eta": 0.0})
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_heun_without_churn_is_deterministic_and_final_step_is_denoised():
    seen = []
    noise, sig = _noise(8, 2), schedules.karras(6)
    x = samplers.sample(Mixture(), noise, sig, "heun", progress=False, callback=seen.append)
    assert [c["i"] for c in seen] == list(range(6))
    assert torch.equal(x, seen[-1]["denoised"])  # the step to sigma = 0 returns the x0 estimate exactly
    assert seen[0]["sigma"].item() == pytest.approx(80.0) and seen[-1]["sigma_next"].item() == 0.0
    assert torch.equal(x, samplers.sample(Mixture(), noise, sig, "heun", progress=False))


# ----------------------------------------------------------------------------- per-item reproducibility
@pytest.mark.parametrize("method,options", [("ddpm", {}), ("dpmpp_2m_sde", {}), ("heun", {"s_churn": 10.0}),
                                            ("ddim", {"eta": 0.5})])
def test_generator_list_makes_items_independent_of_batch(method, options):
    sig = schedules.karras(10)
    seeds = [11, 12, 13, 14]

    def run(idx):
        gens = [torch.Generator().manual_seed(seeds[i]) for i in idx]
        noise = samplers.randn((len(idx), 5), "cpu", generator=gens)
        return samplers.sample(Mixture(), noise, sig, method, generator=gens, options=options, progress=False)

    batch = run([0, 1, 2, 3])
    for k in range(4):
        torch.testing.assert_close(run([k])[0], batch[k], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(run([2, 0])[1], batch[0], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(batch[0], batch[1])
    with pytest.raises(SamplerError, match="3 generators for a batch of 4"):
        samplers.randn((4, 5), "cpu", generator=[torch.Generator() for _ in range(3)])


# ----------------------------------------------------------------------------- errors
def test_unknown_sampler_lists_allowed():
    with pytest.raises(SamplerError, match=r"unknown sampler 'dpm'; allowed: \['ddim', 'ddpm', 'dpmpp_2m', "
                                           r"'dpmpp_2m_sde', 'euler', 'heun'\]"):
        samplers.sample(Mixture(), _noise(4), schedules.karras(5), "dpm")
    assert issubclass(SamplerError, ValueError)


@pytest.mark.parametrize("bad", [torch.tensor([1.0, 2.0, 0.0]), torch.tensor([2.0, 1.0]),
                                 torch.tensor([2.0, 2.0, 0.0])])
def test_bad_sigmas_raise(bad):
    with pytest.raises(ScheduleError, match="descending|end in 0"):
        samplers.sample(Mixture(), _noise(4), bad, "euler", progress=False)


def test_bad_options_raise():
    with pytest.raises(SamplerError, match=r"sampler 'euler' takes no option\(s\) \['eta'\]; allowed: \[\]"):
        samplers.sample(Mixture(), _noise(4), schedules.karras(5), "euler", options={"eta": 0.5})
    with pytest.raises(SamplerError, match=r"allowed: \['s_churn', 's_noise', 's_tmax', 's_tmin'\]"):
        samplers.sample(Mixture(), _noise(4), schedules.karras(5), "heun", options={"churn": 1})
    with pytest.raises(SamplerError, match=r"eta must be in \[0, 1\]"):
        samplers.sample(Mixture(), _noise(4), schedules.karras(5), "ddim", options={"eta": 2.0}, progress=False)
    assert samplers.sampler_options("ddim") == {"eta": 0.0, "s_noise": 1.0}
