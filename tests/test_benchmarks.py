"""The benchmark scripts run end to end at tiny sizes and write the rows the device run reads (no timings asserted)."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_networks_benchmark_rows(tmp_path):
    out = tmp_path / "net.json"
    _module("networks").main(["--tiny", "--presets", "unet1d_small", "--peers", "none", "--iters", "1",
                              "--sample-iters", "1", "--length", "2048", "--out", str(out)])
    rows = json.loads(out.read_text())["results"]
    train = [r for r in rows if r["what"] == "train_step"]
    sample = [r for r in rows if r["what"] == "sample"]
    flops = [r for r in rows if r["what"] == "target_flops"]
    assert [r["net"] for r in train] == ["unet1d_small"] and train[0]["finite"] is True
    assert train[0]["audio_s_per_s"] > 0 and train[0]["tflop_per_step"] > 0 and sample[0]["ms_per_nfe"] > 0
    # the meta-device count at the GPU target shape: 16 x 65,536 samples; params as built from the preset
    assert flops[0]["params_M"] == pytest.approx(4.54, abs=0.01) and flops[0]["tflop_per_step"] > 0.1
    assert not [r for r in rows if "error" in r]


def test_vocoder_benchmark_speed_table_without_peers(shared_data, tmp_path):
    out = tmp_path / "voc.json"
    _module("vocoders").main(["--data", str(shared_data), "--no-quality", "--peers", "none", "--batch", "1",
                              "--seconds", "0.5", "--repeats", "1", "--diffusion-steps", "1", "--gl-iters", "2",
                              "--max-utts", "1", "--out", str(out)])
    rows = json.loads(out.read_text())["speed_table"]
    names = [r["vocoder"] for r in rows]
    assert names[:2] == ["ours griffinlim-2", "peer torchaudio-gl-2"]
    assert any(n.startswith("ours neural (untrained") for n in names)
    assert any(n.startswith("ours diffusion 1 steps") for n in names)
    assert all("error" not in r and math.isfinite(r["x_real_time"]) and r["x_real_time"] > 0 for r in rows)
    gl = rows[0]
    assert gl["peer"] == "peer torchaudio-gl-2"
    assert gl["speedup_vs_peer"] == pytest.approx(gl["x_real_time"] / rows[1]["x_real_time"])


def test_patch_line_measure_finds_a_line_and_not_noise(tmp_path):
    """A tone at exactly sr / patch stands far above its band; white noise alone does not (the measure can fail)."""
    import numpy as np
    import soundfile as sf

    lines = _module("patch_lines")
    sr, n = 8000, 2000
    rng = np.random.default_rng(0)
    noise = 0.1 * rng.standard_normal(n)
    tone = noise + 0.05 * np.sin(2 * np.pi * 1000 * np.arange(n) / sr)      # 1 kHz = 8000 / 8
    sf.write(tmp_path / "noise.wav", noise, sr)
    sf.write(tmp_path / "tone.wav", tone, sr)
    with_line = lines.line_strength(tone, sr, patch=8)
    assert [round(r["hz"]) for r in with_line] == [1000, 2000, 3000]
    assert with_line[0]["above_db"] > 20 and with_line[1]["above_db"] < 12
    assert max(r["above_db"] for r in lines.line_strength(noise, sr, patch=8)) < 12
    assert lines.main([str(tmp_path / "noise.wav"), "--patch", "8"]) < 12
