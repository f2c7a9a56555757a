"""audiodiff.mel.MelSpec: equals librosa's mel for every setting, contract bookkeeping, clear errors."""
import dataclasses
import itertools
import json

import librosa
import numpy as np
import pytest
import torch

from audiodiff.mel import MelContractError, MelSpec

SR = 16000
BASE = dict(sample_rate=SR, n_fft=512, hop_length=128, n_mels=40, f_min=30.0, f_max=7000.0)


def _batch(b: int = 3, n: int = 4000) -> np.ndarray:
    """`(B, T)` float32: a different chirp + noise per item, loud at the edges so padding matters."""
    rng = np.random.default_rng(1)
    t = np.arange(n) / SR
    items = [0.5 * np.sin(2 * np.pi * (200 + 300 * k) * t * (1 + 2 * t)) + 0.1 * rng.standard_normal(n)
             for k in range(b)]
    return np.stack(items).astype(np.float32)


def _librosa_mel(x: np.ndarray, m: MelSpec) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=x, sr=m.sample_rate, n_fft=m.n_fft, win_length=m.win_length, hop_length=m.hop_length,
        window="hann", center=m.center, pad_mode=m.pad_mode, power=m.power, n_mels=m.n_mels,
        fmin=m.f_min, fmax=m.f_max, htk=m.mel_scale == "htk", norm=m.norm,
    )


PADDING = [(True, "reflect"), (True, "constant"), (False, "reflect")]


@pytest.mark.parametrize(
    "mel_scale,norm,power,padding",
    list(itertools.product(["slaney", "htk"], ["slaney", None], [1.0, 2.0], PADDING)),
)
def test_power_mel_equals_librosa(mel_scale, norm, power, padding):
    center, pad_mode = padding
    m = MelSpec(**BASE, mel_scale=mel_scale, norm=norm, power=power, center=center, pad_mode=pad_mode,
                win_length=400 if power == 2.0 else None)
    x = _batch()
    ours = m.power_mel(torch.from_numpy(x)).double().numpy()
    assert ours.shape == (3, m.n_mels, m.frames(x.shape[1]))
    for b in range(len(x)):  # a batch gives each item's own mel
        ref = _librosa_mel(x[b], m)
        assert ref.shape == ours[b].shape
        np.testing.assert_allclose(ours[b], ref, rtol=1e-4, atol=0)


def test_settings_really_change_the_mel():
    """Guard for the test above: each setting it sweeps changes librosa's answer by far more than 1e-4."""
    x = _batch(1)[0]
    base = MelSpec(**BASE)
    ref = _librosa_mel(x, base)
    for change in [dict(mel_scale="htk"), dict(norm=None), dict(power=2.0), dict(pad_mode="constant"),
                   dict(win_length=400)]:
        other = _librosa_mel(x, dataclasses.replace(base, **change))
        assert np.abs(other - ref).max() > 1e-2 * np.abs(ref).max(), change


def test_filterbank_is_librosas():
    for scale, norm in itertools.product(["slaney", "htk"], ["slaney", None]):
        m = MelSpec(**BASE, mel_scale=scale, norm=norm)
        ref = librosa.filters.mel(sr=SR, n_fft=512, n_mels=40, fmin=30.0, fmax=7000.0, htk=scale == "htk", norm=norm)
        np.testing.assert_allclose(m.filterbank().numpy(), ref, rtol=1e-6, atol=1e-9)


def test_log_mel_and_call():
    m = MelSpec(**BASE)
    x = _batch()
    ref = np.stack([_librosa_mel(x[b], m) for b in range(len(x))])
    log_ref = np.log(np.maximum(ref, m.log_floor))
    np.testing.assert_allclose(m.log_mel(torch.from_numpy(x)).numpy(), log_ref, rtol=0, atol=1e-4)
    out = m(torch.from_numpy(x)[:, None])  # (B, 1, T) is accepted too
    expected = (log_ref - m.norm_min) / (m.norm_max - m.norm_min) * 2 - 1
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-4)
    with pytest.raises(MelContractError, match="mono"):
        m(torch.zeros(2, 2, 4000))
    with pytest.raises(MelContractError, match=r"\(B, T\)"):
        m.power_mel(torch.zeros(4000))


def test_normalize_denormalize_inverse():
    m = MelSpec(norm_min=-12.0, norm_max=3.0)
    torch.testing.assert_close(m.normalize(torch.tensor([-12.0, 3.0, -4.5])), torch.tensor([-1.0, 1.0, 0.0]))
    x = torch.randn(2, 80, 50, dtype=torch.float64) * 5
    torch.testing.assert_close(m.denormalize(m.normalize(x)), x)
    torch.testing.assert_close(m.normalize(m.denormalize(x)), x)
    # no clamping outside the range
    assert m.normalize(torch.tensor([-20.0])).item() < -1


@pytest.mark.parametrize("center", [True, False])
def test_frames_matches_output(center):
    m = MelSpec(**BASE, center=center)
    for n in [512, 513, 640, 1000, 4000, 4001]:
        out = m(torch.zeros(2, n))
        assert out.shape == (2, m.n_mels, m.frames(n)), (n, out.shape)
        assert m.frames(n) == _librosa_mel(np.zeros(n, np.float32), m).shape[1]


def test_too_short_waveform_raises():
    with pytest.raises(MelContractError, match="n_fft"):
        MelSpec(**BASE, center=False).power_mel(torch.zeros(1, 100))
    with pytest.raises(MelContractError, match="reflect"):
        MelSpec(**BASE).power_mel(torch.zeros(1, 200))


# ----------------------------------------------------------------------------- contract bookkeeping
def test_dict_and_json_round_trip(tmp_path):
    m = MelSpec(**BASE, mel_scale="htk", norm=None, power=2.0, win_length=400)
    assert MelSpec.from_dict(m.to_dict()) == m
    assert MelSpec.from_dict(dict(reversed(list(m.to_dict().items())))).fingerprint() == m.fingerprint()
    m.save(tmp_path / "mel.json")
    back = MelSpec.load(tmp_path / "mel.json")
    assert back == m and back.fingerprint() == m.fingerprint()
    assert json.loads((tmp_path / "mel.json").read_text())["n_mels"] == 40
    with pytest.raises(MelContractError, match=r"unknown MelSpec fields \['hop'\]; allowed: .*hop_length"):
        MelSpec.from_dict({**m.to_dict(), "hop": 3})


def test_fingerprint_canonical_types():
    a = MelSpec(f_min=0, power=1, norm_max=2.5)
    b = MelSpec(f_min=0.0, power=1.0, norm_max=2.5)
    assert a == b and a.fingerprint() == b.fingerprint()
    assert isinstance(a.f_min, float) and isinstance(MelSpec(n_fft=1024.0).n_fft, int)
    assert len(a.fingerprint()) == 12 and a.fingerprint() == MelSpec().fingerprint()


# A different valid value for every field.
CHANGES = dict(sample_rate=24000, n_fft=2048, win_length=800, hop_length=200, n_mels=64, f_min=20.0,
               f_max=8000.0, mel_scale="htk", norm=None, power=2.0, center=False, pad_mode="constant",
               log_floor=1e-6, norm_min=-12.0, norm_max=3.0)


def test_fingerprint_changes_with_every_field():
    base = MelSpec()
    assert set(CHANGES) == {f.name for f in dataclasses.fields(MelSpec)}
    seen = {base.fingerprint()}
    for name, value in CHANGES.items():
        other = dataclasses.replace(base, **{name: value})
        fp = other.fingerprint()
        assert fp not in seen, name
        seen.add(fp)
        assert set(base.differences(other)) == {name}
        with pytest.raises(MelContractError, match=name) as ei:
            base.check_compatible(other)
        assert repr(getattr(base, name)) in str(ei.value) and repr(value) in str(ei.value)
    base.check_compatible(MelSpec.from_dict(base.to_dict()))  # equal contracts pass


def test_check_compatible_lists_all_differing_fields():
    a = MelSpec()
    b = dataclasses.replace(a, n_mels=64, hop_length=200, norm=None)
    with pytest.raises(MelContractError, match="3 field") as ei:
        a.check_compatible(b, what="model and vocoder mel contracts")
    msg = str(ei.value)
    assert "model and vocoder" in msg
    for name in ("n_mels", "hop_length", "norm"):
        assert name in msg
    assert "n_fft" not in msg


def test_check_mel_shape():
    m = MelSpec(n_mels=80)
    m.check_mel(torch.zeros(2, 80, 10))
    with pytest.raises(MelContractError, match=r"\(B, 80, frames\)"):
        m.check_mel(torch.zeros(2, 64, 10), who="vocoder input")


@pytest.mark.parametrize("kwargs,match", [
    (dict(sample_rate=16000, f_max=9000.0), r"f_max=9000.0.*f_min < f_max <= Nyquist \(8000.0 Hz\)"),
    (dict(sample_rate=16000, f_min=8000.0), r"f_min.*Nyquist \(8000.0 Hz\)"),
    (dict(f_min=100.0, f_max=50.0), r"f_max"),
    (dict(n_fft=512, win_length=1024), r"win_length.*1..n_fft \(512\)"),
    (dict(mel_scale="mel"), r"mel_scale.*slaney.*htk"),
    (dict(norm="l2"), r"norm.*slaney"),
    (dict(power=3.0), r"power.*1.0, 2.0"),
    (dict(pad_mode="edge"), r"pad_mode.*reflect.*constant"),
    (dict(hop_length=0), r"hop_length"),
    (dict(hop_length=256.5), r"hop_length=256.5.*integer"),
    (dict(n_mels=-1), r"n_mels"),
    (dict(log_floor=0.0), r"log_floor"),
    (dict(norm_min=3.0, norm_max=2.5), r"norm_max"),
    (dict(center="yes"), r"center.*True or False"),
    (dict(f_min=float("nan")), r"f_min"),
])
def test_bad_values_raise_naming_allowed(kwargs, match):
    with pytest.raises(MelContractError, match=match):
        MelSpec(**kwargs)
    assert issubclass(MelContractError, ValueError)


def test_a_filterbank_first_made_under_inference_mode_still_trains():
    """The cached filterbank is a normal tensor: an evaluation under inference_mode first, then a training step."""
    from audiodiff.mel import _FB_CACHE

    spec = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=24, f_max=3999.0)
    _FB_CACHE.pop(spec.fingerprint(), None)
    with torch.inference_mode():
        spec(torch.randn(1, 2048))
    x = torch.randn(1, 2048, requires_grad=True)
    spec.log_mel(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
