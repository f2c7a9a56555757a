"""The denoiser seam is extended from outside the package: a flow-matching parameterisation and a logit-normal noise
distribution are two registry entries made in this file, then trained and sampled through the unchanged seam.

Rectified flow / flow matching (Liu et al. 2023; Lipman et al. 2023) interpolates `z_t = (1 - t) x0 + t noise`
and learns the velocity `noise - x0`. On the seam's variance-exploding input `x = x0 + sigma * noise` that is
`t = sigma / (1 + sigma)`, `z_t = x / (1 + sigma)`, so EDM preconditioning (Karras et al. 2022) with
`c_in = c_skip = 1 / (1 + sigma)` and `c_out = -sigma / (1 + sigma)` makes the network predict the velocity.
Training draws `t` logit-normal (Esser et al. 2024, SD3); the split into preconditioning and training objective is
Karras et al. 2024's (EDM2). Checked against closed forms: for data N(0, s^2) the ideal denoiser is
`x * s^2 / (s^2 + sigma^2)` and the probability-flow ODE maps `x(sigma_max)` to
`x(sigma_max) * s / sqrt(s^2 + sigma_max^2)`.
"""
import math

import pytest
import torch
from torch import nn

from audiodiff import objectives, samplers, schedules
from audiodiff.objectives import NoiseDistribution, Parameterization, TrainingObjective, precond

S = 0.5  # the data's standard deviation


def flow_scalings(sigma, sigma_data):
    """Rectified flow as EDM preconditioning: `(c_skip, c_out, c_in)`; sigma_data is not used."""
    c = 1 / (1 + sigma)
    return c, -sigma * c, c


def logit_normal(obj, batch, device, generator):
    """`logit(t) ~ N(p_mean, p_std^2)` for `t = sigma / (1 + sigma)` (SD3's logit-normal), returned as sigma."""
    gen_device = generator.device if generator is not None else device
    u = torch.randn(batch, generator=generator, device=gen_device) * obj.p_std + obj.p_mean
    t = torch.sigmoid(u.double()).clamp(1e-7, 1 - 1e-7)
    return (t / (1 - t)).float().to(device)


@pytest.fixture
def flow(monkeypatch):
    """Register `rf` and `logit_normal` for one test (and take them out after it): no edit outside this file."""
    monkeypatch.setitem(objectives.PARAMETERIZATIONS, "rf",
                        Parameterization(flow_scalings, noise_dist="logit_normal", predicts="the velocity noise - x0"))
    monkeypatch.setitem(objectives.NOISE_DISTRIBUTIONS, "logit_normal", NoiseDistribution(logit_normal))
    return {"parameterization": "rf", "p_mean": 0.0, "p_std": 1.0}


def _bc(v, x):
    return v.reshape(-1, *([1] * (x.dim() - 1)))


def _sigma_of(c_noise):
    return (4 * c_noise.double()).exp()  # c_noise = log(sigma) / 4


def test_registered_entries_are_what_the_seam_builds(flow):
    assert "rf" in objectives.PARAMETERIZATIONS and "logit_normal" in objectives.NOISE_DISTRIBUTIONS
    den = objectives.build(nn.Identity(), flow)
    obj = objectives.build_objective(flow)
    assert den.parameterization == "rf" and obj.noise_dist == "logit_normal"  # the entry's default distribution
    # logit(t) = log(sigma): the logit-normal in t is the log-normal in sigma, draw for draw
    got = obj.sample_sigma(20000, generator=torch.Generator().manual_seed(0))
    lognormal = TrainingObjective("lognormal", p_mean=0.0, p_std=1.0)
    same = lognormal.sample_sigma(20000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got, same, rtol=1e-5, atol=0)
    t = got.double() / (1 + got.double())
    assert abs(t.mean().item() - 0.5) < 0.01 and bool(((t > 0) & (t < 1)).all())


def test_flow_network_predicts_the_velocity_and_gives_x0(flow):
    """A network returning the true velocity `noise - x0` (fed the flow's `z_t`) gives D = x0 and loss 0."""
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(5, 2, 32, generator=g) * S, torch.randn(5, 2, 32, generator=g)
    sigma = torch.tensor([0.01, 0.3, 1.0, 5.0, 80.0])

    def velocity(z, c_noise):
        t = _bc(_sigma_of(c_noise) / (1 + _sigma_of(c_noise)), z)
        torch.testing.assert_close(z.double(), (1 - t) * x0.double() + t * noise.double(), rtol=1e-5, atol=1e-5)
        return noise - x0

    den = precond.Denoiser(velocity, "rf")
    x = x0 + _bc(sigma, x0) * noise
    torch.testing.assert_close(den(x, sigma), x0, rtol=1e-4, atol=1e-4)
    obj = objectives.build_objective(flow)
    assert obj.loss(den, x0, sigma, noise).item() < 1e-9
    drawn = obj.loss(den, x0, noise=noise, generator=torch.Generator().manual_seed(2)).item()  # its own noise levels
    assert drawn < 1e-9
    # the builders reach the same entries
    assert obj.loss(objectives.build(velocity, flow), x0, sigma, noise).item() < 1e-9


def _gaussian_pair(n=4096):
    """x0 and noise with exact second moments: mean(x0^2) = S^2, mean(noise^2) = 1, mean(x0 * noise) = 0."""
    g = torch.Generator().manual_seed(3)
    x0, n_ = torch.randn(n, dtype=torch.float64, generator=g), torch.randn(n, dtype=torch.float64, generator=g)
    n_ = n_ - (n_ @ x0) / (x0 @ x0) * x0
    x0, n_ = x0 * S / x0.pow(2).mean().sqrt(), n_ / n_.pow(2).mean().sqrt()
    return x0.reshape(1, 1, n), n_.reshape(1, 1, n)


@pytest.mark.parametrize("gamma", [None, 5.0])
@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0, 4.0])
def test_the_loss_minimiser_is_the_ideal_gaussian_denoiser(flow, sigma, gamma):
    """With a linear network `F = a * x_in` the loss is a parabola in `a`; its minimiser makes
    `D(x) = x * S^2 / (S^2 + sigma^2)`, the ideal denoiser of N(0, S^2) data (at one noise level the Min-SNR weight
    is a constant and moves nothing)."""
    x0, noise = _gaussian_pair()
    obj = objectives.build_objective({**flow, "min_snr_gamma": gamma})
    s = torch.tensor([sigma])

    def loss(a):
        den = precond.Denoiser(lambda x_in, c_noise: a * x_in, "rf")
        return obj.loss(den, x0.float(), s, noise.float()).double().item()

    l0, lp, lm = loss(0.0), loss(1.0), loss(-1.0)
    curv, slope = (lp + lm) / 2 - l0, (lm - lp) / 4  # loss(a) = curv a^2 - 2 slope a + l0
    a = slope / curv
    c_skip, c_out, c_in, _ = precond.Denoiser(nn.Identity(), "rf").scalings(s.double())
    k = (c_skip + c_out * a * c_in).item()
    assert k == pytest.approx(S ** 2 / (S ** 2 + sigma ** 2), abs=2e-4)


class IdealFlow(nn.Module):
    """The exact velocity for N(0, S^2) data, written from the flow's side:
    x0_hat = z (1 + sigma) S^2 / (S^2 + sigma^2), v = (z - x0_hat) / t."""

    def forward(self, z, c_noise, **cond):
        sigma = _bc(_sigma_of(c_noise), z)
        t = sigma / (1 + sigma)
        x0_hat = z.double() * (1 + sigma) * S ** 2 / (S ** 2 + sigma ** 2)
        return ((z.double() - x0_hat) / t).to(z.dtype)


@pytest.mark.parametrize("method", ["heun", "dpmpp_2m", "euler"])
def test_samplers_solve_the_flow_ode_through_the_seam(flow, method):
    """The flow-parameterised ideal network samples exactly as the closed-form denoiser does (the sampler never sees
    the parameterisation), and both land on the ODE's closed-form end point within the solver's own error."""
    den = objectives.build(IdealFlow(), flow).eval()
    sigmas = schedules.karras(64, 0.002, 80.0)
    noise = torch.randn(16, 1, 64, generator=torch.Generator().manual_seed(4))
    out = samplers.sample(den, noise, sigmas, method=method, progress=False)
    plain = samplers.sample(lambda x, sigma: x * _bc(S ** 2 / (S ** 2 + sigma ** 2), x), noise, sigmas,
                            method=method, progress=False)
    torch.testing.assert_close(out, plain, rtol=1e-4, atol=1e-5)
    want = noise * 80.0 * S / math.sqrt(S ** 2 + 80.0 ** 2)
    # measured discretisation error at 64 Karras steps: 0.37% (heun), 0.38% (dpmpp_2m), 4.4% (euler)
    tol = {"heun": 1e-2, "dpmpp_2m": 1e-2, "euler": 6e-2}[method]
    assert ((out - want).abs().max() / want.abs().max()).item() < tol


class TinyFlowNet(nn.Module):
    """F = a(c_noise) * x_in with `a` a small MLP of the noise level: can express the ideal Gaussian denoiser."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.mlp = nn.Sequential(nn.Linear(1, 32), nn.SiLU(), nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, 1))

    def forward(self, x_in, c_noise, **cond):
        return self.mlp(c_noise[:, None]).reshape(-1, 1, 1) * x_in


def test_a_tiny_network_trains_to_the_ideal_denoiser_and_samples(flow):
    net = TinyFlowNet()
    den, obj = objectives.build(net, flow), objectives.build_objective(flow)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(5)
    for _ in range(400):
        x0 = torch.randn(256, 1, 8, generator=g) * S
        loss = obj.loss(den, x0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    den.eval()
    with torch.no_grad():
        # on the same held-out draws its loss is within 5% of the ideal network's (the velocity loss never reaches 0)
        ideal = objectives.build(IdealFlow(), flow)
        x0 = torch.randn(4096, 1, 8, generator=g) * S
        mine, best = (obj.loss(d, x0, generator=torch.Generator().manual_seed(6)).item() for d in (den, ideal))
        assert best * 0.99 < mine < best * 1.05, (mine, best)
        for sigma in (0.2, 0.5, 1.0, 2.0):
            k = den(torch.ones(1, 1, 1), sigma).item()
            assert k == pytest.approx(S ** 2 / (S ** 2 + sigma ** 2), abs=0.05), sigma
        out = samplers.sample(den, torch.randn(512, 1, 8, generator=g), schedules.karras(32, 0.002, 80.0),
                              method="heun", progress=False)
    assert out.std().item() == pytest.approx(S, rel=0.15)
