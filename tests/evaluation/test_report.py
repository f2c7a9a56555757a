"""`audiodiff evaluate` end to end on synthetic tones: judge training via the CLI, report files and numbers."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff.audio import save
from audiodiff.data.manifest import write_manifest
from audiodiff.evaluation import metrics as M
from audiodiff.errors import UsageError
from audiodiff.evaluation.cli import EVAL_KEYS, main, read_generated
from audiodiff.evaluation.judge import Judge, fit_length
from audiodiff.evaluation.onsets import note_onsets
from audiodiff.evaluation.report import write_report

SR = 8000
CLASSES = {"low": 57, "mid": 69, "high": 81}  # label -> MIDI pitch


def _tone(midi, seconds, rng, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    hz = 440.0 * 2 ** ((midi - 69) / 12)
    x = rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
    return (x + 0.003 * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    entries = []
    for label, midi in CLASSES.items():
        for i in range(12):
            p = root / "real" / f"{label}_{i}.wav"
            save(p, torch.from_numpy(_tone(midi, rng.uniform(0.3, 0.5), rng))[None], SR)
            entries.append({"path": str(p), "duration": sf.info(str(p)).duration, "sample_rate": SR,
                            "label": label})
    manifest = write_manifest(entries, root / "real" / "manifest.jsonl")
    judge_dir = root / "judge"
    assert main(["train-judge", f"data={manifest}", "label=label", f"out={judge_dir}", "epochs=4",
                 "sample_rate=auto", "seconds=0.5", "valid_fraction=0.25"]) == 0
    gen = root / "generated"
    lines = []
    for k, (label, midi) in enumerate(list(CLASSES.items()) * 2):
        save(gen / f"{k:03d}.wav", torch.from_numpy(_tone(midi, 0.5, rng))[None], SR)
        lines.append(json.dumps({"path": f"{k:03d}.wav", "label": label, "pitch": midi}))
    (gen / "generated.jsonl").write_text("\n".join(lines) + "\n")
    out = root / "report"
    assert main([f"generated={gen}", f"real={manifest}", f"judge={judge_dir}", f"out={out}"]) == 0
    return root, manifest, judge_dir, gen, out


def test_train_judge_cli_writes_a_loadable_judge(setup):
    _, _, judge_dir, _, _ = setup
    report = json.loads((judge_dir / "train_report.json").read_text())
    assert report["num_valid"] == 9 and report["num_train"] == 27 and 0 <= report["valid_accuracy"] <= 1
    judge = Judge.load(judge_dir)
    assert judge.labels == ["high", "low", "mid"] and judge.sample_rate == SR
    split = json.loads((judge_dir / "split.json").read_text())
    assert len(split["valid"]) == 9 and not set(split["valid"]) & set(split["train"])


def test_report_files_hold_the_metrics_recomputed_independently(setup):
    _, _, judge_dir, gen, out = setup
    report = json.loads((out / "report.json").read_text())
    row = report["rows"]["generated"]
    # recompute from the WAVs with the judge and the metric functions directly
    judge = Judge.load(judge_dir)
    asked = [json.loads(l) for l in (gen / "generated.jsonl").read_text().splitlines()]
    audio = torch.cat([fit_length(torch.from_numpy(sf.read(str(gen / a["path"]), dtype="float32")[0])
                                  .view(1, 1, -1), judge.num_samples) for a in asked])
    probs = judge.predict_proba(audio)
    assert row["n"] == 6
    assert row["accuracy"] == pytest.approx(M.class_accuracy(probs, judge.label_index([a["label"] for a in asked])))
    assert row["inception_score"] == pytest.approx(M.inception_score(probs)[0], rel=1e-6)
    assert row["modified_inception_score"] == pytest.approx(M.modified_inception_score(probs)[0], rel=1e-6)
    assert row["frechet_distance"] >= 0 and row["pitch_accuracy"] == 1.0
    held = report["rows"]["real (held-out)"]
    assert held["n"] == 9 and held["frechet_distance"] >= 0 and 0 <= held["accuracy"] <= 1
    assert len(report["pitch"]["items"]) == 6
    clips = [sf.read(str(gen / a["path"]), dtype="float32")[0] for a in asked]
    on = note_onsets(clips, SR, voiced_fraction=[r["voiced_fraction"] for r in report["pitch"]["items"]])
    assert row["one_onset"] == on["one_onset"] and row["clean_notes"] == on["clean_notes"]
    assert [i["n_onsets"] for i in report["onsets"]["items"]] == [i["n_onsets"] for i in on["items"]]
    md = (out / "report.md").read_text()
    assert "| set | n | accuracy | IS | mIS | FD (judge) | pitch acc. | one onset | clean notes |" in md
    assert f"{row['inception_score']:.3f}" in md and f"{held['frechet_distance']:.3f}" in md
    assert "judge's held-out split" in md
    for png in ("spectrograms.png", "pitch.png"):
        assert f"]({png})" in md
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_folder_without_manifest_or_judge_still_reports(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(3):
        save(tmp_path / f"{k}.wav", torch.from_numpy(_tone(60, 0.3, rng))[None], SR)
    assert main([f"generated={tmp_path}"]) == 0
    report = json.loads((tmp_path / "evaluation" / "report.json").read_text())
    row = report["rows"]["generated"]  # no reference: only the clip statistics (tests/evaluation/test_usage.py)
    assert row["n"] == 3 and row["duration_s"] == pytest.approx(0.3) and row["sample_rate"] == SR
    assert "accuracy" not in row and "inception_score" not in row
    assert (tmp_path / "evaluation" / "spectrograms.png").is_file()


def test_write_report_strict_json_and_dashes(tmp_path):
    files = write_report({"rows": {"a": {"n": 2, "inception_score": float("nan")}, "b": {"n": 3,
                          "inception_score": 1.5}}, "extra": np.float32(0.25)}, tmp_path)
    data = json.loads(files["json"].read_text())
    assert data["rows"]["a"]["inception_score"] is None and data["extra"] == 0.25
    md = files["md"].read_text()
    assert "| a | 2 | — |" in md and "| b | 3 | 1.500 |" in md
    with pytest.raises(ValueError, match="rows"):
        write_report({}, tmp_path)


def test_cli_and_folder_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown key 'foo'; allowed keys"):
        main(["generated=x", "foo=1"])
    with pytest.raises(UsageError, match=r"missing required key\(s\) \['generated'\]"):
        main(["judge=x"])
    with pytest.raises(UsageError, match="not a valid int"):
        main(["train-judge", "data=a", "label=b", "out=c", "epochs=many"])
    assert "generated" in EVAL_KEYS
    with pytest.raises(FileNotFoundError, match="no .wav files"):
        read_generated(tmp_path)
    (tmp_path / "generated.jsonl").write_text('{"path": "missing.wav", "label": 1}\n')
    with pytest.raises(FileNotFoundError, match="missing.wav does not exist"):
        read_generated(tmp_path)
