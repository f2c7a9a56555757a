"""Pitch accuracy (pYIN) on synthesized sines whose pitch is known exactly."""
import math

import numpy as np
import pytest
import torch

from audiodiff.evaluation.pitch import PitchError, pitch_accuracy, plot_pitch_scatter

SR = 16000


def _sines(midis, seconds=0.4, sr=SR, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    hz = 440.0 * 2.0 ** ((np.asarray(midis, float)[:, None] - 69) / 12)
    return torch.from_numpy(amp * np.sin(2 * np.pi * hz * t)).float().unsqueeze(1)  # (B, 1, T)


MIDIS = [45, 52, 57, 60, 64.3, 69, 76, 81]


def test_sines_at_asked_pitch_are_all_correct_with_small_error():
    r = pitch_accuracy(_sines(MIDIS), SR, MIDIS)
    assert r["accuracy"] == 1.0 and r["n"] == len(MIDIS) and r["n_unvoiced"] == 0
    est = np.array([it["estimated_midi"] for it in r["items"]])
    # pYIN's pitch grid is 10 cents; the median over frames lands within one grid step of the truth
    np.testing.assert_allclose(est, MIDIS, atol=0.1)
    assert r["median_abs_cents"] <= 10


def test_sines_one_semitone_off_are_all_wrong():
    asked = [m + 1 for m in MIDIS]
    r = pitch_accuracy(_sines(MIDIS), SR, asked)
    assert r["accuracy"] == 0.0
    cents = np.array([it["cents_error"] for it in r["items"]])
    np.testing.assert_allclose(cents, -100.0, atol=10)


def test_tolerance_boundary_and_octave_errors():
    # 30 cents sharp: inside 50 cents, outside 20 cents
    audio = _sines([60.3, 67.3])
    assert pitch_accuracy(audio, SR, [60, 67])["accuracy"] == 1.0
    assert pitch_accuracy(audio, SR, [60, 67], tolerance_cents=20)["accuracy"] == 0.0
    octave = pitch_accuracy(_sines([72]), SR, [60], fmin=100, fmax=1200)
    assert octave["octave_errors"] == 1 and octave["accuracy"] == 0.0


def test_silence_is_unvoiced_and_counts_as_wrong(tmp_path):
    audio = torch.cat([_sines([60]), torch.zeros(1, 1, int(0.4 * SR))])
    r = pitch_accuracy(audio, SR, [60, 60])
    assert r["accuracy"] == 0.5 and r["n_unvoiced"] == 1
    assert math.isnan(r["items"][1]["estimated_midi"]) and r["items"][1]["correct"] is False
    png = plot_pitch_scatter(r, tmp_path / "pitch.png")
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_raises():
    with pytest.raises(PitchError, match="asked pitches"):
        pitch_accuracy(_sines([60, 62]), SR, [60])
    with pytest.raises(PitchError, match="mono"):
        pitch_accuracy(torch.zeros(2, 2, 100), SR, [60, 60])
    with pytest.raises(PitchError, match="NaN"):
        pitch_accuracy([np.array([0.0, np.nan])], SR, [60])
