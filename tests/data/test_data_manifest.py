"""Manifests: JSONL round trip, building from folders / CSV / JSONL with bad files reported, splits."""
import json
import logging
import os
import re

import numpy as np
import pytest
import soundfile as sf

from audiodiff.data.manifest import (
    ManifestError, build_manifest, read_manifest, split_manifest, write_manifest,
)

FSDD_PATTERN = r"(?P<label>\d)_(?P<speaker>\w+)_\d+\.wav"
SHARED = ("fsdd", "ljspeech_mini", "piano", "sax", "drums")


def _tone(seconds, sr, f=440.0, channels=1):
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.5 * np.sin(2 * np.pi * f * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


# --------------------------------------------------------------------------- JSONL I/O
def test_write_read_roundtrip_relative_inside_absolute_outside(tmp_path):
    inside = tmp_path / "ds" / "a" / "x.wav"
    outside = tmp_path / "elsewhere" / "y.wav"
    entries = [
        {"path": str(inside), "duration": 1.5, "sample_rate": 16000, "label": 3},
        {"path": str(outside), "duration": 0.25, "sample_rate": 8000, "speaker": "jo"},
    ]
    m = write_manifest(entries, tmp_path / "ds" / "manifest.jsonl")
    raw = [json.loads(line) for line in m.read_text().splitlines()]
    assert raw[0]["path"] == "a/x.wav"  # relative, POSIX
    assert raw[1]["path"] == str(outside)
    assert list(raw[0])[:3] == ["path", "duration", "sample_rate"]
    back = read_manifest(m)
    assert back == entries
    # moving the folder keeps relative paths valid
    os.rename(tmp_path / "ds", tmp_path / "moved")
    assert read_manifest(tmp_path / "moved" / "manifest.jsonl")[0]["path"] == str(tmp_path / "moved" / "a" / "x.wav")


@pytest.mark.parametrize("line, msg", [
    ("{not json", "not valid JSON"),
    ('{"path": "a.wav", "sample_rate": 16000}', "missing field"),
    ('{"path": "a.wav", "duration": -1, "sample_rate": 16000}', "duration"),
    ('{"path": "a.wav", "duration": 1.0, "sample_rate": 0}', "sample_rate"),
    ("[1, 2]", "expected a JSON object"),
])
def test_read_manifest_errors_name_file_and_line(tmp_path, line, msg):
    m = tmp_path / "m.jsonl"
    m.write_text('{"path": "ok.wav", "duration": 1.0, "sample_rate": 16000}\n\n' + line + "\n")
    with pytest.raises(ManifestError, match=re.escape(f"{m}:3") + ".*" + msg):
        read_manifest(m)


def test_read_manifest_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- building
def _folder_with_bad_files(root):
    sub = root / "sub" / "deeper"
    sub.mkdir(parents=True)
    good = {
        root / "a.wav": (0.5, 16000, 1),
        root / "b.flac": (0.3, 22050, 1),
        sub / "c.ogg": (0.4, 16000, 1),
        sub / "d.aiff": (0.2, 8000, 2),
        root / "E.WAV": (0.25, 16000, 1),  # extension matched case-insensitively
        root / "f.mp3": (0.6, 16000, 1),
    }
    for p, (sec, sr, ch) in good.items():
        sf.write(p, _tone(sec, sr, channels=ch), sr)
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(256)) * 4)
    (root / "empty.flac").write_bytes(b"")
    sf.write(root / "short.wav", _tone(0.01, 16000), 16000)
    (root / "notes.txt").write_text("not audio, not a candidate")
    return good


def test_folder_manifest_reports_corrupt_empty_and_short(tmp_path, caplog):
    good = _folder_with_bad_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="audiodiff.data.manifest"):
        rep = build_manifest(tmp_path, out=tmp_path / "manifest.jsonl")
    reasons = {os.path.basename(p): r for p, r in rep.skipped}
    assert set(reasons) == {"corrupt.wav", "empty.flac", "short.wav"}
    assert "cannot decode" in reasons["corrupt.wav"]
    assert "empty" in reasons["empty.flac"]
    assert "too short" in reasons["short.wav"] and "0.0100" in reasons["short.wav"]
    assert all(name in caplog.text for name in reasons)
    # kept files: exactly the good ones, durations/rates from soundfile's header
    assert sorted(e["path"] for e in rep.entries) == sorted(str(p.resolve()) for p in good)
    for e in rep.entries:
        i = sf.info(e["path"])
        assert e["sample_rate"] == i.samplerate and e["channels"] == i.channels
        assert e["duration"] == pytest.approx(i.frames / i.samplerate, abs=1e-6)
    lossless = {e["path"]: e for e in rep.entries}
    assert lossless[str((tmp_path / "b.flac").resolve())]["duration"] == pytest.approx(0.3, abs=1e-4)
    assert read_manifest(tmp_path / "manifest.jsonl") == rep.entries
    # a lower threshold keeps the 0.01 s file
    assert len(build_manifest(tmp_path, min_duration=0.005).entries) == len(good) + 1


def test_mostly_failing_source_is_an_error(tmp_path):
    sf.write(tmp_path / "ok.wav", _tone(0.5, 8000), 8000)
    for i in range(2):
        (tmp_path / f"bad{i}.wav").write_bytes(b"garbage" * 10)
    with pytest.raises(ManifestError, match=r"2 of 3 files are unusable.*bad0\.wav"):
        build_manifest(tmp_path)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(ManifestError, match="no audio files"):
        build_manifest(tmp_path)


def test_csv_source_with_labels(tmp_path):
    (tmp_path / "clips").mkdir()
    for name in ("x.wav", "y.wav"):
        sf.write(tmp_path / "clips" / name, _tone(0.2, 8000), 8000)
    (tmp_path / "meta.csv").write_text("file,pitch,instrument,note\nclips/x.wav,60,alto,\nclips/y.wav,61.5,tenor,hi\n")
    rep = build_manifest(tmp_path / "meta.csv", path_column="file")
    by = {os.path.basename(e["path"]): e for e in rep.entries}
    assert by["x.wav"]["pitch"] == 60 and isinstance(by["x.wav"]["pitch"], int)
    assert by["y.wav"]["pitch"] == 61.5 and by["y.wav"]["instrument"] == "tenor" and by["y.wav"]["note"] == "hi"
    assert "note" not in by["x.wav"]  # empty cell -> absent
    only = build_manifest(tmp_path / "meta.csv", path_column="file", label_fields=["pitch"])
    assert all(set(e) == {"path", "duration", "sample_rate", "channels", "pitch"} for e in only.entries)
    with pytest.raises(ManifestError, match=r"no 'path' column; columns are \['file'"):
        build_manifest(tmp_path / "meta.csv")


def test_label_from_regex_and_unmatched_names(tmp_path):
    for name in ("3_jo_0.wav", "7_theo_12.wav", "4_ann_1.wav", "weird.wav"):
        sf.write(tmp_path / name, _tone(0.2, 8000), 8000)
    rep = build_manifest(tmp_path, label_from=FSDD_PATTERN)
    got = {os.path.basename(e["path"]): (e["label"], e["speaker"]) for e in rep.entries}
    assert got == {"3_jo_0.wav": (3, "jo"), "7_theo_12.wav": (7, "theo"), "4_ann_1.wav": (4, "ann")}
    assert [(os.path.basename(p), "does not match" in r) for p, r in rep.skipped] == [("weird.wav", True)]


def test_label_from_folder(tmp_path):
    for cls in ("kick", "snare"):
        (tmp_path / cls).mkdir()
        sf.write(tmp_path / cls / "1.wav", _tone(0.2, 8000), 8000)
    rep = build_manifest(tmp_path, label_from="folder")
    assert sorted(e["label"] for e in rep.entries) == ["kick", "snare"]


def test_shared_manifests_agree(shared_data, tmp_path):
    """Rebuilding every shared dataset's manifest from its folder gives the same files, durations and rates."""
    for name in SHARED:
        folder = shared_data / name
        ref = read_manifest(folder / "manifest.jsonl")
        ref_by = {}
        for e in ref:  # the sax manifest lists two files twice (with different pitches); they must agree
            ref_by.setdefault(e["path"], e)
        rep = build_manifest(folder, label_from=FSDD_PATTERN if name == "fsdd" else None)
        assert rep.skipped == []
        assert [e["path"] for e in rep.entries] == sorted(ref_by)
        for e in rep.entries:
            r = ref_by[e["path"]]
            assert e["sample_rate"] == r["sample_rate"]
            assert e["duration"] == pytest.approx(r["duration"], abs=1e-3), e["path"]
            if name == "fsdd":
                assert (e["label"], e["speaker"]) == (r["label"], r["speaker"])
        if name == "piano":  # re-probing a JSONL keeps its labels (and every line)
            again = build_manifest(folder / "manifest.jsonl", out=tmp_path / "piano.jsonl")
            assert [(e["path"], e["pitch"], e["velocity"]) for e in again.entries] == \
                sorted((e["path"], e["pitch"], e["velocity"]) for e in ref)


# --------------------------------------------------------------------------- splitting
def _entries(n, root="/data/set"):
    return [{"path": f"{root}/clips/{i:04d}.wav", "duration": 1.0, "sample_rate": 16000,
             "speaker": f"s{i % 7}"} for i in range(n)]


def test_split_deterministic_disjoint_complete():
    es = _entries(200)
    train, valid = split_manifest(es, 0.1, seed=3)
    assert len(valid) == 20 and len(train) == 180
    assert {e["path"] for e in train}.isdisjoint(e["path"] for e in valid)
    assert sorted(e["path"] for e in train + valid) == sorted(e["path"] for e in es)
    assert split_manifest(es, 0.1, seed=3) == (train, valid)
    assert split_manifest(list(reversed(es)), 0.1, seed=3)[1] == list(reversed(valid))  # order-independent
    assert split_manifest(es, 0.1, seed=4)[1] != valid
    # the dataset's location does not change the split
    moved = split_manifest(_entries(200, root="/mnt/other/copy"), 0.1, seed=3)[1]
    assert [e["path"].split("/")[-1] for e in moved] == [e["path"].split("/")[-1] for e in valid]


def test_split_group_by_keeps_groups_apart_and_validates():
    es = _entries(70)
    train, valid = split_manifest(es, 0.3, seed=0, group_by="speaker")
    assert {e["speaker"] for e in train}.isdisjoint({e["speaker"] for e in valid})
    assert len(valid) == 20  # 2 of 7 speakers x 10 files: reaching round(0.3 * 70) = 21 needs whole groups
    with pytest.raises(ManifestError, match="lack group_by field 'accent'"):
        split_manifest(es, 0.3, group_by="accent")
    with pytest.raises(ManifestError, match=r"valid_fraction must be in \[0, 1\)"):
        split_manifest(es, 1.0)
    assert split_manifest(es[:2], 0.01) [1] != []  # at least one validation item
    assert split_manifest(es[:1], 0.5) == (es[:1], [])  # and at least one training item
