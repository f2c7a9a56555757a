"""audiodiff.objectives: every parameterisation, driven by its ideal network, gives the true x0 (precond.Denoiser) and
zero loss (TrainingObjective); the two objects are built apart (Karras et al. 2024, EDM2)."""
import math

import pytest
import torch
from torch import nn

from audiodiff import objectives, samplers, schedules
from audiodiff.objectives import Denoiser, TrainingObjective, precond

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


def _pair(net, p="edm", sigma_data=0.5, **train):
    """The preconditioning and its training objective, apart: `(precond.Denoiser, TrainingObjective)`."""
    return precond.Denoiser(net, p, sigma_data), TrainingObjective(**train, parameterization=p)


@pytest.mark.parametrize("shape", [(4, 2, 64), (4, 1, 8, 16)])
@pytest.mark.parametrize("p", PARAMS)
def test_ideal_network_gives_true_x0_and_zero_loss(p, shape):
    x0, noise, sigma = _data(shape)
    net = IdealNet(p, x0, noise)
    den, obj = _pair(net, p, SD)
    x = x0 + _bc(sigma, x0) * noise
    out = den(x, sigma)
    assert out.shape == x0.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, x0, rtol=1e-4, atol=2e-4)
    assert obj.loss(den, x0, sigma, noise).item() < 1e-8
    per_item = obj.loss(den, x0, sigma, noise, reduce=False)
    assert per_item.shape == (shape[0],) and float(per_item.max()) < 1e-8


@pytest.mark.parametrize("p", PARAMS)
def test_wrong_network_has_positive_loss_equal_to_its_error(p):
    """With F = F_ideal + delta the loss is exactly delta^2 and D moves by c_out * delta."""
    x0, noise, sigma = _data()
    delta = 0.1
    den, obj = _pair(IdealNet(p, x0, noise, delta=delta), p, SD)
    loss = obj.loss(den, x0, sigma, noise)
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
            den, obj = _pair(lambda x_in, c, t=target: t, p, SD)
            loss = obj.loss(den, x0, sigma, noise).item()
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
    obj = TrainingObjective(p_mean=-0.5, p_std=0.8, parameterization="edm")
    g = torch.Generator().manual_seed(3)
    log_s = obj.sample_sigma(n, generator=g).double().log()
    # mean of N draws has std p_std / sqrt(N); the sample std has std ~ p_std / sqrt(2N); allow 5 of each.
    assert abs(log_s.mean().item() - (-0.5)) < 5 * 0.8 / math.sqrt(n)
    assert abs(log_s.std().item() - 0.8) < 5 * 0.8 / math.sqrt(2 * n)
    again = obj.sample_sigma(n, generator=torch.Generator().manual_seed(3)).double().log()
    torch.testing.assert_close(again, log_s)


@pytest.mark.parametrize("p,dist,betas", [("eps", "vp_linear", schedules.betas_linear),
                                          ("v", "vp_cosine", schedules.betas_cosine)])
def test_vp_sigmas_are_training_timesteps(p, dist, betas):
    T, n = 20, 20000
    obj = TrainingObjective(num_train_steps=T, parameterization=p)
    assert obj.noise_dist == dist  # the default for eps / v
    train = schedules.sigmas_from_betas(betas(T)).float()
    torch.testing.assert_close(obj.train_sigmas, train)
    s = obj.sample_sigma(n, generator=torch.Generator().manual_seed(0))
    idx = (s[:, None] == train[None]).float().argmax(1)
    assert bool((s[:, None] == train[None]).any(1).all())  # every draw is a training sigma
    counts = torch.bincount(idx, minlength=T).double()
    # uniform over T steps: each count ~ Binomial(n, 1/T), std sqrt(n (1/T)(1 - 1/T)) ~ 31; allow 5 std.
    assert float((counts - n / T).abs().max()) < 5 * math.sqrt(n / T * (1 - 1 / T))


def test_loss_draws_sigma_and_noise_reproducibly():
    x0 = torch.randn(8, 1, 32)
    conv = nn.Conv1d(1, 1, 3, padding=1)
    den, obj = _pair(lambda x, c: conv(x), "edm")
    a = obj.loss(den, x0, generator=torch.Generator().manual_seed(5))
    b = obj.loss(den, x0, generator=torch.Generator().manual_seed(5))
    assert a.item() == b.item() and a.item() > 0
    with pytest.raises(ValueError, match="sigma > 0"):
        obj.loss(den, x0, torch.zeros(8))


def test_cond_drop_in_training_only():
    x0, noise, sigma = _data((64, 1, 8))
    sigma = torch.full((64,), 0.5)
    net = IdealNet("edm", x0, noise)
    den, obj = _pair(net, "edm", SD, cond_drop_prob=0.5)
    den.train()
    obj.loss(den, x0, sigma, noise, generator=torch.Generator().manual_seed(0),
             labels=torch.zeros(64, dtype=torch.long))
    drop = net.seen[-1]["drop"]
    assert drop.dtype == torch.bool and drop.shape == (64,) and 16 < int(drop.sum()) < 48
    den.eval()
    obj.loss(den, x0, sigma, noise, labels=torch.zeros(64, dtype=torch.long))
    assert "drop" not in net.seen[-1]


def test_bad_settings_raise_naming_allowed():
    with pytest.raises(ValueError, match=r"allowed: \('eps', 'v', 'x0', 'edm', 'flow'\)"):
        Denoiser(nn.Identity(), "score")
    with pytest.raises(ValueError, match=r"noise_dist 'uniform'; allowed: \('lognormal', 'vp_linear', 'vp_cosine'\)"):
        objectives.build(nn.Identity(), {"parameterization": "edm", "noise_dist": "uniform"})
    with pytest.raises(ValueError, match="sigma_data must be a number > 0 or auto; got 0"):
        Denoiser(nn.Identity(), "edm", sigma_data=0)
    with pytest.raises(ValueError, match="sigma_data='auto' must be resolved"):
        Denoiser(nn.Identity(), "edm", sigma_data="auto")
    with pytest.raises(ValueError, match=r"cond_drop_prob must be in \[0, 1\)"):
        objectives.build(nn.Identity(), {"parameterization": "edm", "cond_drop_prob": 1.0})
    with pytest.raises(ValueError, match=r"unknown objective settings \['param'\]; allowed: .*parameterization"):
        objectives.build(nn.Identity(), {"param": "eps"})
    cfg = {"parameterization": "v", "sigma_data": 0.3}
    den = objectives.build(nn.Identity(), cfg)
    assert den.parameterization == "v" and den.sigma_data == 0.3
    assert objectives.build_objective(cfg).noise_dist == "vp_cosine"
    # build checks the whole section, training keys included, one error at a time in this order:
    # unknown key, parameterization, noise_dist, sigma_data, cond_drop_prob, min_snr_gamma
    bad = {"param": 1, "parameterization": "score", "noise_dist": "uniform", "sigma_data": "auto",
           "cond_drop_prob": 1.0, "min_snr_gamma": 0}
    for key, match in [("param", "unknown objective settings"), ("parameterization", "unknown parameterization"),
                       ("noise_dist", "unknown noise_dist"), ("sigma_data", "sigma_data='auto' must be resolved"),
                       ("cond_drop_prob", "cond_drop_prob must be in"), ("min_snr_gamma", "min_snr_gamma must be")]:
        with pytest.raises(ValueError, match=match):
            objectives.build(nn.Identity(), bad)
        del bad[key]
    objectives.build(nn.Identity(), bad)  # nothing left to refuse


# ----------------------------------------------------------------------------- the split (EDM2): precond + objective
class FrozenDenoiser(nn.Module):
    """Today's one-object Denoiser before the split, frozen: the formulas and the order of the random draws
    (sigma, then the noise, then the drop mask) that the split must reproduce bit for bit."""

    def __init__(self, net, p, sd, noise_dist=None, p_mean=-1.2, p_std=1.2, num_train_steps=1000,
                 cond_drop_prob=0.0, min_snr_gamma=None):
        super().__init__()
        self.net, self.p, self.sd = net, p, float(sd)
        self.noise_dist = noise_dist or {"edm": "lognormal", "x0": "lognormal", "eps": "vp_linear", "v": "vp_cosine"}[p]
        self.p_mean, self.p_std, self.T = float(p_mean), float(p_std), int(num_train_steps)
        self.cond_drop_prob, self.gamma = float(cond_drop_prob), min_snr_gamma
        if self.noise_dist != "lognormal":
            betas = (schedules.betas_linear if self.noise_dist == "vp_linear" else schedules.betas_cosine)(self.T)
            self.train_sigmas = schedules.sigmas_from_betas(betas).float()

    def scalings(self, sigma):
        s, sd = sigma.float(), self.sd
        if self.p == "eps":
            c_skip, c_out, c_in = torch.ones_like(s), -s, (s ** 2 + 1).rsqrt()
        elif self.p == "v":
            c_skip, c_out, c_in = 1 / (s ** 2 + 1), -s * (s ** 2 + 1).rsqrt(), (s ** 2 + 1).rsqrt()
        elif self.p == "x0":
            c_skip, c_out, c_in = torch.zeros_like(s), torch.ones_like(s), (s ** 2 + sd ** 2).rsqrt()
        else:
            c_skip = sd ** 2 / (s ** 2 + sd ** 2)
            c_out = s * sd * (s ** 2 + sd ** 2).rsqrt()
            c_in = (s ** 2 + sd ** 2).rsqrt()
        return c_skip, c_out, c_in, s.clamp(min=1e-20).log() / 4

    def forward(self, x, sigma, **cond):
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)
        f = self.net((x.float() * _bc(c_in, x)).to(x.dtype), c_noise, **cond).float()
        return _bc(c_skip, x) * x.float() + _bc(c_out, x) * f

    def sample_sigma(self, batch, device=None, generator=None):
        gen_device = generator.device if generator is not None else device
        if self.noise_dist == "lognormal":
            return (torch.randn(batch, generator=generator, device=gen_device) * self.p_std + self.p_mean).exp()
        return self.train_sigmas[torch.randint(0, self.T, (batch,), generator=generator, device=gen_device)]

    def loss(self, x0, sigma=None, noise=None, generator=None, reduce=True, **cond):
        B = x0.shape[0]
        if sigma is None:
            sigma = self.sample_sigma(B, x0.device, generator)
        sigma = torch.as_tensor(sigma, dtype=torch.float32).expand(B)
        if noise is None:
            noise = torch.randn(x0.shape, dtype=x0.dtype, generator=generator)
        if self.cond_drop_prob > 0 and "drop" not in cond and self.training:
            cond["drop"] = torch.rand(B, generator=generator) < self.cond_drop_prob
        x = x0 + _bc(sigma, x0) * noise
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)
        f = self.net((x.float() * _bc(c_in, x)).to(x.dtype), c_noise, **cond).float()
        target = (x0.float() - _bc(c_skip, x0) * x.float()) / _bc(c_out, x0)
        per_item = (f - target).pow(2).flatten(1).mean(1)
        if self.gamma is not None:
            per_item = per_item * (sigma.pow(-2).clamp(max=float(self.gamma)) * c_out ** 2)
        return per_item.mean() if reduce else per_item


class CondNet(nn.Module):
    """A fixed, non-ideal network that reads labels and the drop mask, so a changed draw order changes the loss."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(2, 2, 3, generator=g) * 0.5)
        self.emb = nn.Parameter(torch.randn(5, 2, generator=g))

    def forward(self, x, c_noise, labels=None, drop=None):
        y = nn.functional.conv1d(x, self.w, padding=1) + c_noise.reshape(-1, 1, 1)
        if labels is not None:
            e = self.emb[labels]
            if drop is not None:
                e = torch.where(drop[:, None], torch.zeros_like(e), e)
            y = y + e[:, :, None]
        return y


@pytest.mark.parametrize("gamma", [None, 5.0])
@pytest.mark.parametrize("dist", ["lognormal", "vp_linear", "vp_cosine", None])
@pytest.mark.parametrize("p", PARAMS)
def test_split_is_bit_identical_to_the_one_object_denoiser(p, dist, gamma):
    """precond.Denoiser + TrainingObjective, made directly or by build() + build_objective(), give the frozen
    losses exactly, and leave the generator where it left it (same draws, same order)."""
    net = CondNet()
    cfg = {"parameterization": p, "sigma_data": 0.3, "noise_dist": dist, "min_snr_gamma": gamma,
           "cond_drop_prob": 0.4, "num_train_steps": 50, "p_mean": -0.8, "p_std": 1.3}
    train = {k: v for k, v in cfg.items() if k not in ("parameterization", "sigma_data")}
    ref = FrozenDenoiser(net, p, 0.3, **train)
    pre = precond.Denoiser(net, p, 0.3)
    obj = objectives.build_objective(cfg)
    assert isinstance(obj, TrainingObjective) and obj.noise_dist == ref.noise_dist
    candidates = {
        "split": lambda **kw: obj.loss(pre, **kw),
        "split, direct": lambda **kw: TrainingObjective(**train, parameterization=p).loss(pre, **kw),
        "build": lambda **kw: objectives.build_objective(cfg).loss(objectives.build(net, cfg), **kw),
    }
    x0 = torch.randn(8, 2, 16, generator=torch.Generator().manual_seed(7)) * 0.4
    labels = torch.arange(8) % 5
    for seed in range(3):
        for reduce in (True, False):
            g = torch.Generator().manual_seed(seed)
            want, after = ref.loss(x0=x0, generator=g, reduce=reduce, labels=labels), torch.randn(4, generator=g)
            for name, loss in candidates.items():
                g = torch.Generator().manual_seed(seed)
                got = loss(x0=x0, generator=g, reduce=reduce, labels=labels)
                assert torch.equal(got, want), (name, seed)
                assert torch.equal(torch.randn(4, generator=g), after), (name, "a different number of draws")
        # the global generator when none is given
        torch.manual_seed(seed)
        want, after = ref.loss(x0, labels=labels), torch.rand(3)
        torch.manual_seed(seed)
        assert torch.equal(obj.loss(pre, x0, labels=labels), want) and torch.equal(torch.rand(3), after)
    # given sigma and noise; the scalings, the estimate and the noise levels
    sigma = torch.tensor([0.002, 0.05, 0.3, 0.5, 1.0, 3.0, 20.0, 80.0])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))
    ref.eval(), pre.eval()
    assert torch.equal(obj.loss(pre, x0, sigma, noise, labels=labels), ref.loss(x0, sigma, noise, labels=labels))
    for a, b in zip(pre.scalings(sigma), ref.scalings(sigma)):
        assert torch.equal(a, b)
    x = x0 + _bc(sigma, x0) * noise
    assert torch.equal(pre(x, sigma, labels=labels), ref(x, sigma, labels=labels))
    assert torch.equal(obj.sample_sigma(500, generator=torch.Generator().manual_seed(1)),
                       ref.sample_sigma(500, generator=torch.Generator().manual_seed(1)))


def test_the_two_objects_and_their_builders():
    assert objectives.objective_keys() == ("parameterization", "sigma_data", "noise_dist", "p_mean", "p_std",
                                           "num_train_steps", "cond_drop_prob", "min_snr_gamma")
    import inspect
    # one Denoiser, the preconditioning: its arguments are the preconditioning keys, the rest are the objective's
    assert objectives.Denoiser is precond.Denoiser
    assert tuple(a for a in inspect.signature(Denoiser.__init__).parameters
                 if a not in ("self", "net")) == ("parameterization", "sigma_data")
    pre = precond.Denoiser(nn.Identity(), "v", 0.3)
    assert not hasattr(pre, "loss") and not hasattr(pre, "sample_sigma")  # preconditioning only
    cfg = {"parameterization": "v", "sigma_data": 0.3, "min_snr_gamma": 5}
    den = objectives.build(nn.Identity(), cfg)
    assert type(den) is precond.Denoiser and not hasattr(den, "objective") and not hasattr(den, "loss")
    assert not hasattr(den, "min_snr_gamma") and not hasattr(den, "noise_dist")  # no training settings
    objective = objectives.build_objective(cfg)
    assert objective.noise_dist == "vp_cosine" and objective.min_snr_gamma == 5.0
    assert list(den.state_dict()) == [] and list(objective.state_dict()) == []  # nothing extra in a checkpoint
    obj = objectives.build_objective({"parameterization": "eps", "sigma_data": 0.3, "cond_drop_prob": 0.2})
    assert (obj.noise_dist, obj.cond_drop_prob, obj.train_sigmas.shape) == ("vp_linear", 0.2, (1000,))
    assert objectives.build_objective({}).noise_dist == "lognormal"
    with pytest.raises(ValueError, match=r"unknown objective settings \['param'\]; allowed: .*parameterization"):
        objectives.build_objective({"param": "eps"})
    with pytest.raises(ValueError, match=r"noise_dist 'uniform'; allowed: \('lognormal', 'vp_linear', 'vp_cosine'\)"):
        TrainingObjective("uniform")
    with pytest.raises(ValueError, match=r"min_snr_gamma must be null or a number > 0; got -1"):
        TrainingObjective(min_snr_gamma=-1)
    with pytest.raises(ValueError, match=r"allowed: \('eps', 'v', 'x0', 'edm', 'flow'\)"):
        precond.Denoiser(nn.Identity(), "score")
    with pytest.raises(ValueError, match="sigma_data='auto' must be resolved"):
        precond.Denoiser(nn.Identity(), "edm", "auto")
    # a defaulted noise_dist belongs to its parameterisation: pairing it with another denoiser is refused
    x0 = torch.zeros(2, 1, 4)
    with pytest.raises(ValueError, match=r"default of parameterization 'edm' but the denoiser is 'v'"):
        TrainingObjective().loss(pre, x0)
    pre = precond.Denoiser(lambda x, c: x, "v", 0.3)
    assert TrainingObjective("lognormal").loss(pre, x0, generator=torch.Generator().manual_seed(0)) >= 0
    # registries are tables; a caller may test membership and list names as before
    assert list(objectives.PARAMETERIZATIONS) == PARAMS + ["flow"] and "edm" in objectives.PARAMETERIZATIONS
    assert list(objectives.NOISE_DISTRIBUTIONS) == ["lognormal", "vp_linear", "vp_cosine"]


def test_flow_is_the_straight_path_and_an_euler_step_in_sigma_is_the_flows_euler_step():
    """`flow`: the network's ideal output is the velocity noise - x0 of (1 - t) x0 + t noise, t = sigma / (1 + sigma);
    Euler in sigma on x = x0 + sigma noise is exactly Euler in t on the interpolation (Liu et al. 2023)."""
    g = torch.Generator().manual_seed(7)
    x0, noise = torch.randn(4, 1, 32, generator=g), torch.randn(4, 1, 32, generator=g)
    sigma = torch.tensor([0.05, 0.5, 2.0, 30.0])
    t = (sigma / (1 + sigma)).view(-1, 1, 1)
    x = x0 + sigma.view(-1, 1, 1) * noise
    z = (1 - t) * x0 + t * noise
    velocity = lambda x_in, c_noise: noise - x0  # noqa: E731  (the ideal network)
    den = objectives.build(velocity, {"parameterization": "flow"})
    seen = []
    den_in = objectives.build(lambda x_in, c_noise: seen.append(x_in) or noise - x0, {"parameterization": "flow"})
    torch.testing.assert_close(den(x, sigma), x0, rtol=1e-5, atol=1e-5)
    den_in(x, sigma)
    torch.testing.assert_close(seen[0], z, rtol=1e-5, atol=1e-6)  # the network sees the flow's interpolation
    obj = objectives.build_objective({"parameterization": "flow"})
    assert obj.loss(den, x0, sigma, noise).item() < 1e-10  # its target is the velocity
    # one Euler step from sigma to sigma2 < sigma with any network output F, in both views
    F = torch.randn(4, 1, 32, generator=g)
    any_net = objectives.build(lambda x_in, c_noise: F, {"parameterization": "flow"})
    sigma2 = sigma * 0.3
    x_next = x + (sigma2 - sigma).view(-1, 1, 1) * (x - any_net(x, sigma)) / sigma.view(-1, 1, 1)
    t2 = (sigma2 / (1 + sigma2)).view(-1, 1, 1)
    z_next = z + (t2 - t) * F
    torch.testing.assert_close(x_next / (1 + sigma2.view(-1, 1, 1)), z_next, rtol=1e-5, atol=1e-5)
    # the samplers reach the closed form of a Gaussian through the flow parameterisation: an ideal velocity network
    # for data N(0, s^2): v* = E[noise - x0 | z_t]
    s = 0.7

    def ideal(x_in, c_noise):
        sig = torch.exp(4 * c_noise).view(-1, 1, 1)
        tt = sig / (1 + sig)
        var = (1 - tt) ** 2 * s ** 2 + tt ** 2
        return x_in * (tt - (1 - tt) * s ** 2) / var

    flow_den = objectives.build(ideal, {"parameterization": "flow"})
    xs = torch.randn(20000, 1, 1, generator=torch.Generator().manual_seed(1))
    out = samplers.sample(flow_den, xs, schedules.karras(32, 0.002, 80.0), "heun", progress=False)
    assert abs(out.std().item() - s) < 0.02
