"""audiodiff.guidance: classifier-free guidance equals its formula in one call; inpainting keeps the known part."""
import pytest
import torch

from audiodiff import samplers, schedules
from audiodiff.guidance import CFG, Inpaint, cfg, continuation_mask


class ToyConditional:
    """D(x, sigma, labels, drop, local) = 0.5 x + 0.1 sigma + label offset (-1 when dropped) + mean of local."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma, labels=None, drop=None, local=None):
        self.calls.append({"B": x.shape[0], "labels": labels, "drop": drop, "local": local})
        B = x.shape[0]
        shape = (B,) + (1,) * (x.dim() - 1)
        lab = torch.full((B,), -1.0) if labels is None else labels.float()
        if drop is not None:
            lab = torch.where(drop, torch.full_like(lab, -1.0), lab)
        out = 0.5 * x + 0.1 * sigma.reshape(shape) + lab.reshape(shape)
        if local is not None:
            out = out + local.mean(dim=(1, 2)).reshape(shape)
        return out


@pytest.mark.parametrize("scale", [0.0, 0.5, 2.0, 7.5])
def test_cfg_equals_formula_in_one_batched_call(scale):
    x = torch.randn(3, 2, 16)
    sigma = torch.tensor([0.5, 1.0, 3.0])
    labels = torch.tensor([2, 5, 7])
    den = ToyConditional()
    c = den(x, sigma, labels=labels)
    u = den(x, sigma, labels=labels, drop=torch.ones(3, dtype=torch.bool))
    den.calls.clear()
    out = CFG(den, scale)(x, sigma, labels=labels)
    torch.testing.assert_close(out, u + scale * (c - u))
    assert len(den.calls) == 1 and den.calls[0]["B"] == 6  # cond and uncond together
    assert den.calls[0]["drop"].tolist() == [False] * 3 + [True] * 3


def test_cfg_scalar_sigma_given_drop_and_local_kept():
    x = torch.randn(2, 1, 8)
    labels = torch.tensor([1, 4])
    local = torch.randn(2, 3, 5)
    den = ToyConditional()
    drop = torch.tensor([True, False])
    out = CFG(den, 3.0)(x, 0.7, labels=labels, drop=drop, local=local)
    call = den.calls[-1]
    assert call["drop"].tolist() == [True, False, True, True]  # a given drop stays on the conditional half
    assert torch.equal(call["local"], torch.cat([local, local]))  # local (vocoder mel) conditioning is kept
    s = torch.full((2,), 0.7)
    c = den(x, s, labels=labels, drop=drop, local=local)
    u = den(x, s, labels=labels, drop=torch.ones(2, dtype=torch.bool), local=local)
    torch.testing.assert_close(out, u + 3.0 * (c - u))


def test_cfg_helper_and_errors():
    den = ToyConditional()
    assert cfg(den, None) is den and cfg(den, 1.0) is den
    assert isinstance(cfg(den, 2.0), CFG)
    with pytest.raises(ValueError, match="guidance scale must be >= 0"):
        CFG(den, -1.0)
    with pytest.raises(ValueError, match=r"condition 'labels' must be batched like x, \(B=2"):
        CFG(den, 2.0)(torch.zeros(2, 1, 4), 1.0, labels=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="must be a tensor or None"):
        CFG(den, 2.0)(torch.zeros(2, 1, 4), 1.0, labels=[1, 2])


def test_cfg_inside_a_sampler():
    den = ToyConditional()
    noise = torch.randn(2, 1, 8)
    out = samplers.sample(CFG(den, 2.0), noise, schedules.karras(4), "euler", progress=False,
                          labels=torch.tensor([0, 3]))
    assert out.shape == noise.shape and all(c["B"] == 4 for c in den.calls) and len(den.calls) == 4


class _Gauss:
    """Exact denoiser of N(0.2, 0.3^2) per coordinate."""

    def __call__(self, x, sigma, **cond):
        v = sigma.reshape(-1, *([1] * (x.dim() - 1))) ** 2
        return 0.2 + 0.09 / (0.09 + v) * (x - 0.2)


@pytest.mark.parametrize("method", ["euler", "ddpm", "heun", "dpmpp_2m", "dpmpp_2m_sde"])
def test_inpaint_keeps_known_region_exactly(method):
    known = torch.randn(3, 1, 32) * 0.7 + 3.0  # far from what the model would generate
    mask = continuation_mask(known.shape, keep=12)
    out = samplers.sample(Inpaint(_Gauss(), known, mask), torch.randn(3, 1, 32), schedules.karras(8), method,
                          generator=torch.Generator().manual_seed(0), progress=False,
                          options={"s_churn": 5.0} if method == "heun" else None)
    assert torch.equal(out[..., :12], known[..., :12])
    assert (out[..., 12:] - known[..., 12:]).abs().min() > 0.1  # the rest was generated, not copied
    assert abs(out[..., 12:].mean().item() - 0.2) < 0.3


def test_continuation_mask_and_inpaint_errors():
    m = continuation_mask((2, 1, 3, 5), keep=2)
    assert m.shape == (2, 1, 3, 5) and m[..., :2].eq(1).all() and m[..., 2:].eq(0).all()
    m2 = continuation_mask((2, 4), keep=1, dim=0)
    assert m2[0].eq(1).all() and m2[1].eq(0).all()
    with pytest.raises(ValueError, match=r"mask values must lie in \[0, 1\]"):
        Inpaint(_Gauss(), torch.zeros(1, 4), torch.tensor([[2.0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="does not broadcast"):
        Inpaint(_Gauss(), torch.zeros(1, 4), torch.ones(1, 3))
    with pytest.raises(ValueError, match="must be shaped like known"):
        Inpaint(_Gauss(), torch.zeros(1, 4), torch.ones(1, 4))(torch.zeros(2, 4), torch.ones(2))
    # a soft mask blends linearly
    soft = Inpaint(_Gauss(), torch.ones(1, 4), torch.full((1, 4), 0.25))
    x, s = torch.zeros(1, 4), torch.ones(1)
    torch.testing.assert_close(soft(x, s), 0.25 * torch.ones(1, 4) + 0.75 * _Gauss()(x, s))
