"""Vocos-style neural vocoder: the iSTFT head against torch.istft, discriminator shapes, overfitting one clip."""
import math

import torch

from audiodiff import audio, losses
from audiodiff.mel import MelSpec
from audiodiff.vocoders import GriffinLimVocoder, NeuralVocoder
from audiodiff.vocoders.neural import (
    MAX_MAGNITUDE, ISTFTHead, MultiPeriodDiscriminator, MultiResolutionDiscriminator,
)


def test_istft_head_reproduces_a_given_spectrogram():
    # With one-hot frame features, the head's weight columns hold each frame's log-magnitude and phase,
    # so the head must return exactly torch.istft of that spectrogram, i.e. the original signal.
    n_fft, hop = 256, 64
    x = torch.randn(1, 40 * hop) * 0.05
    S = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)  # (1, 129, 41)
    S = S + 1e-6  # no exact zeros (log)
    frames = S.shape[-1]
    assert S.abs().max() < MAX_MAGNITUDE
    head = ISTFTHead(frames, n_fft, hop)
    with torch.no_grad():
        head.out.weight.copy_(torch.cat([S.abs().log()[0], S.angle()[0]], 0))
        head.out.bias.zero_()
    y = head(torch.eye(frames)[None])
    assert y.shape == (1, frames * hop)
    assert torch.allclose(y[:, : x.shape[-1]], x, atol=1e-5)


def test_head_clamps_the_magnitude():
    head = ISTFTHead(4, 64, 16)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.fill_(20.0)  # exp(20) >> MAX_MAGNITUDE
    S = head.spectrum(torch.zeros(1, 3, 4))
    assert torch.allclose(S.abs(), torch.full_like(S.abs(), MAX_MAGNITUDE * abs(math.cos(20.0) + 1j * math.sin(20.0))))


def test_discriminators_return_scores_and_features():
    wav = torch.randn(2, 1, 4000)
    mpd = MultiPeriodDiscriminator((2, 3), channels=(4, 8))
    mrd = MultiResolutionDiscriminator(((256, 64, 256), (128, 32, 128)), channels=4)
    for d, n in ((mpd, 2), (mrd, 2)):
        outs = d(wav)
        assert len(outs) == n
        for score, feats in outs:
            assert score.shape[0] == 2 and len(feats) >= 3
            assert all(f.shape[0] == 2 for f in feats)


def test_parameter_count_of_the_default_size():
    voc = NeuralVocoder(MelSpec())  # dim 384, 8 ConvNeXt blocks, n_fft 1024
    dim, inter, n_mels, k = 384, 1152, 80, 7
    block = dim * k + dim + 2 * dim + dim * inter + inter + inter * dim + dim + dim
    expect = n_mels * dim * k + dim + 2 * dim + 8 * block + 2 * dim + dim * 1026 + 1026
    assert voc.num_parameters() == expect


def test_tiny_vocoder_overfits_one_clip(shared_data):
    torch.manual_seed(0)
    mel_spec = MelSpec()
    wav, sr = audio.load(shared_data / "ljspeech_mini" / "wavs" / "LJ001-0002.wav")
    assert sr == mel_spec.sample_rate
    wav = wav[:, 8192: 8192 + 64 * 256]
    mel = mel_spec(wav)
    gl8 = GriffinLimVocoder(mel_spec, n_iter=8)(mel)
    voc = NeuralVocoder(mel_spec, dim=64, num_layers=2)
    opt = torch.optim.Adam(voc.parameters(), lr=1e-2)

    def scores():
        with torch.no_grad():
            y = voc(mel)
        return float(losses.mrstft_distance(wav, y)), float(losses.mel_l1(wav, y, mel_spec))

    init_mr, init_mel = scores()
    for _ in range(120):
        fake = voc.synthesize(mel)[..., : wav.shape[-1]]
        loss = 45 * (mel_spec.log_mel(wav) - mel_spec.log_mel(fake[:, 0])).abs().mean() + losses.mrstft_distance(wav, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mr, mel_err = scores()
    gl_mel = float(losses.mel_l1(wav, gl8, mel_spec))
    print(f"MR-STFT init {init_mr:.3f} -> {mr:.3f}; mel L1 init {init_mel:.3f} -> {mel_err:.3f} (GL-8: {gl_mel:.3f})")
    assert mr < 0.6 * init_mr
    assert mel_err < 0.35 * init_mel
