"""A new representation, added in this file alone, trains and generates through the package (issue "Seams", item 1).

`Folded` shows what a representation is asked for and nothing else: mono audio `(B, 1, T)` folded into `fold`
channels `(B, fold, T / fold)` (space-to-depth along time), so a 1-D U-Net with `in_channels = fold` denoises it,
and unfolded back. Registering it is the only step: data, `sigma_data: auto`, training, the checkpoint, the
pipeline and generation never name it.
"""
from __future__ import annotations

import torch

from audiodiff import Pipeline, representations
from audiodiff.representations import Representation
from audiodiff.training import loop
from tests.helpers import tiny_cfg


class Folded(Representation):
    name = "folded"
    settings_keys = ("fold",)

    def __init__(self, sample_rate: int, fold: int = 4):
        super().__init__(sample_rate, 1)
        self.fold = int(fold)

    @property
    def hop(self) -> int:
        return self.fold

    def frames(self, samples: int) -> int:
        return samples // self.fold

    def min_samples(self, length: int) -> int:
        return length * self.fold

    def shape(self, n, length):
        return (n, self.fold, length)

    def encode(self, audio):
        mono = audio.mean(1)
        t = mono.shape[-1] // self.fold * self.fold
        return mono[:, :t].reshape(mono.shape[0], -1, self.fold).transpose(1, 2)

    def decode(self, x):
        return x.float().transpose(1, 2).reshape(x.shape[0], 1, -1)

    def network_kwargs(self):
        return {"in_channels": self.fold}

    def meta(self):
        return {**super().meta(), "fold": self.fold}

    def data_settings(self):
        return {**super().data_settings(), "fold": self.fold}

    @classmethod
    def from_settings(cls, data):
        return cls(int(data["sample_rate"]), int(data.get("fold", 4)))

    @classmethod
    def from_meta(cls, meta, contract=None):
        return cls(int(meta["sample_rate"]), int(meta["fold"]))


def test_a_representation_added_in_a_test_file_trains_and_generates(tmp_path, monkeypatch):
    monkeypatch.setitem(representations.REPRESENTATIONS, "folded", Folded)
    audio = torch.randn(2, 1, 64)
    rep = Folded(8000, fold=4)
    assert torch.equal(rep.decode(rep.encode(audio)), audio)  # folding loses nothing
    cfg = tiny_cfg(tmp_path / "run", steps=2)
    cfg["data"].update(representation="folded", fold=4)
    cfg["model"] = {**cfg["model"], "in_channels": "auto", "patch": 1}
    cfg["objective"]["sigma_data"] = "auto"  # measured in the folded space, by the representation
    run = loop.train(cfg)
    pipe = Pipeline.from_pretrained(run, device="cpu")
    assert pipe.net.in_channels == 4 and pipe.meta["fold"] == 4 and isinstance(pipe.rep, Folded)
    out = pipe.generate(n=2, labels=[60, 64], seconds=0.125, steps=2, seed=0, progress=False)
    assert out.audio.shape == (2, 1, 1000) and torch.isfinite(out.audio).all()
    again = Pipeline.from_pretrained(run, device="cpu").generate(n=2, labels=[60, 64], seconds=0.125, steps=2,
                                                                 seed=0, progress=False)
    assert torch.equal(out.audio, again.audio)
