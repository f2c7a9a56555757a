"""Training-time audio logging: one sampling closure on the EMA network, the pipeline's audio, vocoder built once."""
from pathlib import Path

import torch

from audiodiff import models, representations
from audiodiff.mel import MelSpec
from audiodiff.pipeline import Pipeline
from audiodiff.runs import vocoder as run_vocoders
from audiodiff.runs.checkpoint import load_checkpoint
from audiodiff.runs.weights import diffusion_net
from audiodiff.training.loop import sample_logger
from tests.helpers import TINY_UNET2D

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "run_v0_diffusion"


class Writer:
    """Records what the logger hands to TensorBoard."""

    def __init__(self):
        self.audio, self.figures = {}, {}

    def add_audio(self, tag, snd, step, sample_rate):
        self.audio[tag] = (snd.clone(), step, sample_rate)

    def add_figure(self, tag, fig, step):
        self.figures[tag] = (fig, step)


def titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_waveform_samples_are_the_pipelines_and_follow_the_weights_in_place():
    ck = load_checkpoint(OLD_RUN, train_state=False)
    net = diffusion_net(ck).eval()
    log = sample_logger(net, ck["meta"], representations.from_meta(ck["meta"]), "cpu", steps=2)
    for step in (4, 6):
        w = Writer()
        log(w, step)
        ref = Pipeline(net, ck["meta"], device="cpu").generate(n=2, steps=2, seed=step, progress=False)
        for i in range(2):
            assert torch.equal(w.audio[f"sample/{i}"][0], ref.audio[i, 0])
            assert w.audio[f"sample/{i}"][1:] == (step, 8000)
        assert titles(w.figures["sample/spectrogram"][0]) == titles(ref.plot()) == [
            f"sampler=dpmpp_2m, steps=2, seed={step}", f"sampler=dpmpp_2m, steps=2, seed={step + 1}"]
        with torch.no_grad():  # what EMA.update does between logs: the closure sees the new weights
            for p in net.parameters():
                p.mul_(1.05)


def test_mel_samples_are_the_pipelines_and_the_vocoder_is_built_once(monkeypatch):
    built = []
    real = run_vocoders.run_vocoder
    monkeypatch.setattr(run_vocoders, "run_vocoder", lambda cfg, mel: built.append(cfg) or real(cfg, mel))
    mel = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=32, f_max=4000.0)
    meta = {"kind": "diffusion", "model": dict(TINY_UNET2D), "objective": {"parameterization": "v"},
            "schedule": {"name": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0},
            "sampler": {"method": "euler", "steps": 25}, "representation": "mel", "sample_rate": 8000,
            "segment_samples": 2000, "conditions": {}, "vocoder": {"name": "griffinlim", "n_iter": 4}}
    net = models.build(meta["model"]).eval()
    log = sample_logger(net, meta, representations.from_meta(meta, mel), "cpu", steps=2)
    writers = [Writer(), Writer()]
    log(writers[0], 2)
    log(writers[1], 4)
    assert built == [meta["vocoder"]]  # once, when the logger is made
    for w, step in zip(writers, (2, 4)):
        ref = Pipeline(net, meta, device="cpu", mel=mel).generate(n=2, steps=2, seed=step, progress=False)
        assert ref.audio.shape[-1] == 31 * 64  # round(0.25 s * 8000 / 64) frames
        for i in range(2):
            assert torch.equal(w.audio[f"sample/{i}"][0], ref.audio[i, 0])
