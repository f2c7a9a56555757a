"""The scale of a training set as the denoiser sees it: `objective.sigma_data: auto`.

EDM's preconditioning (Karras et al. 2022) and its training noise levels assume `sigma_data` is the scale of the
data the network is asked to denoise. The right value differs by a factor of ten between our own recipes: a
loudness-normalised waveform at -20 dBFS has an RMS near 0.07, the normalised fsdd log-mel 0.76 (mean -0.58,
std 0.50). `sigma_data: auto` measures it once, at the start of a run, as the root mean square about zero (the
denoiser starts from x = x0 + sigma * noise around zero, so the offset counts) of the model-space training
targets: waveforms after loudness, mels after normalisation.

The measurement reads a fixed, evenly spaced set of at most `max_items` training items without touching any
random generator, so a run with `auto` draws the same batches as one given the number, and re-measuring on resume
gives the same value. The resolved number is what the run stores (meta.json `objective.sigma_data`): generation
and fine-tuning read it from there.
"""
from __future__ import annotations

import logging
import random

import numpy as np
import torch

from .collate import collate, split_batch

MAX_ITEMS = 512
log = logging.getLogger("audiodiff.train")


def model_space_rms(dataset, representation, max_items: int = MAX_ITEMS,
                    batch_size: int = 64) -> tuple[float, int]:
    """`(rms, n_items)`: the root mean square of up to `max_items` evenly spaced items of `dataset` in model space.

    Items go through the loop's own `collate` + `split_batch`, so they are measured in the space `representation`
    (:mod:`audiodiff.representations`) gives the network (a mel model on a waveform dataset: the mel computed from
    its audio). Every random generator is restored afterwards (random crops draw from them).
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("objective.sigma_data=auto: the training set is empty; nothing to measure")
    idx = np.unique(np.linspace(0, n - 1, num=min(n, max_items)).round().astype(int)).tolist()
    py_state, np_state = random.getstate(), np.random.get_state()
    total, count = 0.0, 0
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            for i in range(0, len(idx), batch_size):
                x0, _ = split_batch(collate([dataset[j] for j in idx[i:i + batch_size]]), representation)
                x0 = x0.double()
                total += float(x0.pow(2).sum())
                count += x0.numel()
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    rms = (total / count) ** 0.5
    if not rms > 0 or not np.isfinite(rms):
        raise ValueError(f"objective.sigma_data=auto: the training data measure RMS {rms} (all silent?); "
                         "set objective.sigma_data to a number > 0")
    return rms, len(idx)


def resolve_sigma_data(objective: dict, dataset, representation, max_items: int = MAX_ITEMS) -> dict:
    """`objective` with `sigma_data: auto` replaced by :func:`model_space_rms` of `dataset` (4 decimals, the number
    the run stores); any other `objective` is returned as it is."""
    if objective.get("sigma_data") != "auto":
        return objective
    rms, n = model_space_rms(dataset, representation, max_items=max_items)
    log.info("objective.sigma_data=auto: %.4f (RMS of %d training items in model space)", rms, n)
    return {**objective, "sigma_data": round(rms, 4)}
