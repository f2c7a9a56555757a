"""The vocoder contract: build by name, refuse foreign mel contracts / shapes, frames * hop output, save/load."""
import json

import pytest
import torch

from audiodiff import vocoders
from audiodiff.mel import MelContractError, MelSpec
from audiodiff.runs.vocoder import load_vocoder

MEL = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=32)
TINY = {
    "griffinlim": {"name": "griffinlim", "n_iter": 4},
    "neural": {"name": "neural", "dim": 16, "num_layers": 1},
    "diffusion": {"name": "diffusion", "steps": 2, "net": {"patch": 4, "channels": [16, 32], "factors": [1, 2],
                                                            "blocks": [1, 1], "attention": [False, False]}},
}


def _mel(frames=20, batch=2):
    wav = torch.randn(batch, (frames - 1) * MEL.hop_length) * 0.1
    return MEL(wav)


@pytest.mark.parametrize("name", sorted(TINY))
def test_build_names_and_output_length(name):
    voc = vocoders.build(TINY[name], mel=MEL)
    assert voc.name == name and voc.mel == MEL
    mel = _mel(frames=20)
    assert mel.shape == (2, 32, 20)
    out = voc(mel)
    assert out.shape == (2, 1, 20 * MEL.hop_length)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_unknown_name_and_setting_list_allowed():
    with pytest.raises(vocoders.VocoderError, match="allowed.*diffusion.*griffinlim.*neural"):
        vocoders.build({"name": "wavenet"}, mel=MEL)
    with pytest.raises(vocoders.VocoderError, match="allowed settings.*n_iter"):
        vocoders.build({"name": "griffinlim", "iterations": 3}, mel=MEL)
    with pytest.raises(vocoders.VocoderError, match="mel contract"):
        vocoders.build({"name": "griffinlim"})


@pytest.mark.parametrize("name", sorted(TINY))
def test_refuses_other_contract_and_wrong_shape(name):
    voc = vocoders.build(TINY[name], mel=MEL)
    other = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=32, f_max=3000.0, norm_max=3.0)
    with pytest.raises(MelContractError, match=r"f_max: None != 3000.0.*norm_max: 2.5 != 3.0"):
        voc(_mel(), mel_spec=other)
    with pytest.raises(MelContractError, match=r"\(B, 32, frames\).*\(2, 40, 20\)"):
        voc(torch.zeros(2, 40, 20))
    with pytest.raises(MelContractError, match="shape"):
        voc(torch.zeros(32, 20))
    voc(_mel(), mel_spec=MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=32))  # equal contract: fine


@pytest.mark.parametrize("name", sorted(TINY))
def test_save_from_pretrained_round_trip(name, tmp_path):
    voc = vocoders.build(TINY[name], mel=MEL).eval()
    mel = _mel()
    with torch.no_grad():
        ref = voc(mel)
    voc.save(tmp_path / "v")
    files = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert files == ["mel.json", "model.safetensors", "vocoder.json"]
    assert json.loads((tmp_path / "v" / "vocoder.json").read_text())["name"] == name
    assert MelSpec.load(tmp_path / "v" / "mel.json") == MEL
    loaded = vocoders.Vocoder.from_pretrained(tmp_path / "v")
    assert type(loaded) is type(voc) and loaded.config() == voc.config()
    with torch.no_grad():
        assert torch.equal(loaded(mel), ref)
    assert torch.equal(load_vocoder(tmp_path / "v")(mel), ref)


def test_from_pretrained_checks_kind_and_folder(tmp_path):
    vocoders.build(TINY["griffinlim"], mel=MEL).save(tmp_path / "gl")
    with pytest.raises(vocoders.VocoderError, match="'griffinlim' vocoder, not 'neural'"):
        vocoders.NeuralVocoder.from_pretrained(tmp_path / "gl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="empty"):
        load_vocoder(tmp_path / "empty")


def test_center_false_contract_is_refused():
    with pytest.raises(MelContractError, match="center"):
        vocoders.build({"name": "griffinlim"}, mel=MelSpec(center=False))
