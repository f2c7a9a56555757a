"""objective.sigma_data=auto: the training data's RMS in model space, measured without touching any generator."""
import json
import random

import numpy as np
import pytest
import torch

from audiodiff import representations
from audiodiff.data.build import build_dataset
from audiodiff.data.stats import model_space_rms
from audiodiff.mel import MelSpec
from audiodiff.runs.checkpoint import load_checkpoint
from audiodiff.training import loop, runtime
from tests.helpers import tiny_cfg, tiny_mel_cfg
from tests.training.test_loop import losses

WAVE = representations.Waveform(8000)  # the representations the items are measured in
MEL = representations.Mel(MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=8))


class Constant(torch.utils.data.Dataset):
    """Item i: a waveform of +-amps[i] (alternating sign), so its mean square is amps[i]^2 exactly."""

    def __init__(self, amps, length=64, draw=False):
        self.amps, self.length, self.draw = amps, length, draw

    def __len__(self):
        return len(self.amps)

    def __getitem__(self, i):
        if self.draw:  # a random crop would draw like this
            random.random(), np.random.rand(), torch.rand(1)
        sign = torch.tensor([1.0, -1.0]).repeat(self.length // 2)
        return {"audio": (self.amps[i] * sign).view(1, -1), "pitch": 60}


def test_rms_is_the_closed_form_over_evenly_spaced_items():
    amps = [0.1, 0.2, 0.3, 0.4, 0.5]
    rms, n = model_space_rms(Constant(amps), WAVE, batch_size=2)
    assert n == 5 and rms == pytest.approx(float(np.sqrt(np.mean(np.square(amps)))), rel=1e-6)
    # 3 of 5 items: indices 0, 2, 4 (evenly spaced, first and last included)
    rms3, n3 = model_space_rms(Constant(amps), WAVE, max_items=3)
    assert n3 == 3 and rms3 == pytest.approx(float(np.sqrt(np.mean(np.square([0.1, 0.3, 0.5])))), rel=1e-6)


def test_mel_offset_counts_in_the_rms():
    class Mel(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):  # mean -0.6, std 0.5 about it: RMS sqrt(0.36 + 0.25)
            x = torch.full((1, 8, 10), -0.6)
            x[:, :, ::2] += 0.5
            x[:, :, 1::2] -= 0.5
            return {"mel": x}

    rms, _ = model_space_rms(Mel(), MEL)
    assert rms == pytest.approx(0.61 ** 0.5, rel=1e-6)


def test_measuring_leaves_every_generator_where_it_was():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    model_space_rms(Constant([0.1, 0.2, 0.3], draw=True), WAVE)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_silent_or_empty_data_is_refused():
    with pytest.raises(ValueError, match="sigma_data=auto.*empty"):
        model_space_rms(Constant([]), WAVE)
    with pytest.raises(ValueError, match="sigma_data=auto.*silent"):
        model_space_rms(Constant([0.0, 0.0]), WAVE)


@pytest.mark.parametrize("make", [tiny_cfg, tiny_mel_cfg], ids=["waveform", "mel"])
def test_auto_run_stores_the_number_and_trains_like_the_number(tmp_path, make):
    auto = make(tmp_path / "auto", steps=2)
    auto["objective"]["sigma_data"] = "auto"
    loop.train(auto)
    stored = load_checkpoint(tmp_path / "auto")["meta"]["objective"]["sigma_data"]
    cfg = make(tmp_path / "x", steps=2)
    data = build_dataset(cfg["data"], split="train", seed=0)
    rms, _ = model_space_rms(data["dataset"], representations.from_data(cfg["data"]))
    assert isinstance(stored, float) and stored == round(rms, 4)
    assert 0.01 < stored < 2.0
    given = make(tmp_path / "given", steps=2)
    given["objective"]["sigma_data"] = stored
    loop.train(given)
    assert losses(tmp_path / "auto") == losses(tmp_path / "given")  # the measurement drew nothing
    meta = json.loads((load_checkpoint(tmp_path / "auto")["dir"] / "meta.json").read_text())
    assert meta["objective"]["sigma_data"] == stored


def test_a_bad_sigma_data_names_auto(tmp_path):
    cfg = tiny_cfg(tmp_path / "bad")
    cfg["objective"]["sigma_data"] = "big"
    with pytest.raises(runtime.TrainingError, match=r"objective.sigma_data.*auto"):
        loop.train(cfg)
