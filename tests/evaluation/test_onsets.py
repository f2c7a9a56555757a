"""Onset counts against notes built with a known number of attacks (closed form: where each strike starts)."""
import numpy as np
import pytest

from audiodiff.evaluation.onsets import note_onsets, onset_times
from audiodiff.evaluation.pitch import PitchError

SR = 16000


def _strike(n, start_s, f0=220.0, decay_s=0.4, amp=0.5):
    """A plucked-string-like note: a few partials with an exponential decay, starting at `start_s`."""
    t = np.arange(n) / SR
    rel = t - start_s
    env = np.where(rel >= 0, np.exp(-np.clip(rel, 0, None) / decay_s), 0.0)
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3, 4))
    return amp * env * tone


def test_one_strike_reads_one_onset_at_its_start():
    y = _strike(2 * SR, 0.25)
    t = onset_times(y, SR)
    assert len(t) == 1 and abs(t[0] - 0.25) <= 0.035   # within two 16 ms frames of the strike


def test_a_second_strike_and_a_click_each_add_an_onset():
    y = _strike(2 * SR, 0.1) + _strike(2 * SR, 1.1, amp=0.4)
    t = onset_times(y, SR)
    assert len(t) == 2 and abs(t[0] - 0.1) <= 0.035 and abs(t[1] - 1.1) <= 0.035
    clicked = _strike(2 * SR, 0.1)
    rng = np.random.default_rng(0)
    clicked[int(0.8 * SR): int(0.8 * SR) + 80] += 0.3 * rng.standard_normal(80)   # a 5 ms broadband burst
    t = onset_times(clicked, SR)
    assert len(t) == 2 and abs(t[1] - 0.8) <= 0.035


def test_note_onsets_shares_and_clean_notes():
    notes = [_strike(2 * SR, 0.1), _strike(2 * SR, 0.1) + _strike(2 * SR, 1.0), np.zeros(2 * SR), _strike(2 * SR, 0.2)]
    r = note_onsets(notes, SR, voiced_fraction=[0.9, 0.8, 0.0, 0.0])
    assert [i["n_onsets"] for i in r["items"]] == [1, 2, 0, 1]
    assert r["one_onset"] == 0.5 and r["multi_onset"] == 0.25 and r["no_onset"] == 0.25
    assert r["mean_onsets"] == 1.0
    assert r["clean_notes"] == 0.25           # the last has one onset but no voiced frame
    assert note_onsets(notes, SR)["clean_notes"] is None


def test_bad_input_is_one_line():
    with pytest.raises(PitchError, match="voiced fractions"):
        note_onsets([np.zeros(100)], SR, voiced_fraction=[0.1, 0.2])
    with pytest.raises(PitchError, match="delta"):
        onset_times(np.zeros(100), SR, delta=1.5)
