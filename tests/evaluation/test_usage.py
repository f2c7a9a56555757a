"""`audiodiff evaluate` for a new user's small folder: what it scores without a reference, unknown label fields,
whether a judge's held-out accuracy can be trusted, and the sample rate `train-judge sample_rate=auto` used."""
import json
import logging
import math
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio import save
from audiodiff.cli import main as audiodiff_main
from audiodiff.data.manifest import write_manifest
from audiodiff.errors import UsageError
from audiodiff.evaluation import metrics as M
from audiodiff.evaluation.cli import main
from audiodiff.evaluation.judge import train_judge
from audiodiff.evaluation.judge.train import held_out_trust

SR = 8000
SECONDS = 0.25


def _write(path, x, sr=SR):
    save(path, torch.from_numpy(np.asarray(x, dtype=np.float32))[None], sr)
    return str(path)


def _sine(hz, amp, seconds=SECONDS, sr=SR):
    return amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * sr)) / sr)


def _manifest(tmp_path, name, items):
    """A manifest of `(label, audio)` items written as WAVs under tmp_path/name."""
    entries = [{"path": _write(tmp_path / name / f"{k:03d}.wav", x), "duration": len(x) / SR, "sample_rate": SR,
                "label": label} for k, (label, x) in enumerate(items)]
    return write_manifest(entries, tmp_path / name / "manifest.jsonl")


def _warnings(caplog, name):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == name]


# ------------------------------------------------------------------ the held-out test against chance
def _exact_tail(k, n, p):
    p = Fraction(p)
    return float(sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def test_binomial_tail_is_the_exact_one_sided_p_value():
    assert M.binomial_tail(16, 20, 0.5) == pytest.approx(6196 / 2 ** 20, rel=1e-12)  # C(20,16..20) / 2^20
    assert M.binomial_tail(5, 5, 0.5) == pytest.approx(1 / 32, rel=1e-12)
    assert M.binomial_tail(7, 30, 0.1) == pytest.approx(_exact_tail(7, 30, Fraction(1, 10)), rel=1e-10)
    # large n: no overflow, still exact
    assert M.binomial_tail(70, 500, 0.1) == pytest.approx(_exact_tail(70, 500, Fraction(1, 10)), rel=1e-9)
    assert M.binomial_tail(0, 10, 0.3) == 1.0 and M.binomial_tail(11, 10, 0.3) == 0.0
    with pytest.raises(ValueError, match="0 < p < 1"):
        M.binomial_tail(1, 2, 1.0)


def test_held_out_trust_rules():
    # 5 held-out clips, all right: p = 1/32 > 0.01, and too few clips to tell
    t = held_out_trust([[3, 0], [0, 2]], ["a", "b"])
    assert t["ok"] is False and t["num_valid"] == 5 and t["num_correct"] == 5 and t["chance"] == 0.5
    assert t["p_value_vs_chance"] == pytest.approx(1 / 32)
    assert len(t["reasons"]) == 2 and "only 5 held-out clips (< 20)" in t["reasons"][0]
    assert "p=0.0312 > 0.01" in t["reasons"][1]
    assert "\n" not in t["warning"] and "(100.0% on 5 held-out clips) cannot be trusted" in t["warning"]
    # 17 of 20 right with 2 classes: p = (C(20,17)+C(20,18)+C(20,19)+1) / 2^20 = 0.0013 -> trusted
    t = held_out_trust([[8, 2], [1, 9]], [0, 1])
    assert t["ok"] is True and t["reasons"] == [] and "warning" not in t
    assert t["p_value_vs_chance"] == pytest.approx(1351 / 2 ** 20)
    # enough clips but at chance: only the binomial reason (11 of 20: p = 0.41)
    t = held_out_trust([[6, 4], [5, 5]], [0, 1])
    assert t["ok"] is False and len(t["reasons"]) == 1 and "11/20 correct" in t["reasons"][0]
    assert t["p_value_vs_chance"] == pytest.approx(_exact_tail(11, 20, Fraction(1, 2)))
    # a class with one held-out clip: too few of that class, even with a perfect score (chance 1/3)
    t = held_out_trust([[10, 0, 0], [0, 10, 0], [0, 0, 1]], ["x", "y", "z"])
    assert t["ok"] is False and t["chance"] == pytest.approx(1 / 3) and t["p_value_vs_chance"] < 1e-9
    assert t["reasons"] == ["fewer than 2 held-out clips of class(es) ['z'] (counts {'x': 10, 'y': 10, 'z': 1})"]
    t = held_out_trust([[0, 0], [0, 0]], ["a", "b"])
    assert t["ok"] is False and t["p_value_vs_chance"] is None
    assert t["reasons"] == ["no held-out clips to measure it on"]


# ------------------------------------------------------------------ no reference: clip statistics and notes
def test_clip_statistics_numbers():
    sine = _sine(440, 0.5, 0.5)                      # RMS 0.5 / sqrt(2): -9.03 dBFS
    quiet = 1e-4 * np.sign(_sine(440, 1.0, 0.25))    # RMS 1e-4: -80 dBFS, near-silent
    clipped = np.clip(_sine(440, 3.0, 0.25), -1, 1)  # most samples at full scale
    summary, items = M.clip_statistics([torch.from_numpy(sine), quiet, clipped, np.zeros(800)], SR)
    assert items[0]["rms_dbfs"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=1e-3)
    assert items[1]["rms_dbfs"] == pytest.approx(-80.0, abs=0.01) and items[1]["silent"] and not items[1]["clipping"]
    assert items[2]["clipping"] and not items[0]["clipping"] and items[2]["peak"] == 1.0
    assert items[3]["rms_dbfs"] == M.DBFS_FLOOR and items[3]["silent"]
    assert summary == {"n": 4, "duration_s": pytest.approx((0.5 + 0.25 + 0.25 + 0.1) / 4), "duration_min_s": 0.1,
                       "duration_max_s": 0.5, "rms_dbfs": pytest.approx(np.median([i["rms_dbfs"] for i in items])),
                       "silent_share": 0.5, "clipping_share": 0.25}
    # clipping is a flat top of 3+ equal full-scale samples; a sine peak-normalised to full scale has none
    two, three = np.zeros(100), np.zeros(100)
    two[10:12], three[10:13] = 1.0, -1.0
    flags = [i["clipping"] for i in M.clip_statistics([two, three, _sine(50, 1.0, 1.0)], SR)[1]]
    assert flags == [False, True, False]


def test_generated_alone_scores_clip_statistics_and_says_what_is_missing(tmp_path, capsys):
    gen = tmp_path / "gen"
    clips = [_sine(440, 0.5, 0.5), _sine(660, 0.25, 0.25), 1e-4 * np.sign(_sine(440, 1.0, 0.25)),
             np.clip(_sine(220, 3.0, 0.25), -1, 1), _sine(330, 0.1, 0.5), _sine(550, 0.3, 0.25)]
    for k, x in enumerate(clips):
        _write(gen / f"{k}.wav", x)
    assert main([f"generated={gen}"]) == 0
    out = capsys.readouterr().out
    row = json.loads(out[:out.index("\nnote:")])["generated"]
    # the same numbers recomputed from the written files (16-bit WAV) by hand
    audio = [sf.read(str(gen / f"{k}.wav"), dtype="float64")[0] for k in range(len(clips))]
    levels = [20 * np.log10(np.sqrt(np.mean(a ** 2))) for a in audio]
    assert row["n"] == 6 and row["sample_rate"] == SR
    assert row["duration_s"] == pytest.approx(np.mean([len(a) / SR for a in audio]))
    assert (row["duration_min_s"], row["duration_max_s"]) == (0.25, 0.5)
    assert row["rms_dbfs"] == pytest.approx(np.median(levels))
    assert row["silent_share"] == pytest.approx(1 / 6) and row["clipping_share"] == pytest.approx(1 / 6)
    notes = [line[len("note: "):] for line in out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 3
    assert "need judge=<dir>" in notes[0] and "audiodiff evaluate train-judge data=<manifest.jsonl>" in notes[0]
    assert "need real=<manifest.jsonl>" in notes[1]
    assert notes[2] == "pitch accuracy needs asked pitches: a `pitch` field in generated.jsonl."
    report = json.loads((gen / "evaluation" / "report.json").read_text())
    assert report["not_scored"] == notes and report["rows"]["generated"] == row
    assert len(report["clips"]) == 6 and report["clips"][2]["silent"] and report["clips"][3]["clipping"]
    md = (gen / "evaluation" / "report.md").read_text()
    assert all(f"- Not scored: {n}" in md for n in notes)
    assert "| set | n | mean s | min s | max s | Hz | RMS dBFS (median) | near-silent | clipping |" in md
    assert (f"| generated | 6 | {row['duration_s']:.2f} | 0.25 | 0.50 | 8000 | {row['rms_dbfs']:.1f} | 16.7% | 16.7% |"
            in md)


# ------------------------------------------------------------------ unknown label fields
def test_unknown_label_field_is_a_usage_error_naming_the_fields(tmp_path, capsys):
    gen = tmp_path / "gen"
    lines = [json.dumps({"path": _write(gen / f"{k}.wav", _sine(440, 0.3)), "label": "a", "speaker": "s1"})
             for k in range(2)]
    (gen / "generated.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UsageError, match=r"^label='digit' is not a field of .*gen/generated\.jsonl; "
                                         r"fields: \['label', 'speaker'\]"):
        main([f"generated={gen}", "label=digit"])
    with pytest.raises(SystemExit) as e:
        audiodiff_main(["evaluate", f"generated={gen}", "label=digit"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and err.startswith("audiodiff evaluate: error: label='digit'")
    assert not (gen / "evaluation").exists()

    # the field is in generated.jsonl but not in the real manifest: name the manifest and its fields
    real = _manifest(tmp_path, "real", [("a", _sine(440, 0.3)), ("b", _sine(880, 0.3))] * 2)
    with pytest.raises(UsageError, match=rf"^label='speaker' is not a field of {real}; fields: \['label'\]"):
        main([f"generated={gen}", f"real={real}", "label=speaker"])

    # train-judge: checked before anything is trained or written
    with pytest.raises(UsageError, match=rf"^label='digit' is not a field of {real}; fields: \['label'\]$"):
        main(["train-judge", f"data={real}", "label=digit", f"out={tmp_path / 'judge'}"])
    with pytest.raises(SystemExit) as e:
        audiodiff_main(["evaluate", "train-judge", f"data={real}", "label=digit", f"out={tmp_path / 'judge'}"])
    assert e.value.code == 2 and not (tmp_path / "judge").exists()


# ------------------------------------------------------------------ judges that can / cannot be trusted
def test_judge_at_chance_on_five_held_out_clips_warns_in_training_and_in_evaluate(tmp_path, capsys, caplog):
    rng = np.random.default_rng(0)
    # two "classes" of the same white noise: nothing to learn; 16 clips, 5 held out
    real = _manifest(tmp_path, "real", [("ab"[k % 2], 0.1 * rng.standard_normal(int(SECONDS * SR)))
                                        for k in range(16)])
    judge_dir = tmp_path / "judge"
    caplog.set_level(logging.INFO)
    assert main(["train-judge", f"data={real}", "label=label", f"out={judge_dir}", "epochs=1", "sample_rate=auto",
                 f"seconds={SECONDS}", "valid_fraction=0.3", "batch_size=8"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sample_rate"] == SR  # what sample_rate=auto resolved to, not null
    assert summary["num_valid"] == 5 and summary["num_train"] == 11 and summary["trust"]["ok"] is False
    report = json.loads((judge_dir / "train_report.json").read_text())
    trust, confusion = report["trust"], np.array(report["confusion"])
    correct = int(np.trace(confusion))
    assert trust["ok"] is False and trust["num_valid"] == 5 and trust["chance"] == 0.5
    assert trust["num_correct"] == correct and report["valid_accuracy"] == pytest.approx(correct / 5)
    assert trust["p_value_vs_chance"] == pytest.approx(_exact_tail(correct, 5, Fraction(1, 2)))
    assert trust["p_value_vs_chance"] > 0.01 and "only 5 held-out clips (< 20)" in trust["reasons"][0]
    assert summary["trust"] == {k: trust[k] for k in ("ok", "p_value_vs_chance", "chance", "reasons")}
    warned = _warnings(caplog, "audiodiff.evaluation.judge.train")
    assert warned == [f"judge: {trust['warning']}"] and "\n" not in warned[0]

    gen = tmp_path / "gen"
    for k in range(3):
        _write(gen / f"{k}.wav", 0.1 * rng.standard_normal(int(SECONDS * SR)))
    for variant in ("as trained", "older report without trust", "no report"):
        if variant == "older report without trust":  # judges trained before the check: from their confusion
            (judge_dir / "train_report.json").write_text(json.dumps({k: v for k, v in report.items() if k != "trust"}))
        if variant == "no report":
            (judge_dir / "train_report.json").unlink()
        caplog.clear()
        assert main([f"generated={gen}", f"judge={judge_dir}"]) == 0
        warned = _warnings(caplog, "audiodiff.evaluation.cli")
        assert len(warned) == 1 and "\n" not in warned[0], variant
        md = (gen / "evaluation" / "report.md").read_text()
        got = json.loads((gen / "evaluation" / "report.json").read_text())["judge"]["trust"]
        if variant == "no report":
            assert "whether its accuracy / IS / FD can be trusted is unknown" in warned[0] and got is None
        else:
            assert f"is not trustworthy (held-out accuracy {correct / 5:.1%} on 5 clips)" in warned[0], variant
            assert "only 5 held-out clips" in warned[0] and "mean little" in warned[0]
            assert got["ok"] is False and got["reasons"] == trust["reasons"]
        assert f"- **Warning**: {warned[0][len('evaluate: '):]}." in md
        # the judge is there, so only the real row and pitch are missing
        assert "Not scored: a real-data (held-out) row and FD need real=" in md and "need judge=" not in md


def test_well_separated_judge_is_trusted_without_warning(tmp_path, caplog):
    rng = np.random.default_rng(1)
    items = [("sine", _sine(rng.uniform(300, 1500), 0.3)) if k % 2 == 0
             else ("noise", 0.1 * rng.standard_normal(int(SECONDS * SR))) for k in range(80)]
    real = _manifest(tmp_path, "real", items)
    caplog.set_level(logging.INFO)
    _, report = train_judge(real, "label", tmp_path / "judge", sample_rate=None, seconds=SECONDS, epochs=3,
                            valid_fraction=0.25, batch_size=16, device="cpu")
    trust = report["trust"]
    assert report["sample_rate"] == SR and report["num_valid"] == trust["num_valid"] == 20
    assert trust["ok"] is True and trust["reasons"] == [] and trust["p_value_vs_chance"] <= 0.01
    assert report["valid_accuracy"] >= 0.8 and min(trust["per_class_valid"].values()) >= 2
    assert _warnings(caplog, "audiodiff.evaluation.judge.train") == []

    gen = tmp_path / "gen"
    lines = [json.dumps({"path": _write(gen / f"{k}.wav", x), "label": lab})
             for k, (lab, x) in enumerate(items[:4])]
    (gen / "generated.jsonl").write_text("\n".join(lines) + "\n")
    assert main([f"generated={gen}", f"judge={tmp_path / 'judge'}", f"real={real}"]) == 0
    assert _warnings(caplog, "audiodiff.evaluation.cli") == []
    result = json.loads((gen / "evaluation" / "report.json").read_text())
    assert result["judge"]["trust"]["ok"] is True and result["not_scored"] == [
        "pitch accuracy needs asked pitches: a `pitch` field in generated.jsonl."]
    assert "Warning" not in (gen / "evaluation" / "report.md").read_text()
    assert result["rows"]["generated"]["accuracy"] == 1.0
