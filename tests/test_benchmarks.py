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
                              "--max-utts", "1", "--gl-variants", "pghi:1,random:2", "--out", str(out)])
    rows = json.loads(out.read_text())["speed_table"]
    names = [r["vocoder"] for r in rows]
    assert names[:3] == ["ours griffinlim-2", "ours pghi+gl-1", "peer torchaudio-gl-2"]  # --gl-iters' row first, once
    assert rows[1]["speedup_vs_gl"] == pytest.approx(rows[1]["x_real_time"] / rows[0]["x_real_time"])
    assert any(n.startswith("ours neural (untrained") for n in names)
    assert any(n.startswith("ours diffusion 1 steps") for n in names)
    assert all("error" not in r and math.isfinite(r["x_real_time"]) and r["x_real_time"] > 0 for r in rows)
    gl = rows[0]
    assert gl["peer"] == "peer torchaudio-gl-2"
    assert gl["speedup_vs_peer"] == pytest.approx(gl["x_real_time"] / rows[2]["x_real_time"])


def test_vocoder_benchmark_quality_over_splits_with_pitch_on_music(shared_data, tmp_path):
    """The quality table: Griffin-Lim variants on speech and on music notes, two held-out splits (each mean is the
    mean of its splits' values, the spread half their range), PESQ/STOI on speech, pYIN pitch on the notes."""
    out = tmp_path / "voc.json"
    res = _module("vocoders").main(["--data", str(shared_data), "--datasets", "fsdd", "sax", "--max-utts", "2",
                                    "--gl-variants", "random:2,pghi:2", "--splits", "2", "--no-speed-table",
                                    "--batch", "1", "--seconds", "0.5", "--repeats", "1", "--out", str(out)])
    fsdd, sax = res["datasets"]["fsdd"], res["datasets"]["sax"]
    assert [list(s["results"]) for s in fsdd["splits"]] == [["griffinlim-2", "pghi+gl-2", "torchaudio-gl-32"]] * 2
    assert fsdd["splits"][0]["held_out"] != fsdd["splits"][1]["held_out"]  # another split, other clips
    for name, r in fsdd["summary"].items():
        vals = [s["results"][name]["mrstft"] for s in fsdd["splits"]]
        assert r["mrstft"]["mean"] == pytest.approx(sum(vals) / 2)
        assert r["mrstft"]["spread"] == pytest.approx(abs(vals[0] - vals[1]) / 2)
        assert 1.0 <= r["pesq"]["mean"] <= 4.7 and 0 < r["stoi"]["mean"] <= 1 and "pitch_accuracy" not in r
        assert r["x_real_time"]["mean"] > 0  # timed on the first split
    assert sax["summary"]["real notes (no vocoder)"]["pitch_accuracy"]["mean"] == 1.0  # sax notes are clean
    assert 0 <= sax["summary"]["pghi+gl-2"]["pitch_accuracy"]["mean"] <= 1
    for split in sax["splits"]:  # the notes a decoder loses are named: as many as its accuracy says
        r = split["results"]["pghi+gl-2"]
        assert len(r["pitch_missed"]) == round((1 - r["pitch_accuracy"]) * 2)
    # two iterations from phase-gradient integration beat two from random phase on speech (PESQ 4.0 vs 3.0 here)
    assert fsdd["summary"]["pghi+gl-2"]["pesq"]["mean"] > fsdd["summary"]["griffinlim-2"]["pesq"]["mean"]
    assert json.loads(out.read_text())["datasets"]["sax"]["splits"][0]["mel"]["n_mels"] == 80
    with pytest.raises(SystemExit, match="INIT:ITERATIONS"):
        _module("vocoders").main(["--data", str(shared_data), "--datasets", "fsdd", "--gl-variants", "pghi"])


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


# ------------------------------------------------------------------------------------------ time to quality
TINY_TONES = ["--recipe", "tones", "--minutes", "0.05", "--eval-every-minutes", "0.025", "--n-per-class", "1",
              "--steps", "2", "--threads", "1", "--real-n", "6", "--schedule", "sequential",
              "model.channels=[16,16,16,16]", "model.attention=[false,false,false,false]", "data.synth.n=64",
              "train.batch_size=8"]


def test_time_to_quality_writes_a_curve_with_the_peer_when_installed(tmp_path):
    """Two scored points per side (step, training minutes, sampler settings, score), the real row, table and PNG.

    The peer part runs only where `.peers/` holds audio-diffusion-pytorch (it is never fetched in CI).
    """
    import torch

    from audiodiff.errors import UsageError

    ttq = _module("time_to_quality")
    peer = _module("peer_adp")
    with_peer = peer.peers_available()
    out = tmp_path / "ttq"
    argv = TINY_TONES + ["--out", str(out)] + (["--peer"] if with_peer else [])
    threads = torch.get_num_threads()
    try:
        result = ttq.main(argv)
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((out / "time_to_quality.json").read_text())
    assert saved["recipe"] == "tones" and saved["measure"]["pitch"] is True
    sides = ["ours", "peer"] if with_peer else ["ours"]
    assert sorted(saved["sides"]) == sorted(sides)
    for side in sides:
        pts = saved["sides"][side]["points"]
        assert [p["point"] for p in pts] == [0, 1]
        assert [p["target_minutes"] for p in pts] == pytest.approx([0.025, 0.05])
        for p in pts:
            assert p["side"] == side and isinstance(p["step"], int) and p["step"] >= 1
            assert p["minutes"] >= p["target_minutes"] - 1e-6      # the loop stops after the step that crosses
            assert 0.0 <= p["score"] <= 1.0 and p["score"] == p["metrics"]["pitch_accuracy"]
            assert p["metrics"]["n"] == 13                          # 13 pitches x 1 per pitch
            assert p["sampler"]["steps"] == 2 and p["sampler"]["guidance"] == 2.0 and p["seed"] == 0
        assert pts[1]["step"] > pts[0]["step"] and pts[1]["minutes"] > pts[0]["minutes"]  # resumed, not restarted
        assert len((out / side / "points.jsonl").read_text().splitlines()) == 2
    assert saved["sides"]["ours"]["points"][0]["sampler"]["sampler"] == "dpmpp_2m"
    assert saved["real"]["n"] == 6 and saved["real"]["pitch_accuracy"] == 1.0   # clean synth notes: all in tune
    assert (out / "time_to_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "time_to_quality.md").read_text()
    assert "| ours |" in table and "real held-out (n=6)" in table
    if with_peer:
        assert saved["sides"]["peer"]["points"][0]["sampler"]["sampler"] == "VSampler"
        ours_p, peer_p = saved["sides"]["ours"]["params"], saved["sides"]["peer"]["params"]
        assert 0.5 < peer_p / ours_p < 2.0                          # the smallest UNetV0 is near this tiny net
        assert len(saved["comparison"]["equal_minutes"]) == 2 and "to_peer_best" in saved["comparison"]
        assert (out / "peer" / "ema.safetensors").is_file() and "| peer |" in table
    assert result["sides"].keys() == saved["sides"].keys()
    # a second run into the same folder would mix two clocks: refused, naming the folder
    with pytest.raises(UsageError, match="already exist"):
        ttq.main(argv)


def test_time_to_quality_comparison_and_arguments():
    """Minutes to reach the peer's best (first point at or above it); bad settings name the option."""
    from audiodiff.errors import UsageError

    ttq = _module("time_to_quality")
    pt = lambda i, m, s: {"point": i, "target_minutes": i + 1.0, "minutes": m, "step": 10 * (i + 1), "score": s}
    ours = [pt(0, 1.0, 0.5), pt(1, 2.0, 0.9), pt(2, 3.0, 0.95)]
    peer = [pt(0, 1.0, 0.2), pt(1, 2.0, 0.4), pt(2, 3.0, 0.6)]
    cmp = ttq.compare(ours, peer)
    assert [r["ours_score"] - r["peer_score"] for r in cmp["equal_minutes"]] == pytest.approx([0.3, 0.5, 0.35])
    reach = cmp["to_peer_best"]
    assert reach["peer_best_score"] == 0.6 and reach["peer_minutes"] == 3.0 and reach["ours_minutes"] == 2.0
    assert reach["speedup"] == pytest.approx(1.5) and reach["ratio_ours_over_peer"] == pytest.approx(2 / 3)
    never = ttq.compare([pt(0, 1.0, 0.1)], peer)["to_peer_best"]
    assert never["ours_minutes"] is None and never["speedup"] is None
    assert ttq.eval_targets(10, 2) == [120, 240, 360, 480, 600]
    assert ttq.eval_targets(1, 0.4) == [24, 48, 60]
    with pytest.raises(UsageError, match=r"--eval-every-minutes=3.0 is not allowed; allowed: a number in \(0, "):
        ttq.parse_args(["--recipe", "fsdd_mel", "--minutes", "2", "--eval-every-minutes", "3"])
    with pytest.raises(UsageError, match=r"unknown argument\(s\) \['--bogus'\]"):
        ttq.parse_args(["--recipe", "fsdd_mel", "--bogus"])
    args, overrides = ttq.parse_args(["--recipe", "fsdd_mel", "train.lr=5e-4", "--peer"])
    assert overrides == ["train.lr=5e-4"] and args.peer and args.threads == 2 and args.n_per_class == 20
    assert args.peer_steps is None
    assert ttq.parse_args(["--recipe", "drums", "--peer", "--peer-steps", "6000"])[0].peer_steps == 6000
    with pytest.raises(UsageError, match=r"--peer-steps=0 is not allowed; allowed: an integer >= 1"):
        ttq.parse_args(["--recipe", "drums", "--peer-steps", "0"])
    with pytest.raises(UsageError, match=r"--peer-lr=2.0 is not allowed; allowed: a number in \(0, 1\)"):
        ttq.parse_args(["--recipe", "drums", "--peer-lr", "2"])


def test_time_to_quality_pitch_range_keeps_the_recorded_pitches_inside_it():
    """--pitch-range LO:HI (inclusive) filters the generated requests and the rescored ones; bad ranges are named."""
    import argparse

    from audiodiff.errors import UsageError

    ttq = _module("time_to_quality")
    rescore = _module("ttq_rescore")
    assert ttq.parse_pitch_range("21:93") == (21, 93)
    for bad in ("93:21", "21-93", "0:128", "a:b"):
        with pytest.raises(argparse.ArgumentTypeError, match="allowed: LO:HI"):
            ttq.parse_pitch_range(bad)
    args, _ = ttq.parse_args(["--recipe", "piano", "--pitch-range", "21:93"])
    assert args.pitch_range == (21, 93)
    assert ttq.in_pitch_range(93.4, (21, 93)) and not ttq.in_pitch_range(93.6, (21, 93))
    assert ttq.in_pitch_range(200, None)
    entries = [{"path": f"{p}.wav", "pitch": p} for p in (21, 24, 90, 93, 96, 108)]
    info = {"conditions": {"pitch": "pitch"}, "pitch_range": (21, 108)}
    reqs = ttq.make_requests({}, info, 2, entries, pitch_range=(22, 95))
    assert reqs == [{"pitch": p} for p in (24, 24, 90, 90, 93, 93)]
    assert len(ttq.make_requests({}, info, 1, entries)) == 6
    with pytest.raises(UsageError, match="holds none of the recorded pitches"):
        ttq.make_requests({}, info, 1, entries, pitch_range=(100, 104))
    plan = {"label_field": None, "pitch": True, "requests": [{"pitch": p} for p in (21, 24, 27, 30)]}
    assert rescore.requests_for(plan, None, 1, (24, 27)) == [{"pitch": 24}, {"pitch": 27}]
    assert rescore.requests_for(plan, "between", 1, (22, 26)) == [{"pitch": 22}, {"pitch": 23}, {"pitch": 25},
                                                                   {"pitch": 26}]
    with pytest.raises(SystemExit, match="applies|apply"):
        rescore.requests_for({**plan, "label_field": "instrument"}, None, 1, (24, 27))
    labelled = {"label_field": "label", "pitch": False, "requests": [{"labels": 3}, {"labels": 7}]}
    assert rescore.requests_for(labelled, None, 1) == labelled["requests"]  # a label plan, no range: all of it


def test_time_to_quality_scores_onsets_beside_pitch_on_note_recipes():
    """A pitch recipe's score counts onsets too: a clean strike is clean, a second strike and silence are not."""
    import numpy as np
    import torch

    ttq = _module("time_to_quality")
    sr = 16000
    t = np.arange(2 * sr) / sr

    def strike(start, midi):
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        return np.where(t >= start, np.exp(-np.clip(t - start, 0, None) / 0.4), 0.0) * np.sin(2 * np.pi * f0 * t)

    clips = [torch.tensor(0.5 * strike(0.1, 60), dtype=torch.float32),
             torch.tensor(0.5 * (strike(0.1, 64) + strike(1.0, 64)), dtype=torch.float32),
             torch.zeros(2 * sr)]
    m = ttq.Scorer({"pitch": True}).score(clips, sr, [{"pitch": 60}, {"pitch": 64}, {"pitch": 67}])
    assert m["pitch_accuracy"] == pytest.approx(2 / 3) and m["pitch_missed"] == [67]
    assert m["one_onset"] == pytest.approx(1 / 3) and m["clean_notes"] == pytest.approx(1 / 3)
    assert m["not_clean"] == [64, 67] and m["mean_onsets"] == pytest.approx(1.0)
    assert "one onset" in ttq.markdown({"recipe": "piano", "settings": {"threads": 1, "schedule": "sequential"},
                                        "sides": {}, "real": {"n": 3, **m}})


def test_pitch_ceiling_reads_real_notes_per_pitch(tmp_path):
    """Sines labelled with their own MIDI pitch are read right; a note labelled an octave off is not; the range
    keeps only the notes inside it."""
    import numpy as np
    import soundfile as sf

    sr = 16000
    t = np.arange(int(0.5 * sr)) / sr
    rows = []
    for i, (true, label) in enumerate([(60, 60), (67, 67), (72, 72), (69, 57)]):  # the last is mislabelled
        hz = 440.0 * 2 ** ((true - 69) / 12)
        sf.write(tmp_path / f"n{i}.wav", 0.5 * np.sin(2 * np.pi * hz * t), sr)
        rows.append({"path": f"n{i}.wav", "duration": 0.5, "sample_rate": sr, "pitch": label})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _module("pitch_ceiling").main([str(tmp_path), "--seconds", "0.5", "--pitch-range", "60:70",
                                         "--out", str(tmp_path / "c.json")])
    full = out["full"]["per_pitch"]
    assert {m: r["correct"] for m, r in full.items()} == {57: 0, 60: 1, 67: 1, 72: 1}
    assert out["full"]["accuracy"] == pytest.approx(0.75)
    assert sorted(out["range"]["per_pitch"]) == [60, 67] and out["range"]["accuracy"] == 1.0
    assert json.loads((tmp_path / "c.json").read_text())["range"]["pitch_range"] == [60, 70]


def test_nfe_quality_counts_network_calls_per_clip():
    """NFE = network calls per clip: Heun spends two a step (one on the last), guidance doubles each call."""
    N = _module("nfe_quality")

    assert [N.steps_for("euler", n, guided=False) for n in (1, 2, 4)] == [1, 2, 4]
    assert [N.steps_for("euler", n, guided=True) for n in (1, 2, 4, 8)] == [None, 1, 2, 4]
    assert [N.steps_for("heun", n, guided=False) for n in (1, 2, 3, 4, 7)] == [1, None, 2, None, 4]
    assert N.steps_for("heun", 8, guided=True) is None and N.steps_for("heun", 6, guided=True) == 2
    rows = [{"schedule": "karras", "sampler": "euler", "nfe": 4, "steps": 2, "score": 0.9, "frechet_distance": 90.0,
             "clips_per_second": 50.0},
            {"schedule": "karras", "sampler": "heun", "nfe": 8, "steps": 2, "score": 0.95, "frechet_distance": 80.0,
             "clips_per_second": 30.0}]
    best = N.best_at(rows, (4, 8))
    assert best["4"]["sampler"] == "euler" and best["8"]["sampler"] == "heun"
    md = N.markdown({"primary": "accuracy", "rows": rows, "best": best})
    assert "| karras | heun | 8 | 2 | 0.950 | 80.0 | 30.0 |" in md


def test_nfe_quality_vocoder_override_changes_only_the_named_settings(tmp_path):
    """`--vocoder init=pghi,n_iter=8`: the run's Griffin-Lim with those two settings, the rest kept, contract
    checked; generation then decodes through it; bad input is one line."""
    from audiodiff import Pipeline
    from audiodiff.training.loop import train
    from tests.helpers import tiny_cfg, tiny_mel_cfg

    N = _module("nfe_quality")
    pipe = Pipeline.from_pretrained(train(tiny_mel_cfg(tmp_path / "mel", steps=2)), device="cpu")
    before = pipe.vocoder.config()
    cfg = N.override_vocoder(pipe, "init=pghi,n_iter=8")
    assert pipe.vocoder.config() == {**before, "init": "pghi", "n_iter": 8} and cfg["name"] == "griffinlim"
    assert pipe.rep.vocoder is pipe.vocoder and pipe.vocoder.mel == pipe.mel
    assert pipe.generate(n=1, seed=0, progress=False).audio.isfinite().all()
    assert N.override_vocoder(pipe, None) is None
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        N.override_vocoder(pipe, "pghi")
    with pytest.raises(ValueError, match="init 'bogus' is not allowed"):
        N.override_vocoder(pipe, "init=bogus")
    wave = Pipeline.from_pretrained(train(tiny_cfg(tmp_path / "wave", steps=2)), device="cpu")
    with pytest.raises(SystemExit, match="waveform model"):
        N.override_vocoder(wave, "n_iter=8")


def test_ttq_rescore_scores_the_same_generations_through_each_vocoder(tmp_path):
    """`ttq_rescore.py --vocoder init=pghi,n_iter=0`: the same seeds decoded by the changed vocoder (the same mels,
    other audio), the row naming it; the run's own vocoder gives the run's audio again."""
    import argparse

    import torch

    from audiodiff import Pipeline
    from audiodiff.training.loop import train
    from tests.helpers import tiny_mel_cfg

    R, N = _module("ttq_rescore"), _module("nfe_quality")
    run = train(tiny_mel_cfg(tmp_path / "mel", steps=2))
    heard = []

    class Scorer:
        def score(self, audio, sample_rate, asked):
            heard.append(audio.clone())
            return {"score": float(audio.abs().mean())}

    args = argparse.Namespace(seeds="3", pitches=None)
    plan = {"label_field": None, "pitch": False}
    sampler = {"sampler": "euler", "guidance": None}
    pipe = Pipeline.from_pretrained(run, device="cpu")
    own = pipe.vocoder.config()
    rows = R.score_seeds(pipe, args, tmp_path, plan, Scorer(), [{}, {}], sampler, 2, None,
                         ["run", "init=pghi,n_iter=0", "run", "n_iter=1"])
    assert [r["vocoder_spec"] for r in rows] == ["run", "init=pghi,n_iter=0", "run", "n_iter=1"]
    assert rows[0]["vocoder"] is None and rows[1]["vocoder"]["init"] == "pghi"
    assert rows[3]["vocoder"] == {"name": "griffinlim", **own, "n_iter": 1}  # changes apply to the run's own, not
    assert all(r["seed"] == 3 and r["n"] == 2 for r in rows)                   # to the previous spec's
    assert torch.equal(heard[0], heard[2]) and not torch.allclose(heard[0], heard[1])
    # decoding the generation's mel again through the run's own vocoder gives the generation's audio
    pipe2 = Pipeline.from_pretrained(run, device="cpu")
    gen = pipe2.generate(n=2, steps=2, sampler="euler", seed=3, progress=False)
    assert torch.allclose(pipe2.rep.decode(gen.mel).float().clamp(-1, 1), gen.audio, atol=1e-6)
    assert torch.equal(gen.audio, heard[0])


def test_vocoder_benchmark_oracles_hold_half_the_answer():
    """`--oracles`: the real magnitude with PGHI phase rebuilds a tone's spectrum; the mel-inverted magnitude with the
    real phase keeps the real phase where the energy is (both checked against the tone itself)."""
    import math

    import torch

    from audiodiff.mel import MelSpec

    V = _module("vocoders")
    mel = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=32)
    t = torch.arange(4000) / 8000
    wav = 0.5 * torch.sin(2 * math.pi * 440 * t)
    S = mel.stft(wav[None])
    mid = slice(8, -8)  # frames away from the edges
    pghi = V.Oracle(mel, "pghi").from_audio(wav[None, None])
    assert pghi.shape == (1, 1, 4000)
    err = (mel.stft(pghi[:, 0]).abs() - S.abs())[..., mid].norm() / S.abs()[..., mid].norm()
    assert err < 0.05, err
    real = V.Oracle(mel, "real").from_audio(wav[None, None])
    R = mel.stft(real[:, 0])
    peak = S.abs()[0, :, 20].argmax()
    dphi = torch.angle(R[0, peak, mid] * S[0, peak, mid].conj())
    assert dphi.abs().max() < 0.1, dphi.abs().max()
    assert V.Oracle(mel, "pghi").num_parameters() == 0 and V.Oracle.needs_audio


def test_denoiser_probe_jitter_closed_form_and_refusals(tmp_path):
    """Jitter is the mean |second difference| over frames: 0 for a ramp, 4 for +-1 alternation; a run on
    synthetic data (no held-out clip on disk) is refused in one line."""
    import torch

    from audiodiff.errors import UsageError
    from audiodiff.training.loop import train
    from tests.helpers import tiny_mel_cfg

    P = _module("denoiser_probe")
    ramp = torch.arange(10.0).repeat(2, 3, 1)                        # (B=2, M=3, T=10)
    assert P.jitter(ramp) == pytest.approx(0.0)
    alt = torch.tensor([1.0, -1.0] * 5).repeat(1, 1, 4, 1)            # (B, 1, M, T)
    assert P.jitter(alt) == pytest.approx(4.0)
    run = train(tiny_mel_cfg(tmp_path / "mel", steps=1))
    with pytest.raises(UsageError, match="no held-out clip with a path"):
        P.probe(Path(run))
    r = {"run": "x", "step": 3, "n": 2, "real_jitter": 0.05, "rows": [{"sigma": 0.1, "rmse": 0.05, "jitter": 0.1}]}
    assert "| 0.1 | 0.0500 | 0.50 | 0.100 | 2.00 |" in P.table(r)
