"""Tests for the denoiser networks: shapes, conditioning semantics, checkpointing, bf16, presets, build."""
import math

import numpy as np
import pytest
import torch

from audiodiff.models import UNet1D, UNet2D, build, load_preset
from audiodiff.models.blocks import ConditionEmbedding, sinusoidal_features

TINY1D = dict(name="unet1d", patch=2, channels=[16, 32], factors=[1, 2], blocks=[1, 1],
              attention=[False, True], head_dim=16)
TINY2D = dict(name="unet2d", patch=2, channels=[16, 32], factors=[1, 2], blocks=[1, 1],
              attention=[False, True], head_dim=16)
COND = dict(num_classes=5, pitch=True, vector_dim=3, local_channels=4)


def randomize(net, std=0.05):
    """Perturb every parameter so that zero-initialised output layers pass signal (fresh nets output 0)."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * std)
    return net.eval()


def cond_inputs(B, frames=6):
    return dict(labels=torch.arange(B) % 5, pitch=torch.linspace(40, 80, B), vector=torch.randn(B, 3),
                local=torch.randn(B, 4, frames))


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("T", [1, 7, 255, 1001])
@pytest.mark.parametrize("C", [1, 2])
def test_unet1d_any_length(T, C):
    net = randomize(build({**TINY1D, "in_channels": C}))
    x = torch.randn(2, C, T)
    y = net(x, torch.randn(2))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.abs().sum() > 0


@pytest.mark.parametrize("hw", [(1, 1), (80, 37), (128, 101), (13, 64)])
def test_unet2d_any_size(hw):
    net = randomize(build(TINY2D))
    x = torch.randn(2, 1, *hw)
    y = net(x, torch.randn(2))
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("cfg, shape", [({**TINY1D, "patch": 4, "in_channels": 2}, (2, 2, 1001)),
                                        ({**TINY2D, "patch": [2, 4], "in_channels": 2}, (2, 2, 37, 50))])
def test_patch_pad_crop_is_exact_inverse(cfg, shape):
    """With the U-Net body replaced by the identity, padding + patching + unpatching + cropping returns x exactly."""
    net = build(cfg)
    net.body.forward = lambda h, emb, local=None, valid=None: h
    x = torch.randn(*shape)
    assert torch.equal(net(x, torch.zeros(shape[0])), x)


def test_patch_folds_neighbouring_samples():
    """patch=4 puts samples 4t..4t+3 of each channel into channels c*4..c*4+3 at step t."""
    net = build({**TINY1D, "patch": 4, "in_channels": 2})
    seen = {}

    def body(h, emb, local=None, valid=None):
        seen["h"] = h.clone()
        return h
    net.body.forward = body
    x = torch.arange(2 * 2 * 16, dtype=torch.float32).reshape(2, 2, 16)
    net(x, torch.zeros(2))
    h = seen["h"]                              # (2, 8, 4)
    np.testing.assert_array_equal(h[1, 4:8, 2].numpy(), x[1, 1, 8:12].numpy())
    np.testing.assert_array_equal(h[0, 0:4, 0].numpy(), x[0, 0, 0:4].numpy())


# --------------------------------------------------------------------------------------- conditions
@pytest.mark.parametrize("tiny, shape", [(TINY1D, (3, 1, 100)), (TINY2D, (3, 1, 20, 24))])
def test_each_condition_changes_output(tiny, shape):
    net = randomize(build({**tiny, **COND}))
    B = shape[0]
    x, c = torch.randn(*shape), torch.randn(B)
    base = cond_inputs(B)
    with torch.no_grad():
        y0 = net(x, c, **base)
        changed = {"labels": (base["labels"] + 1) % 5, "pitch": base["pitch"] + 1.0,
                   "vector": base["vector"] + 0.5, "local": torch.randn(B, 4, 6)}
        for name, value in changed.items():
            y = net(x, c, **{**base, name: value})
            assert (y - y0).abs().max() > 1e-4, f"{name} does not change the output"
        assert (net(x, c + 0.5, **base) - y0).abs().max() > 1e-4, "c_noise does not change the output"


@pytest.mark.parametrize("tiny, shape", [(TINY1D, (3, 1, 100)), (TINY2D, (3, 1, 20, 24))])
def test_none_equals_drop_all_and_drop_is_per_item(tiny, shape):
    net = randomize(build({**tiny, **COND}))
    B = shape[0]
    x, c = torch.randn(*shape), torch.randn(B)
    cond = cond_inputs(B)
    local = cond.pop("local")
    with torch.no_grad():
        y_none = net(x, c, local=local)
        y_drop = net(x, c, local=local, drop=torch.ones(B, dtype=torch.bool), **cond)
        torch.testing.assert_close(y_drop, y_none, rtol=0, atol=1e-6)
        # dropped items ignore the condition values entirely
        other = dict(labels=(cond["labels"] + 2) % 5, pitch=cond["pitch"] * 0.5, vector=-cond["vector"])
        torch.testing.assert_close(net(x, c, local=local, drop=torch.ones(B, dtype=torch.bool), **other),
                                   y_none, rtol=0, atol=1e-6)
        # a partial mask acts item by item
        drop = torch.tensor([True, False, True])
        y_mix = net(x, c, local=local, drop=drop, **cond)
        y_cond = net(x, c, local=local, **cond)
        torch.testing.assert_close(y_mix[drop], y_none[drop], rtol=0, atol=1e-5)
        torch.testing.assert_close(y_mix[~drop], y_cond[~drop], rtol=0, atol=1e-5)
        assert (y_cond[drop] - y_none[drop]).abs().max() > 1e-4


def test_local_is_aligned_in_time():
    """A change to mel frame 8 of 16 changes the waveform around samples 8/16*T, not far from it (vocoder alignment).

    Attention outputs are zeroed so that only convolutions (local) and group-norm statistics (global) mix time.
    T = 2000 is not a multiple of the net's 4, so this also checks that padding does not shift the alignment.
    """
    net = randomize(build({**TINY1D, "attention": [False, False], "local_channels": 4}), std=0.1)
    torch.nn.init.zeros_(net.body.mid_attn.proj.weight)
    torch.nn.init.zeros_(net.body.mid_attn.proj.bias)
    T, frames = 2000, 16
    x, c = torch.randn(1, 1, T), torch.zeros(1)
    local = torch.randn(1, 4, frames)
    with torch.no_grad():
        y0 = net(x, c, local=local)
        local2 = local.clone()
        local2[..., 8] += 3.0
        d = (net(x, c, local=local2) - y0).abs()[0, 0]
    # frame 8 spans samples [1000, 1125): the change per 125-sample bin peaks there and is several times the
    # change far away (which is nonzero only through the group-norm statistics taken over all time steps)
    bins = d.view(frames, T // frames).mean(1)
    assert int(bins.argmax()) == 8, bins
    assert bins[8] > 4 * torch.cat([bins[:5], bins[12:]]).mean(), bins


def test_fourier_features_closed_form():
    x = torch.tensor([-1.3, 0.0, 0.7])
    f = torch.tensor([0.1, 2.0, 30.0])
    ref = np.concatenate([np.cos(2 * np.pi * x.numpy()[:, None] * f.numpy()[None]),
                          np.sin(2 * np.pi * x.numpy()[:, None] * f.numpy()[None])], axis=1)
    np.testing.assert_allclose(sinusoidal_features(x, f).numpy(), ref, atol=1e-5)


def test_scalar_c_noise_broadcasts():
    net = randomize(build(TINY1D))
    x = torch.randn(2, 1, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((2,), 0.3)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=torch.tensor([0, 5])), r"\[0, 5\)"),
    (dict(labels=torch.tensor([0.0, 1.0])), "integer"),
    (dict(pitch=torch.ones(3)), "pitch must be"),
    (dict(vector=torch.ones(2, 2)), r"vector_dim\)=\(2, 3\)"),
    (dict(drop=torch.ones(2)), "bool"),
    (dict(local=torch.ones(2, 3, 4)), "local_channels"),
])
def test_bad_conditions_raise(kwargs, match):
    net = build({**TINY1D, **COND})
    kwargs.setdefault("local", torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match=match):
        net(torch.randn(2, 1, 32), torch.zeros(2), **kwargs)


def test_conditions_on_unconditional_net_raise():
    net = build(TINY1D)
    x, c = torch.randn(2, 1, 32), torch.zeros(2)
    for kw, match in [(dict(labels=torch.tensor([0, 1])), "num_classes=0"),
                      (dict(pitch=torch.ones(2)), "pitch=False"),
                      (dict(vector=torch.ones(2, 3)), "vector_dim=0"),
                      (dict(local=torch.ones(2, 4, 3)), "local_channels=0")]:
        with pytest.raises(ValueError, match=match):
            net(x, c, **kw)
    with pytest.raises(ValueError, match="pass local"):
        build({**TINY1D, "local_channels": 4})(x, c)
    with pytest.raises(ValueError, match=r"\(B, C=1, T\)"):
        net(torch.randn(2, 2, 32), c)


# ------------------------------------------------------------------------------------ build, config
def test_build_errors_list_allowed():
    with pytest.raises(ValueError, match=r"allowed: \['unet1d', 'unet2d'\]"):
        build({"name": "wavenet"})
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['chanels'\].*allowed: \[.*'channels'"):
        build({"name": "unet1d", "chanels": [8]})
    with pytest.raises(ValueError, match="one length"):
        build({**TINY1D, "blocks": [1]})


@pytest.mark.parametrize("cfg", [{**TINY1D, **COND}, {**TINY2D, **COND, "patch": [1, 2], "factors": [1, [1, 2]]}])
def test_config_rebuilds_same_net(cfg):
    net = randomize(build(cfg))
    twin = build(net.config)
    assert twin.config == net.config
    twin.load_state_dict(net.state_dict())
    twin.eval()
    shape = (2, 1, 40) if cfg["name"] == "unet1d" else (2, 1, 12, 20)
    x, c = torch.randn(*shape), torch.randn(2)
    kw = {**cond_inputs(2)}
    with torch.no_grad():
        torch.testing.assert_close(twin(x, c, **kw), net(x, c, **kw))


def test_load_preset_default_and_env_override(tmp_path, monkeypatch):
    cfg = load_preset("unet1d_small")
    assert cfg["name"] == "unet1d" and isinstance(build(cfg), UNet1D)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("name: unet2d\nchannels: [8, 16]\nfactors: [1, 2]\n"
                                                  "blocks: [1, 1]\nattention: [false, true]\nhead_dim: 8\n")
    monkeypatch.setenv("AUDIODIFF_CONFIGS", str(tmp_path))
    assert isinstance(build(load_preset("mine")), UNet2D)
    with pytest.raises(FileNotFoundError, match=r"available: \['mine'\]"):
        load_preset("unet1d_small")


def _count_meta(name):
    cfg = load_preset(name)
    if cfg.get("mel_bands") == "auto":  # the data decides it (models.from_data); count at 64 bands
        cfg["mel_bands"] = 64
    with torch.device("meta"):
        net = build(cfg)
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name, low, high", [
    ("unet1d_small", 1e6, 5e6), ("unet1d_base", 30e6, 120e6), ("unet1d_large", 150e6, 250e6),
    ("unet2d_small", 1e6, 5e6), ("unet2d_base", 80e6, 150e6), ("unet2d_large", 150e6, 250e6),
    ("unet1d_mel_small", 4e6, 6e6)])
def test_preset_parameter_counts(name, low, high):
    n = _count_meta(name)
    assert low < n < high, f"{name}: {n / 1e6:.1f} M parameters outside ({low / 1e6:.0f}, {high / 1e6:.0f}) M"


# ------------------------------------------------------------------------------- mel bands as channels
def test_mel_bands_is_the_1d_net_on_bands_as_channels():
    """UNet1D(mel_bands=M) on (B, 1, M, T) is exactly UNet1D(in_channels=M) on the (B, M, T) view, same weights."""
    torch.manual_seed(0)
    mel_net = randomize(UNet1D(**{k: v for k, v in TINY1D.items() if k != "name"}, mel_bands=6, num_classes=3))
    flat = UNet1D(**{k: v for k, v in TINY1D.items() if k != "name"}, in_channels=6, num_classes=3).eval()
    flat.load_state_dict(mel_net.state_dict())
    x, c, lab = torch.randn(2, 1, 6, 13), torch.randn(2), torch.tensor([0, 2])
    y = mel_net(x, c, labels=lab)
    assert y.shape == x.shape
    torch.testing.assert_close(y, flat(x.reshape(2, 6, 13), c, labels=lab).reshape(2, 1, 6, 13), rtol=0, atol=0)
    assert y.abs().max() > 0
    rebuilt = build(mel_net.config)
    assert rebuilt.config == mel_net.config and rebuilt.config["mel_bands"] == 6
    assert "mel_bands" not in UNet1D(**{k: v for k, v in TINY1D.items() if k != "name"}).config  # waveform configs unchanged


def test_mel_bands_checks_its_input():
    net = UNet1D(**{k: v for k, v in TINY1D.items() if k != "name"}, mel_bands=6)
    with pytest.raises(ValueError, match=r"n_mels=6.*model.mel_bands"):
        net(torch.randn(2, 1, 8, 13), torch.zeros(2))
    with pytest.raises(ValueError, match="n_mels=6"):
        net(torch.randn(2, 1, 13), torch.zeros(2))
    with pytest.raises(ValueError, match="mel_bands must be"):
        UNet1D(mel_bands=-1)


def test_parameter_count_closed_form():
    """A one-level net without attention: count the parameters by hand."""
    C, E = 16, 64
    net = build(dict(name="unet1d", patch=1, channels=[C], factors=[1], blocks=[1], attention=[False], emb_dim=E,
                     head_dim=16))
    conv = lambda i, o, k=3: i * o * k + o
    gn = lambda c: 2 * c
    res = lambda i, o: gn(i) + conv(i, o) + E * 2 * o + 2 * o + gn(o) + conv(o, o) + (conv(i, o, 1) if i != o else 0)
    attn = gn(C) + C * 3 * C + 3 * C + 2 * C + C * C + C          # norm, qkv, q/k RMSNorm gains, proj
    cond = 256 * E + E + E * E + E                                # Fourier(256) -> MLP
    expect = cond + conv(1, C) + res(C, C) + res(2 * C, C) + 2 * res(C, C) + attn + gn(C) + conv(C, 1)
    assert sum(p.numel() for p in net.parameters()) == expect


# ------------------------------------------------------------------------- training-related checks
@pytest.mark.parametrize("tiny, shape", [(TINY1D, (2, 1, 77)), (TINY2D, (2, 1, 12, 18))])
def test_checkpointing_gradient_equals_plain(tiny, shape):
    net = randomize(build({**tiny, **COND})).train()
    x, c = torch.randn(*shape), torch.randn(2)
    kw = cond_inputs(2)

    def grads():
        net.zero_grad()
        net(x, c, **kw).pow(2).mean().backward()
        return [p.grad.clone() for p in net.parameters()]
    g_plain = grads()
    net.checkpointing = True
    assert net.config["checkpointing"] is True
    g_ck = grads()
    for a, b in zip(g_plain, g_ck):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name, shape", [("unet1d_small", (2, 1, 4001)), ("unet2d_small", (2, 1, 80, 63))])
def test_bf16_autocast_finite_at_small_presets(name, shape):
    net = build({**load_preset(name), **COND})
    randomize(net, std=0.02).train()
    x = torch.randn(*shape) * 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x, torch.tensor([-2.0, 1.5]), drop=torch.tensor([True, False]), **cond_inputs(2, frames=20))
        loss = y.float().pow(2).mean()
    loss.backward()
    assert torch.isfinite(y.float()).all() and y.abs().sum() > 0
    for n, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n


def test_small_unet1d_overfits_one_clip():
    """The unet1d_small preset memorises a 0.25 s, 440 Hz sine at 8 kHz: x0-prediction MSE falls >= 10x.

    Denoising at log-uniform noise levels in [0.02, 3] with the EDM input scaling c_in = 1/sqrt(sigma^2+0.25);
    the loss is evaluated on a fixed batch of levels and noise before and after 60 Adam steps.
    """
    torch.manual_seed(0)
    net = build(load_preset("unet1d_small")).train()
    t = torch.arange(2000) / 8000
    x0 = (0.5 * torch.sin(2 * math.pi * 440 * t))[None, None]

    def loss_at(sig, noise):
        c_in = (sig ** 2 + 0.25).rsqrt()[:, None, None]
        y = net((x0 + sig[:, None, None] * noise) * c_in, sig.log() / 4)
        return (y - x0).pow(2).mean()
    g = torch.Generator().manual_seed(1)
    eval_sig, eval_noise = torch.tensor([0.05, 0.2, 0.5, 1.0, 2.0]), torch.randn(5, 1, 2000, generator=g)
    with torch.no_grad():
        before = loss_at(eval_sig, eval_noise).item()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(60):
        sig = torch.empty(4).uniform_(math.log(0.02), math.log(3.0)).exp()
        loss = loss_at(sig, torch.randn(4, 1, 2000))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = loss_at(eval_sig, eval_noise).item()
    assert before == pytest.approx(0.125, rel=1e-3)      # zero-initialised output: mean(x0^2) = 0.5^2 / 2
    assert after < before / 10, (before, after)


def test_condition_embedding_null_rows_are_learned():
    emb = ConditionEmbedding(32, num_classes=3, pitch=True, vector_dim=2)
    names = {n for n, p in emb.named_parameters() if p.requires_grad}
    assert {"pitch_null", "vector_null", "label_emb.weight"} <= names
    assert emb.label_emb.num_embeddings == 4


# ---------------------------------------------------------------------------------------- compile
@pytest.mark.parametrize("top_norm", ["group", "position"])
def test_compiles_fullgraph_and_matches_eager(top_norm):
    """torch.compile traces the whole net (all conditions) without graph breaks; aot_eager backend."""
    net = randomize(build({**TINY1D, **COND, "top_norm": top_norm}))
    kw = {**cond_inputs(2), "drop": torch.tensor([True, False])}
    x, c = torch.randn(2, 1, 64), torch.randn(2)
    torch._dynamo.reset()
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, c, **kw), net(x, c, **kw), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_inductor_compile_matches_eager():
    """Inductor (the default backend) compiles a tiny net and matches eager to float32 rounding."""
    import os
    import shutil
    if os.environ.get("AUDIODIFF_TEST_INDUCTOR") != "1":
        pytest.skip("inductor's C++ code generation takes 40-150 s on a shared 2-core CPU; "
                    "set AUDIODIFF_TEST_INDUCTOR=1 to run it")
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("inductor needs a C++ compiler (g++) on this machine and none was found")
    net = randomize(build({**TINY1D, "top_norm": "position"}))     # GroupNorm and PositionNorm (level 0, head)
    x, c = torch.randn(2, 1, 64), torch.randn(2)
    torch._dynamo.reset()
    compiled = torch.compile(net)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, c), net(x, c), rtol=1e-4, atol=1e-5)


def _output_rank(net, bands, frames, n=160):
    """Rank of the (centred) outputs of `net` over `n` random inputs, the output head given random weights."""
    torch.manual_seed(0)
    torch.nn.init.normal_(net.body.out_conv.weight, std=0.1)
    with torch.no_grad():
        x = torch.randn(n, 1, bands, frames)
        y = net(x, torch.zeros(n)).reshape(n, -1).double()
    return int(torch.linalg.matrix_rank(y - y.mean(0), rtol=1e-7))


def test_a_first_level_narrower_than_the_bands_limits_every_output_and_is_named():
    """Closed form: the head is a convolution of the first level's channels[0] x frames features, so the outputs
    (bands x frames numbers) span at most channels[0] x frames directions; as wide as the bands, they span all."""
    from audiodiff.models import narrow_top_level

    bands, frames = 16, 8
    cfg = dict(name="unet1d", mel_bands=bands, channels=[4, 8], factors=[1, 2], blocks=[1, 1],
               attention=[False, False], top_norm="position")
    assert _output_rank(build(cfg), bands, frames) <= 4 * frames < bands * frames
    wide = {**cfg, "channels": [bands, 8]}
    assert _output_rank(build(wide), bands, frames) == bands * frames
    assert "model.channels[0]=4 is narrower than the 16 mel bands" in narrow_top_level(cfg)
    assert "model.channels[0] >= 16" in narrow_top_level(cfg)
    assert narrow_top_level(wide) is None
    assert narrow_top_level({**cfg, "mel_bands": 0}) is None          # a waveform net: nothing to say
    assert narrow_top_level({**cfg, "name": "unet2d"}) is None       # bands are an axis there, not channels
