"""Judge classifiers: a small log-mel CNN trained on real recordings, used to score generated audio.

DiffWave (Kong et al. 2021) scores SC09 samples with a classifier trained on the real digits: its class
probabilities give accuracy / IS / mIS, its penultimate layer gives the features for FID
(:mod:`audiodiff.evaluation.metrics`). This module trains such a judge on any labeled manifest.

The network is a VGG-style stack (conv3x3 - BatchNorm - ReLU - maxpool, Simonyan & Zisserman 2015) on
:class:`audiodiff.mel.MelSpec` log-mels, mean-pooled over time, then one hidden layer (the *features*)
and a linear classifier. Training crops or places each clip at a random offset in a fixed window and
applies a random gain, so the judge does not key on onset position or level. It trains on the one training
runtime (:mod:`audiodiff.training.runtime`; :class:`JudgeTask` supplies the step), so a judge training into a
folder is locked, checkpointed after each epoch and resumed exactly when called again. After training, one
temperature is fitted on the held-out part (temperature scaling, Guo et al. 2017): a judge trained to
near-zero loss is over-confident, and IS / mIS read its probabilities, mIS especially their tails.

Saved as `judge.safetensors` (weights) + `judge.json` (label vocabulary, MelSpec, clip length, network
settings) + `meta.json` (the run meta: `kind: judge`, `format_version`; :mod:`audiodiff.runs.meta`); loading
executes no code from the folder and refuses a folder or run of another kind, naming its meta.json.

One module per job: `net.py` (the network, its mel, the window), `model.py` (:class:`Judge`: score, save, load),
`train.py` (:func:`train_judge` and its runtime task :class:`JudgeTask`); their names are re-exported here.
"""
from .model import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, Judge
from .net import JudgeError, JudgeNet, default_mel, fit_length
from .train import JudgeTask, fit_temperature, judge_vocabulary, load_clips, train_judge

__all__ = ["JudgeNet", "Judge", "JudgeError", "JudgeTask", "default_mel", "train_judge", "load_clips", "fit_length",
           "WEIGHTS_NAME", "CONFIG_NAME", "FORMAT_VERSION", "fit_temperature", "judge_vocabulary"]
