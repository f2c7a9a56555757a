"""A patched net must see the components repeated in every patch (the lines at k * sample_rate / patch).

GroupNorm subtracts each group's mean over time, so behind a patch it removes exactly those components; the
denoiser then keeps the noise there and samples carry spectral lines. `top_norm="position"` normalises per
position instead (layers.PositionNorm). These tests pin that property on nets with random weights.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from audiodiff.models import build, load_preset
from audiodiff.models.blocks import GroupNorm32, PositionNorm

NET1D = dict(name="unet1d", patch=8, channels=[32, 64], factors=[1, 4], blocks=[1, 1], attention=[False, True],
             head_dim=32)
NET2D = dict(name="unet2d", patch=2, channels=[32, 64], factors=[1, 2], blocks=[1, 1], attention=[False, True],
             head_dim=32)


def randomize(net, std=0.1):
    """Perturb every parameter (zero-initialised output layers would make the net output 0)."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * std)
    return net.eval()


def response(net, x, pattern, eps=1e-2):
    """Amplitude of the net's output change along `pattern` (unit-power) when eps * pattern is added to x."""
    with torch.no_grad():
        dy = net(x + eps * pattern, torch.zeros(x.shape[0])) - net(x, torch.zeros(x.shape[0]))
    dims = tuple(range(2, x.ndim))
    return float(((dy * pattern).sum(dims) / pattern.pow(2).sum(dims)).abs().mean() / eps)


def line_and_neighbour_1d(T, patch, k):
    """cos at exactly k * rate / patch (the same in every patch) and one cycle per clip above it."""
    t = torch.arange(T, dtype=torch.float32)
    return [torch.cos(2 * math.pi * (k / patch + m / T) * t)[None, None] for m in (0, 1)]


def line_and_neighbour_2d(H, W):
    """Alternating sign across mel bins, constant over frames (same in every 2x2 cell), and one cycle over frames."""
    h, w = torch.arange(H, dtype=torch.float32)[:, None], torch.arange(W, dtype=torch.float32)[None, :]
    return [(torch.cos(math.pi * h) * torch.cos(2 * math.pi * m * w / W))[None, None] for m in (0, 1)]


def ratios(cfg, top_norm, seed):
    torch.manual_seed(seed)
    net = randomize(build({**cfg, "top_norm": top_norm}))
    if cfg["name"] == "unet1d":
        T = 1024
        x = 0.5 * torch.randn(4, 1, T)
        pairs = [line_and_neighbour_1d(T, cfg["patch"], k) for k in (1, 2, 3)]
    else:
        x = 0.5 * torch.randn(4, 1, 32, 48)
        pairs = [line_and_neighbour_2d(32, 48)]
    return [response(net, x, line) / response(net, x, near) for line, near in pairs]


@pytest.mark.parametrize("cfg", [NET1D, NET2D], ids=["unet1d", "unet2d"])
@pytest.mark.parametrize("seed", [0, 1])
def test_position_norm_passes_patch_period_components(cfg, seed):
    """With top_norm="position" a component repeated in every patch moves the output about as much as its neighbour
    one cycle away; with GroupNorm it moves it a few percent as much (the defect: lines at k * sample_rate / patch)."""
    fixed = ratios(cfg, "position", seed)
    assert min(fixed) > 0.3, fixed
    group = ratios(cfg, "group", seed)
    assert sum(group) / len(group) < 0.2, group


def test_position_norm_is_layer_norm_per_position():
    """PositionNorm normalises each position over channels alone: no statistics across time."""
    torch.manual_seed(0)
    norm = PositionNorm(6)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 10) * 3 + 1
    y = norm(x)
    ref = F.layer_norm(x.transpose(1, 2), (6,), norm.weight, norm.bias, norm.eps).transpose(1, 2)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(norm(x[..., 3:5]), y[..., 3:5])
    x2 = torch.randn(2, 6, 4, 5)
    torch.testing.assert_close(norm(x2)[..., 1, 2], norm(x2[..., 1:2, 2:3])[..., 0, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(x.bfloat16()).dtype == torch.bfloat16


def test_top_norm_placement_and_defaults():
    """Position norms sit in level 0 and the output head only; a config without the key rebuilds the GroupNorm
    net that older checkpoints hold; the waveform presets use "position"."""
    net = build({**NET1D, "top_norm": "position"})
    pos = sorted(n for n, m in net.named_modules() if isinstance(m, PositionNorm))
    assert pos == ["body.down_blocks.0.0.norm1", "body.down_blocks.0.0.norm2", "body.out_norm",
                   "body.up_blocks.0.0.norm1", "body.up_blocks.0.0.norm2"]
    body = net.body
    assert all(isinstance(m, GroupNorm32) for m in (body.down_blocks[1][0].norm1, body.up_blocks[1][0].norm2,
                                                      body.down_attn[1][0].norm, body.mid1.norm1, body.mid_attn.norm))
    assert build(net.config).config == net.config
    old = build(NET1D)
    assert old.config["top_norm"] == "group" and isinstance(old.body.out_norm, GroupNorm32)
    assert old.state_dict().keys() == net.state_dict().keys()
    for name in ("unet1d_small", "unet1d_base", "unet1d_large"):
        assert load_preset(name)["top_norm"] == "position", name
    with pytest.raises(ValueError, match="top_norm"):
        build({**NET1D, "top_norm": "batch"})
