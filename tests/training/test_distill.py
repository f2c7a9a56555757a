"""Distillation (training/distill.py): a student of the exact Gaussian-mixture denoiser reproduces the mixture in 1-2
steps; its pairs are the teacher's ODE end points; the student is an ordinary run that samples with its own steps."""
import math

import pytest
import torch
from torch import nn

from audiodiff import generation, objectives
from audiodiff.training import distill
from tests.test_samplers import Mixture, TRUTH, THRESHOLD


class MLP(nn.Module):
    """A small network `F(x_in, c_noise)` for 1-D data, taking the noise level as an input."""

    def __init__(self, width=64):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                  nn.Linear(width, 1))

    def forward(self, x, c_noise):
        return self.body(torch.cat([x, c_noise.view(-1, 1).expand(-1, 1)], 1))


@pytest.mark.parametrize("steps", [1, 2])
def test_a_student_of_the_exact_mixture_denoiser_reproduces_it_in_few_steps(steps):
    teacher = Mixture()
    schedule = {"name": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0}
    t_sigmas = generation.noise_levels(schedule, 40)
    n_pairs = 4000
    pairs = distill.teacher_pairs(teacher, (1,), [{}] * n_pairs, t_sigmas, "heun", None, seed=0, batch=1000)
    # the pairs are where the teacher's ODE from each noise lands: the mixture itself
    x0 = pairs["x0"].flatten()
    assert abs((x0 <= THRESHOLD).double().mean().item() - TRUTH[0][0]) < 0.03
    torch.manual_seed(0)
    net = MLP()
    den = objectives.build(net, {"parameterization": "edm", "sigma_data": 1.0})
    obj = objectives.build_objective({"parameterization": "edm", "sigma_data": 1.0})
    sig = distill.student_sigmas(schedule, steps)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for it in range(1500):
        idx = torch.randint(0, n_pairs, (256,), generator=g)
        pick = torch.randint(0, len(sig), (256,), generator=g)
        loss = obj.loss(den, pairs["x0"][idx], sigma=sig[pick], noise=pairs["noise"][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    n = 20000
    noise = torch.randn(n, 1, generator=torch.Generator().manual_seed(7))
    out = generation.generate(den.eval(), noise, generation.noise_levels(schedule, steps), "euler").flatten()
    for side, (w, mean, var) in zip((out <= THRESHOLD, out > THRESHOLD), TRUTH):
        got_w = side.double().mean().item()
        assert abs(got_w - w) < 0.03, (steps, "weight", got_w, w)  # stated bounds: weight +-0.03
        assert abs(out[side].mean().item() - mean) < 0.15, (steps, "mean", out[side].mean().item(), mean)
        assert abs(math.sqrt(out[side].var().item()) - math.sqrt(var)) < 0.15, (steps, "std")
    # the teacher's own Euler at the same step count is far from it (what distillation buys)
    raw = generation.generate(teacher, noise, generation.noise_levels(schedule, steps), "euler").flatten()
    assert abs((raw <= THRESHOLD).double().mean().item() - TRUTH[0][0]) > 0.03 or \
        abs(raw[raw > THRESHOLD].std().item() - math.sqrt(TRUTH[1][2])) > 0.15


def test_student_sigmas_are_where_its_euler_sampler_evaluates():
    schedule = {"name": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0}
    s = distill.student_sigmas(schedule, 4)
    assert s.shape == (4,) and float(s[0]) == pytest.approx(80.0) and bool((s[1:] < s[:-1]).all())
    seen = []
    generation.generate(lambda x, sigma, **c: seen.append(float(sigma[0])) or torch.zeros_like(x),
                        torch.zeros(1, 1), generation.noise_levels(schedule, 4), "euler")
    assert seen == pytest.approx(s.tolist())


def test_distill_settings_are_checked():
    with pytest.raises(Exception, match=r"student_steps=0 is not allowed; allowed: an integer >= 1"):
        distill.resolve_config({"teacher": "runs/x", "student_steps": 0})
    with pytest.raises(Exception, match=r"unknown distill settings \['stepz'\]"):
        distill.resolve_config({"teacher": "runs/x", "stepz": 4})
    cfg = distill.resolve_config({"teacher": "runs/fsdd_mel/", "student_steps": 4})
    assert cfg["run_dir"] == "runs/fsdd_mel_distill4" and cfg["train"]["lr"] == 2e-4
