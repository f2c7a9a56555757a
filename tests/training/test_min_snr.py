"""objective.min_snr_gamma: Min-SNR-gamma loss weighting (Hang et al. 2023), checked against the paper's closed forms."""
import pytest
import torch
from torch import nn

from audiodiff import objectives
from audiodiff.objectives import TrainingObjective, precond
from audiodiff.training import loop, runtime
from tests.helpers import tiny_cfg

PARAMS = ["eps", "v", "x0", "edm"]


class Wobbly(nn.Module):
    """A fixed, non-ideal network: a 1x1 conv and a noise-level shift, so every loss is positive."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(2, 2, 1, generator=g) * 0.5)

    def forward(self, x, c_noise, **cond):
        return torch.nn.functional.conv1d(x, self.w) + c_noise.reshape(-1, 1, 1)


def batch():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 2, 32, generator=g) * 0.4
    noise = torch.randn(6, 2, 32, generator=g)
    sigma = torch.tensor([0.01, 0.1, 0.3, 0.6, 2.0, 40.0])  # SNR 10000 ... 0.000625, either side of gamma = 5
    return x0, noise, sigma


@pytest.mark.parametrize("p", PARAMS)
def test_weighted_loss_is_min_snr_times_the_x0_error(p):
    """Read in x0 space, every item's loss is min(SNR, gamma) * |D(x, sigma) - x0|^2 with SNR = 1 / sigma^2."""
    x0, noise, sigma = batch()
    den = precond.Denoiser(Wobbly(), p).eval()
    obj = TrainingObjective(min_snr_gamma=5.0, parameterization=p)
    got = obj.loss(den, x0, sigma=sigma, noise=noise, reduce=False)
    with torch.no_grad():
        x0_err = (den(x0 + sigma.reshape(-1, 1, 1) * noise, sigma) - x0).pow(2).flatten(1).mean(1)
    snr = 1 / sigma.double() ** 2
    want = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) * x0_err.double()
    torch.testing.assert_close(got.double(), want, rtol=2e-4, atol=1e-7)


def test_weights_match_the_papers_forms():
    """eps: min(SNR, gamma) / SNR; v: min(SNR, gamma) / (SNR + 1); x0: min(SNR, gamma) (Hang et al. 2023, sec. 3.4)."""
    sigma = torch.tensor([0.1, 0.5, 1.0, 3.0], dtype=torch.float64)
    snr, g = 1 / sigma ** 2, 5.0
    m = snr.clamp(max=g)
    # by hand: SNR = 100, 4, 1, 1/9
    torch.testing.assert_close(m, torch.tensor([5.0, 4.0, 1.0, 1 / 9], dtype=torch.float64))
    want = {"eps": m / snr, "v": m / (snr + 1), "x0": m}
    for p, w in want.items():
        obj = TrainingObjective(min_snr_gamma=g, parameterization=p)
        got = obj.loss_weight(precond.Denoiser(nn.Identity(), p), sigma.float())
        torch.testing.assert_close(got.double(), w, rtol=1e-5, atol=1e-7)
    obj = TrainingObjective(min_snr_gamma=g, parameterization="eps")
    assert obj.loss_weight(precond.Denoiser(nn.Identity(), "eps"), torch.tensor([0.1])).item() == pytest.approx(0.05)


@pytest.mark.parametrize("p", PARAMS)
def test_off_is_the_plain_loss(p):
    x0, noise, sigma = batch()
    den = precond.Denoiser(Wobbly(), p)
    plain = TrainingObjective(parameterization=p).loss(den, x0, sigma=sigma, noise=noise, reduce=False)
    off = TrainingObjective(min_snr_gamma=None, parameterization=p).loss(den, x0, sigma=sigma, noise=noise,
                                                                          reduce=False)
    assert torch.equal(plain, off) and bool((plain > 0).all())
    # eps with gamma above every SNR of the batch weighs each item by 1: the plain eps loss again
    if p == "eps":
        big = TrainingObjective(min_snr_gamma=1e9, parameterization=p).loss(den, x0, sigma=sigma, noise=noise,
                                                                            reduce=False)
        torch.testing.assert_close(big, plain)


def test_bad_gamma_is_refused():
    for refuse in (lambda: objectives.build(nn.Identity(), {"parameterization": "v", "min_snr_gamma": 0}),
                   lambda: objectives.build_objective({"parameterization": "v", "min_snr_gamma": 0}),
                   lambda: TrainingObjective(min_snr_gamma=0, parameterization="v")):
        with pytest.raises(ValueError, match="min_snr_gamma must be null or a number > 0; got 0"):
            refuse()
    cfg = {"parameterization": "v", "min_snr_gamma": 5}
    assert objectives.build(nn.Identity(), cfg).parameterization == "v"
    assert objectives.build_objective(cfg).min_snr_gamma == 5.0


def test_bad_gamma_in_a_run_names_the_setting(tmp_path):
    cfg = tiny_cfg(tmp_path / "bad")
    cfg["objective"]["min_snr_gamma"] = "high"
    with pytest.raises(runtime.TrainingError, match=r"objective.min_snr_gamma.*null \(off\) or a number > 0"):
        loop.train(cfg)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_a_min_snr_run_trains_and_stores_gamma(tmp_path):
    import json

    from audiodiff.runs.checkpoint import load_checkpoint

    cfg = tiny_cfg(tmp_path / "run", steps=2)
    cfg["objective"] = {"parameterization": "v", "min_snr_gamma": 5.0, "cond_drop_prob": 0.0}
    loop.train(cfg)
    meta = json.loads((load_checkpoint(tmp_path / "run")["dir"] / "meta.json").read_text())
    assert meta["objective"]["min_snr_gamma"] == 5.0


@pytest.mark.parametrize("p", PARAMS)
def test_the_split_objective_weighs_the_same(p):
    """Min-SNR lives in the TrainingObjective (EDM2's split): built from config or directly it gives the same losses
    on a bare precond.Denoiser, and its weight reads c_out from the denoiser it is given."""
    x0, noise, sigma = batch()
    net = Wobbly()
    obj = objectives.build_objective({"parameterization": p, "min_snr_gamma": 5.0})
    assert isinstance(obj, TrainingObjective) and obj.min_snr_gamma == 5.0
    pre = precond.Denoiser(net, p)
    got = obj.loss(pre, x0, sigma=sigma, noise=noise, reduce=False)
    direct = TrainingObjective(min_snr_gamma=5.0, parameterization=p)
    assert torch.equal(got, direct.loss(precond.Denoiser(net, p), x0, sigma=sigma, noise=noise, reduce=False))
    c_out = pre.scalings(sigma)[1]
    torch.testing.assert_close(obj.loss_weight(pre, sigma), (1 / sigma ** 2).clamp(max=5.0) * c_out ** 2)
