"""Diffusion vocoder: wiring to UNet1D / Denoiser / samplers, step count, determinism, a decreasing loss."""
import pytest
import torch

from audiodiff import objectives, schedules
from audiodiff.mel import MelSpec
from audiodiff.vocoders.diffusion import DiffusionVocoder

MEL = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=32)
NET = {"patch": 4, "channels": [16, 32], "factors": [1, 2], "blocks": [1, 1], "attention": [False, False]}


def test_net_takes_the_mel_as_local_condition_and_sampler_uses_the_schedule():
    voc = DiffusionVocoder(MEL, net=NET, steps=6, sampler="dpmpp_2m", sigma_max=2.0)
    assert voc.net.config["local_channels"] == 32 and voc.net.config["in_channels"] == 1
    assert torch.allclose(voc.sigmas(), schedules.karras(6, 0.002, 2.0, 7.0))
    seen = []
    voc.net.register_forward_hook(lambda m, args, kw, out: seen.append((args[0].shape, kw["local"].shape)),
                                  with_kwargs=True)
    mel = MEL(torch.randn(2, 19 * 64) * 0.1)
    out = voc(mel)
    assert out.shape == (2, 1, 20 * 64)
    assert len(seen) == 6  # dpmpp_2m: one network evaluation per step
    assert all(x == (2, 1, 20 * 64) and loc == (2, 32, 20) for x, loc in seen)


def test_output_is_reproducible_and_seed_dependent():
    voc = DiffusionVocoder(MEL, net=NET, steps=2)
    mel = MEL(torch.randn(1, 15 * 64) * 0.1)
    a, b = voc(mel), voc(mel)
    assert torch.equal(a, b)
    voc2 = DiffusionVocoder(MEL, net=NET, steps=2, seed=1)
    voc2.load_state_dict(voc.state_dict())
    assert not torch.allclose(voc2(mel), a)


def test_denoiser_loss_falls_on_one_clip():
    torch.manual_seed(0)
    voc = DiffusionVocoder(MEL, net=NET)
    t = torch.arange(16 * 64) / 8000
    wav = (0.3 * torch.sin(2 * torch.pi * 220 * t))[None, None]
    mel = MEL(wav)[..., :-1]  # frames * hop samples <-> frames mel frames
    sigma = torch.full((4,), 0.05)
    noise = torch.randn(4, 1, wav.shape[-1], generator=torch.Generator().manual_seed(1))
    batch, local = wav.expand(4, -1, -1), mel.expand(4, -1, -1)
    objective = objectives.build_objective(voc.objective_cfg)  # the training objective, apart from the denoiser
    with torch.no_grad():
        first = float(objective.loss(voc.denoiser, batch, sigma, noise, local=local))
    opt = torch.optim.Adam(voc.parameters(), lr=2e-3)
    for _ in range(30):
        loss = objective.loss(voc.denoiser, batch, sigma, noise, local=local)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(objective.loss(voc.denoiser, batch, sigma, noise, local=local)) < 0.5 * first


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="allowed"):
        DiffusionVocoder(MEL, net=NET, sampler="plms")
    with pytest.raises(ValueError, match="unet1d"):
        DiffusionVocoder(MEL, net={**NET, "name": "unet2d"})
