"""audiodiff.objectives.Denoiser: every parameterisation, driven by its ideal network, gives the true x0."""
import math

import pytest
import torch
from torch import nn

from audiodiff import objectives, schedules
from audiodiff.objectives import Denoiser

PARAMS = ["eps", "v", "x0", "edm"]
SD = 0.5


class IdealNet(nn.Module):
    """The network that outputs exactly what its parameterisation asks for, knowing the true x0 and noise.

    Targets are written from the papers, not from Denoiser's scalings: eps -> the noise (Ho et al. 2020);
    v -> alpha * eps - sigma_vp * x0 (Salimans & Ho 2022); x0 -> x0; edm -> F = (x0 - c_skip x) / c_out
    with EDM's c_skip, c_out (Karras et al. 2022, eq. 7). It also checks the input it is fed.
    """

    def __init__(self, parameterization, x0, noise, delta=0.0):
        super().__init__()
        self.p, self.x0, self.noise, self.delta = parameterization, x0, noise, delta
        self.seen = []

    def forward(self, x_in, c_noise, **cond):
        self.seen.append(cond)
        shape = (-1,) + (1,) * (x_in.dim() - 1)
        sigma = (4 * c_noise.double()).exp().reshape(shape)  # c_noise = log(sigma) / 4
        x0, n = self.x0.double(), self.noise.double()
        if self.p in ("eps", "v"):
            alpha, sigma_vp = 1 / (1 + sigma ** 2).sqrt(), sigma / (1 + sigma ** 2).sqrt()
            # the VP-diffused sample sqrt(abar) x0 + sqrt(1 - abar) eps
            torch.testing.assert_close(x_in.double(), alpha * x0 + sigma_vp * n, rtol=1e-5, atol=1e-5)
            out = n if self.p == "eps" else alpha * n - sigma_vp * x0
        else:
            torch.testing.assert_close(x_in.double(), (x0 + sigma * n) / (sigma ** 2 + SD ** 2).sqrt(),
                                       rtol=1e-5, atol=1e-5)
            if self.p == "x0":
                out = x0
            else:
                c_skip = SD ** 2 / (sigma ** 2 + SD ** 2)
                c_out = sigma * SD / (sigma ** 2 + SD ** 2).sqrt()
                out = (x0 - c_skip * (x0 + sigma * n)) / c_out
        return (out + self.delta).to(x_in.dtype)


def _data(shape=(4, 2, 64)):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(shape, generator=g) * 0.4
    noise = torch.randn(shape, generator=g)
    sigma = torch.tensor([0.01, 0.3, 2.0, 40.0])[: shape[0]]
    return x0, noise, sigma


def _bc(v, x):
    return v.reshape(-1, *([1] * (x.dim() - 1)))


@pytest.mark.parametrize("shape", [(4, 2, 64), (4, 1, 8, 16)])
@pytest.mark.parametrize("p", PARAMS)
def test_ideal_network_gives_true_x0_and_zero_loss(p, shape):
    x0, noise, sigma = _data(shape)
    net = IdealNet(p, x0, noise)
    den = Denoiser(net, p, sigma_data=SD)
    x = x0 + _bc(sigma, x0) * noise
    out = den(x, sigma)
    assert out.shape == x0.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, x0, rtol=1e-4, atol=2e-4)
    assert den.loss(x0, sigma, noise).item() < 1e-8
    per_item = den.loss(x0, sigma, noise, reduce=False)
    assert per_item.shape == (shape[0],) and float(per_item.max()) < 1e-8


@pytest.mark.parametrize("p", PARAMS)
def test_wrong_network_has_positive_loss_equal_to_its_error(p):
    """With F = F_ideal + delta the loss is exactly delta^2 and D moves by c_out * delta."""
    x0, noise, sigma = _data()
    delta = 0.1
    den = Denoiser(IdealNet(p, x0, noise, delta=delta), p, sigma_data=SD)
    loss = den.loss(x0, sigma, noise)
    assert loss.item() == pytest.approx(delta ** 2, rel=1e-3)
    s = sigma.double()
    c_out = {"eps": -s, "v": -s / (1 + s ** 2).sqrt(), "x0": torch.ones_like(s),
             "edm": s * SD / (s ** 2 + SD ** 2).sqrt()}[p]
    x = x0 + _bc(sigma, x0) * noise
    torch.testing.assert_close(den(x, sigma).double() - x0.double(), _bc(c_out, x0) * delta * torch.ones_like(x0.double()),
                               rtol=1e-3, atol=2e-4)


def test_generic_ideal_network_all_parameterisations_agree():
    """A net that inverts any preconditioning, F = (x0 - c_skip x) / c_out, makes all four give the same x0."""
    x0, noise, sigma = _data()
    x = x0 + _bc(sigma, x0) * noise
    for p in PARAMS:
        c_skip, c_out, c_in, _ = Denoiser(nn.Identity(), p, sigma_data=SD).scalings(sigma)

        def net(x_in, c_noise, c_skip=c_skip, c_out=c_out, c_in=c_in):
            return (x0 - _bc(c_skip, x0) * x_in / _bc(c_in, x0)) / _bc(c_out, x0)

        torch.testing.assert_close(Denoiser(net, p, sigma_data=SD)(x, sigma), x0, rtol=1e-4, atol=2e-4)


def test_targets_are_noise_and_v():
    """The loss of a net returning the noise is 0 for eps only; a net returning v is 0 for v only."""
    x0, noise, sigma = _data()
    s = _bc(sigma, x0)
    v = noise / (1 + s ** 2).sqrt() - s / (1 + s ** 2).sqrt() * x0
    for target, right in [(noise, "eps"), (v, "v"), (x0, "x0")]:
        for p in PARAMS:
            loss = Denoiser(lambda x_in, c, t=target: t, p, sigma_data=SD).loss(x0, sigma, noise).item()
            assert (loss < 1e-8) == (p == right), (p, right, loss)


def test_network_gets_conditions_and_c_noise():
    x0, noise, sigma = _data()
    net = IdealNet("edm", x0, noise)
    labels = torch.tensor([1, 2, 3, 4])
    Denoiser(net, "edm", SD)(x0 + _bc(sigma, x0) * noise, sigma, labels=labels)
    assert net.seen[-1]["labels"] is labels
    # scalar sigma is broadcast over the batch
    den = Denoiser(IdealNet("eps", x0, noise), "eps")
    torch.testing.assert_close(den(x0 + 0.7 * noise, 0.7), x0, rtol=1e-4, atol=2e-4)
    with pytest.raises(ValueError, match=r"sigma must be a scalar or shaped \(B,\) = \(4,\)"):
        den(x0, torch.ones(3))


# ----------------------------------------------------------------------------- training noise levels
def test_lognormal_sigma_distribution():
    n = 40000
    den = Denoiser(nn.Identity(), "edm", p_mean=-0.5, p_std=0.8)
    g = torch.Generator().manual_seed(3)
    log_s = den.sample_sigma(n, generator=g).double().log()
    # mean of N draws has std p_std / sqrt(N); the sample std has std ~ p_std / sqrt(2N); allow 5 of each.
    assert abs(log_s.mean().item() - (-0.5)) < 5 * 0.8 / math.sqrt(n)
    assert abs(log_s.std().item() - 0.8) < 5 * 0.8 / math.sqrt(2 * n)
    again = den.sample_sigma(n, generator=torch.Generator().manual_seed(3)).double().log()
    torch.testing.assert_close(again, log_s)


@pytest.mark.parametrize("p,dist,betas", [("eps", "vp_linear", schedules.betas_linear),
                                          ("v", "vp_cosine", schedules.betas_cosine)])
def test_vp_sigmas_are_training_timesteps(p, dist, betas):
    T, n = 20, 20000
    den = Denoiser(nn.Identity(), p, num_train_steps=T)
    assert den.noise_dist == dist  # the default for eps / v
    train = schedules.sigmas_from_betas(betas(T)).float()
    torch.testing.assert_close(den.train_sigmas, train)
    s = den.sample_sigma(n, generator=torch.Generator().manual_seed(0))
    idx = (s[:, None] == train[None]).float().argmax(1)
    assert bool((s[:, None] == train[None]).any(1).all())  # every draw is a training sigma
    counts = torch.bincount(idx, minlength=T).double()
    # uniform over T steps: each count ~ Binomial(n, 1/T), std sqrt(n (1/T)(1 - 1/T)) ~ 31; allow 5 std.
    assert float((counts - n / T).abs().max()) < 5 * math.sqrt(n / T * (1 - 1 / T))


def test_loss_draws_sigma_and_noise_reproducibly():
    x0 = torch.randn(8, 1, 32)
    conv = nn.Conv1d(1, 1, 3, padding=1)
    den = Denoiser(lambda x, c: conv(x), "edm")
    a = den.loss(x0, generator=torch.Generator().manual_seed(5))
    b = den.loss(x0, generator=torch.Generator().manual_seed(5))
    assert a.item() == b.item() and a.item() > 0
    with pytest.raises(ValueError, match="sigma > 0"):
        den.loss(x0, torch.zeros(8))


def test_cond_drop_in_training_only():
    x0, noise, sigma = _data((64, 1, 8))
    sigma = torch.full((64,), 0.5)
    net = IdealNet("edm", x0, noise)
    den = Denoiser(net, "edm", SD, cond_drop_prob=0.5)
    den.train()
    den.loss(x0, sigma, noise, generator=torch.Generator().manual_seed(0), labels=torch.zeros(64, dtype=torch.long))
    drop = net.seen[-1]["drop"]
    assert drop.dtype == torch.bool and drop.shape == (64,) and 16 < int(drop.sum()) < 48
    den.eval()
    den.loss(x0, sigma, noise, labels=torch.zeros(64, dtype=torch.long))
    assert "drop" not in net.seen[-1]


def test_bad_settings_raise_naming_allowed():
    with pytest.raises(ValueError, match=r"allowed: \('eps', 'v', 'x0', 'edm'\)"):
        Denoiser(nn.Identity(), "score")
    with pytest.raises(ValueError, match=r"noise_dist 'uniform'; allowed: \('lognormal', 'vp_linear', 'vp_cosine'\)"):
        Denoiser(nn.Identity(), "edm", noise_dist="uniform")
    with pytest.raises(ValueError, match="sigma_data must be a number > 0 or auto; got 0"):
        Denoiser(nn.Identity(), "edm", sigma_data=0)
    with pytest.raises(ValueError, match="sigma_data='auto' must be resolved"):
        Denoiser(nn.Identity(), "edm", sigma_data="auto")
    with pytest.raises(ValueError, match=r"cond_drop_prob must be in \[0, 1\)"):
        Denoiser(nn.Identity(), "edm", cond_drop_prob=1.0)
    with pytest.raises(ValueError, match=r"unknown objective settings \['param'\]; allowed: .*parameterization"):
        objectives.build(nn.Identity(), {"param": "eps"})
    den = objectives.build(nn.Identity(), {"parameterization": "v", "sigma_data": 0.3})
    assert den.parameterization == "v" and den.sigma_data == 0.3 and den.noise_dist == "vp_cosine"
