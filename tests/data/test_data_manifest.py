"""Manifests: JSONL round trip, building from folders / CSV / JSONL with bad files reported, splits."""
import json
import logging
import os
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodiff import cli
from audiodiff.audio import AudioError
from audiodiff.data import manifest as manifest_mod
from audiodiff.data.manifest import (
    ManifestError, ManifestUsageError, build_manifest, probe, read_manifest, split_manifest, write_manifest,
)
from audiodiff.errors import UsageError

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


def _write(path, seconds=0.2, sr=8000, channels=1, amp=0.5, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, amp / 0.5 * _tone(seconds, sr, channels=channels), sr, **kw)
    return path


def _names(report):
    return sorted(os.path.relpath(e["path"]) for e in report.entries)


def _mp3_shorter_than_its_header(path, sr=44100, channels=2):
    """A soundfile MP3 with 300 bytes cut off its end: the header still says 1 s, fewer frames decode (as with
    sox's MP3s, whose header count is an estimate). Returns the decoded frame count."""
    _write(path, 1.0, sr, channels)
    path.write_bytes(path.read_bytes()[:-300])
    decoded = len(sf.read(path, always_2d=True)[0])
    assert sf.info(path).frames == sr > decoded
    return decoded


# --------------------------------------------------------------------------- formats, rates, channels
def test_every_format_rate_and_channel_count_is_kept_and_summarised(tmp_path):
    """WAV, FLAC, OGG/Vorbis and MP3 at 44.1 kHz stereo and 16 kHz mono, upper-case extensions, nested folders."""
    src = tmp_path / "recordings"
    made = {}
    for i, (ext, sub) in enumerate([(".WAV", ""), (".flac", "2024/june"), (".Ogg", "2024"), (".Mp3", "2024/a/b")]):
        for sr, ch in ((44100, 2), (16000, 1)):
            p = _write(src / sub / f"take{i}_{sr}{ext}", 0.5 + 0.1 * i, sr, ch)
            made[str(p.resolve())] = (sr, ch)
    (src / "readme.txt").write_text("not audio")
    rep = build_manifest(src, out=tmp_path / "m.jsonl")
    assert rep.skipped == []
    assert {e["path"]: (e["sample_rate"], e["channels"]) for e in rep.entries} == made
    for e in rep.entries:  # the duration is what decodes
        assert e["duration"] == round(len(sf.read(e["path"])[0]) / e["sample_rate"], 6)
    lines = str(rep).splitlines()
    assert lines[0] == f"{src}: 8 files kept (0.00 h), 0 skipped of 8"
    assert "  sample rates: 16000 Hz (4), 44100 Hz (4)" in lines
    assert "  channels: mono (4), stereo (4)" in lines
    assert "  formats: .flac (2), .mp3 (2), .ogg (2), .wav (2)" in lines
    assert f"  manifest: written to {tmp_path / 'm.jsonl'} (8 entries)" in lines
    # one first-level sub-folder ("2024"): no labels from folder names
    assert all("label" not in e for e in rep.entries)
    total = sum(e["duration"] for e in rep.entries)
    d = sorted(e["duration"] for e in rep.entries)
    assert (f"  duration: total 0.00 h ({total:.1f} s); per file min {d[0]:.3f} s, "
            f"median {(d[3] + d[4]) / 2:.3f} s, max {d[-1]:.3f} s") in lines


def test_mp3_whose_header_overstates_its_frames_is_kept_with_the_decoded_duration(tmp_path):
    decoded = _mp3_shorter_than_its_header(tmp_path / "clips" / "x.mp3")
    rep = build_manifest(tmp_path / "clips")
    assert rep.skipped == []
    assert [e["duration"] for e in rep.entries] == [round(decoded / 44100, 6)]
    assert probe(tmp_path / "clips" / "x.mp3", decode=False)["duration"] == 1.0  # the header's estimate


# --------------------------------------------------------------------------- silence
def test_silent_files_are_left_out_below_the_threshold(tmp_path):
    _write(tmp_path / "zeros.wav", amp=0.0)
    _write(tmp_path / "hiss.wav", amp=10 ** (-70 / 20), subtype="FLOAT")   # peak -70 dBFS
    _write(tmp_path / "quiet.wav", amp=10 ** (-50 / 20), subtype="FLOAT")  # peak -50 dBFS: kept
    _write(tmp_path / "loud.wav")
    rep = build_manifest(tmp_path)
    assert _names(rep) == sorted(os.path.relpath(tmp_path / n) for n in ("loud.wav", "quiet.wav"))
    assert sorted((os.path.basename(p), r) for p, r in rep.skipped) == [
        ("hiss.wav", "is silent (peak -70.0 dBFS, below -60 dBFS)"),
        ("zeros.wav", "is silent (peak -inf dBFS, below -60 dBFS)")]
    assert "or is silent (peak below silence_db=-60 dBFS)" in str(rep)  # the rule is stated
    assert len(build_manifest(tmp_path, silence_db=-80).entries) == 3  # -70 dBFS is above -80
    assert len(build_manifest(tmp_path, silence_db=None).entries) == 4
    with pytest.raises(AudioError, match=r"is silent \(peak -inf dBFS, below -60 dBFS\)"):
        probe(tmp_path / "zeros.wav")
    assert probe(tmp_path / "zeros.wav", decode=False)["duration"] == 0.2  # headers only: not checked
    for bad in (5, "loud", float("nan"), True):
        with pytest.raises(ManifestUsageError, match=r"silence_db=.* is not allowed; allowed: a number of dBFS <= 0"):
            build_manifest(tmp_path, silence_db=bad)


# --------------------------------------------------------------------------- labels from folders
def _classes(root, layout):
    for rel in layout:
        _write(root / rel)
    return root


def test_label_from_folder_is_the_first_level_sub_folder_as_a_string(tmp_path):
    src = _classes(tmp_path / "my_wavs", ["yes/session1/a.wav", "yes/b.wav", "no/deep/er/c.wav", "3/d.wav"])
    rep = build_manifest(src, label_from="folder")
    got = {os.path.relpath(e["path"], src): e["label"] for e in rep.entries}
    assert got == {"yes/session1/a.wav": "yes", "yes/b.wav": "yes", "no/deep/er/c.wav": "no", "3/d.wav": "3"}
    assert "  label field 'label': 3 classes: 3 (1), no (1), yes (2)" in str(rep).splitlines()
    # a file lying directly in the source has no class folder: left out with that reason
    _write(src / "loose.wav")
    rep = build_manifest(src, label_from="folder")
    assert rep.skipped == [(str(src / "loose.wav"),
                            f"lies directly in {src}, not in a sub-folder naming its class (label_from=folder)")]


def test_labels_come_from_sub_folders_by_default_when_every_file_is_in_one(tmp_path, capsys):
    src = _classes(tmp_path / "my_wavs", ["yes/session1/a.wav", "yes/b.wav", "no/c.wav"])
    rep = build_manifest(src)
    assert sorted((os.path.basename(e["path"]), e["label"]) for e in rep.entries) == [
        ("a.wav", "yes"), ("b.wav", "yes"), ("c.wav", "no")]
    lines = str(rep).splitlines()
    assert "  labels: from sub-folder names (field 'label'), 2 classes; label_from=none to leave them out" in lines
    assert "  label field 'label': 2 classes: no (1), yes (2)" in lines
    assert all("label" not in e for e in build_manifest(src, label_from="none").entries)
    assert "  labels: none (label_from=none)" in str(build_manifest(src, label_from="none")).splitlines()
    # one sub-folder only: no labels
    assert all("label" not in e for e in build_manifest(src / "yes").entries)
    # a file directly in the source: no automatic labels, and the summary says why
    _write(src / "loose.wav")
    rep = build_manifest(src)
    assert len(rep.entries) == 4 and all("label" not in e for e in rep.entries)
    assert [x for x in str(rep).splitlines() if x.startswith(("  labels", "  no labels"))] == [
        f"  no labels: 1 file lies directly in {src} (the others in 2 sub-folders); move it into sub-folders for "
        "labels from the sub-folder names, or give label_from=folder to leave it out"]


# --------------------------------------------------------------------------- labels from a table
def test_labels_table_csv_by_relative_path_or_unique_file_name(tmp_path, caplog):
    src = _classes(tmp_path / "my_wavs", ["a.wav", "sub/b.wav", "sub/c.wav", "other/c.wav", "unlisted.wav"])
    table = tmp_path / "labels.csv"
    table.write_text("file,word,take\na.wav,yes,1\nsub/b.wav,no,02\nsub/c.wav,3,\nother/c.wav,no,4\n"
                     "gone.wav,yes,5\nsub/missing.wav,no,6\n")
    with caplog.at_level(logging.WARNING, logger="audiodiff.data.manifest"):
        rep = build_manifest(src, labels=table)
    got = {os.path.relpath(e["path"], src): {k: e[k] for k in ("word", "take") if k in e} for e in rep.entries}
    assert got == {"a.wav": {"word": "yes", "take": "1"}, "sub/b.wav": {"word": "no", "take": "02"},
                   "sub/c.wav": {"word": "3"}, "other/c.wav": {"word": "no", "take": "4"}}  # cells stay strings
    assert rep.skipped == [(str(src / "unlisted.wav"), f"not in the labels table {table}")]
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("labels table")]
    assert warned == [f"labels table {table}: 2 rows name files that are not audio files in {src}: gone.wav, "
                      "sub/missing.wav"]
    assert f"  labels: from the table {table} (fields 'word', 'take')" in str(rep).splitlines()
    # a bare name that two files share is refused, naming the table
    table.write_text("path,word\nc.wav,yes\n")
    with pytest.raises(ManifestError, match=rf"^labels table {re.escape(str(table))}, line 2: 'c.wav' matches 2 files"):
        build_manifest(src, labels=table)


def test_files_left_out_by_the_table_do_not_count_as_failures(tmp_path):
    src = _classes(tmp_path / "w", [f"{i}.wav" for i in range(4)])
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"0.wav": "yes"}))
    rep = build_manifest(src, labels=table)  # 3 of 4 left out, but none is unusable
    assert [e["label"] for e in rep.entries] == ["yes"] and len(rep.skipped) == 3
    table.write_text(json.dumps({"nope.wav": "yes"}))
    with pytest.raises(ManifestError, match=rf"^labels table {re.escape(str(table))} names none of the 4 audio files"):
        build_manifest(src, labels=table)


def test_labels_table_json_object_and_list_keep_numbers_and_strings(tmp_path):
    src = _classes(tmp_path / "w", ["yes/a.wav", "b.wav", "c.wav"])
    obj = tmp_path / "t.json"
    obj.write_text(json.dumps({"yes/a.wav": "yes", "b.wav": 3, "./c.wav": {"label": "3", "pitch": 60.5}}))
    rep = build_manifest(src, labels=obj)
    got = {os.path.basename(e["path"]): {k: e[k] for k in ("label", "pitch") if k in e} for e in rep.entries}
    assert got == {"a.wav": {"label": "yes"}, "b.wav": {"label": 3}, "c.wav": {"label": "3", "pitch": 60.5}}
    assert type(got["b.wav"]["label"]) is int
    lst = tmp_path / "l.json"
    lst.write_text(json.dumps([{"path": "yes/a.wav", "speaker": "jo", "n": 1}, {"file": "b.wav", "speaker": "al"},
                               {"file": "c.wav", "speaker": "al", "n": None}]))
    rep = build_manifest(src, labels=lst, label_fields=["speaker"])
    assert sorted((os.path.basename(e["path"]), e["speaker"], "n" in e) for e in rep.entries) == [
        ("a.wav", "jo", False), ("b.wav", "al", False), ("c.wav", "al", False)]


@pytest.mark.parametrize("content, name, error, fragment", [
    ("path,word\na.wav,yes\n", "t.csv", ManifestUsageError, r"label field\(s\) \['speaker'\] not in it"),
    ("name,word\na.wav,yes\n", "t.csv", ManifestUsageError, r"has no 'path' or 'file' column naming the files"),
    ("{not json", "t.json", ManifestError, r"is not valid JSON \(Expecting property name"),
    ("[1, 2]", "t.json", ManifestError, r"item 0: expected an object with a 'path' or 'file' string"),
    ('{"a.wav": [1, 2]}', "t.json", ManifestError, r"key 'a.wav', field 'label' holds a list; allowed: a string"),
    ("a.wav yes", "t.txt", ManifestUsageError, r"expected a \.csv or \.json file"),
    (None, "missing.csv", ManifestUsageError, r"does not exist; give labels=<table.csv\|table.json>"),
])
def test_labels_table_errors_are_one_line_naming_the_table(tmp_path, content, name, error, fragment):
    src = _classes(tmp_path / "w", ["a.wav"])
    table = tmp_path / name
    if content is not None:
        table.write_text(content)
    with pytest.raises(error) as ei:
        build_manifest(src, labels=table, label_fields=["speaker"] if "speaker" in fragment else None)
    msg = str(ei.value)
    assert "\n" not in msg and re.search(rf"^labels table {re.escape(str(table))}\b.*{fragment}", msg), msg
    assert isinstance(ei.value, UsageError) == (error is ManifestUsageError)


def test_labels_table_only_for_folders_and_not_with_the_same_field_from_names(tmp_path):
    src = _classes(tmp_path / "w", ["x/a.wav", "y/b.wav"])
    (tmp_path / "t.csv").write_text("path,label\nx/a.wav,1\n")
    with pytest.raises(ManifestUsageError, match=r"both give the field\(s\) \['label'\]; use one of them"):
        build_manifest(src, labels=tmp_path / "t.csv", label_from="folder")
    m = write_manifest([{"path": str(src / "x" / "a.wav"), "duration": 0.2, "sample_rate": 8000}], tmp_path / "m.jsonl")
    with pytest.raises(ManifestUsageError, match=r"labels=.* is for a folder source; .* is a JSONL file"):
        build_manifest(m, labels=tmp_path / "t.csv")


# --------------------------------------------------------------------------- label_from checked up front
@pytest.mark.parametrize("label_from", ["folders", r"\d+_\w+\.wav", "(?P<label", "Folder"])
def test_bad_label_from_is_one_usage_error_before_any_file_is_read(tmp_path, monkeypatch, label_from):
    _classes(tmp_path, [f"{i}.wav" for i in range(53)])
    read = []
    monkeypatch.setattr(manifest_mod, "probe", lambda *a, **k: read.append(a))
    with pytest.raises(ManifestUsageError) as ei:
        build_manifest(tmp_path, label_from=label_from)
    assert str(ei.value) == (f"label_from={label_from!r} is neither 'folder', 'none' nor a regular expression with "
                             "named groups (?P<name>...); e.g. label_from=folder")
    assert read == [] and isinstance(ei.value, UsageError) and ei.value.exit_code == 2


# --------------------------------------------------------------------------- one warning, the full report
def test_one_warning_and_a_report_grouped_by_reason(tmp_path, caplog):
    good = [_write(tmp_path / f"ok{i}.wav") for i in range(6)]
    for i in range(2):
        _write(tmp_path / f"silent{i}.wav", amp=0.0)
    _write(tmp_path / "short.wav", seconds=0.01)
    (tmp_path / "junk.wav").write_bytes(b"RIFF" + bytes(100))
    with caplog.at_level(logging.WARNING, logger="audiodiff.data.manifest"):
        rep = build_manifest(tmp_path)
    assert len(rep.entries) == len(good)
    records = [r for r in caplog.records if r.name == "audiodiff.data.manifest"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    msg = records[0].getMessage()
    assert msg.startswith(f"manifest {tmp_path}: 4 of 10 files left out: is silent (2), cannot decode (1), "
                          "is too short (1); first: ")
    lines = str(rep).splitlines()
    at = lines.index("  skipped 4 files, by reason:")
    assert lines[at + 1:at + 8] == [
        "    is silent (2):",
        f"      skipped {tmp_path / 'silent0.wav'}: is silent (peak -inf dBFS, below -60 dBFS)",
        f"      skipped {tmp_path / 'silent1.wav'}: is silent (peak -inf dBFS, below -60 dBFS)",
        "    cannot decode (1):",
        f"      skipped {tmp_path / 'junk.wav'}: {dict(rep.skipped)[str(tmp_path / 'junk.wav')]}",
        "    is too short (1):",
        f"      skipped {tmp_path / 'short.wav'}: is too short: 0.0100 s < min_duration 0.05 s",
    ]


def test_label_classes_shown_are_at_most_20(tmp_path):
    src = _classes(tmp_path / "w", [f"c{i:02d}/a.wav" for i in range(23)])
    line = [x for x in str(build_manifest(src)).splitlines() if x.startswith("  label field")]
    shown = ", ".join(f"c{i:02d} (1)" for i in range(20))
    assert line == [f"  label field 'label': 23 classes: {shown}, ... and 3 more"]


def test_missing_source_and_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(ManifestUsageError, match=r"^source .*nope does not exist; give a folder of audio"):
        build_manifest(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ManifestUsageError, match=r"expected a folder, a \.csv or a \.jsonl file"):
        build_manifest(tmp_path / "x.txt")
    with pytest.raises(ManifestUsageError, match=r"min_duration=-1 is not allowed"):
        build_manifest(tmp_path, min_duration=-1)
    with pytest.raises(ManifestUsageError, match=r"max_fail_fraction=2 is not allowed; allowed: a number in \[0, 1\]"):
        build_manifest(tmp_path, max_fail_fraction=2)


# --------------------------------------------------------------------------- audiodiff prepare
def _main(capsys, argv):
    try:
        cli.main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prepare_a_folder_of_class_folders(tmp_path, capsys):
    src = tmp_path / "my_wavs"
    _write(src / "yes" / "a.WAV", 0.5, 44100, 2)
    _write(src / "yes" / "session1" / "b.flac", 0.3, 16000)
    _write(src / "no" / "c.ogg", 0.4, 16000)
    decoded = _mp3_shorter_than_its_header(src / "no" / "d.Mp3", 16000, 1)
    _write(src / "no" / "zeros.wav", amp=0.0)
    code, out, err = _main(capsys, ["prepare", f"source={src}"])
    assert code == 0
    rows = read_manifest(src / "manifest.jsonl")
    assert [(os.path.relpath(e["path"], src), e["label"]) for e in rows] == [
        ("no/c.ogg", "no"), ("no/d.Mp3", "no"), ("yes/a.WAV", "yes"), ("yes/session1/b.flac", "yes")]
    assert rows[1]["duration"] == round(decoded / 16000, 6)
    lines = out.splitlines()
    assert lines[0] == f"{src}: 4 files kept (0.00 h), 1 skipped of 5"
    for line in ["  sample rates: 16000 Hz (3), 44100 Hz (1)", "  channels: mono (3), stereo (1)",
                 "  formats: .flac (1), .mp3 (1), .ogg (1), .wav (1)",
                 "  labels: from sub-folder names (field 'label'), 2 classes; label_from=none to leave them out",
                 "  label field 'label': 2 classes: no (2), yes (2)",
                 f"      skipped {src / 'no' / 'zeros.wav'}: is silent (peak -inf dBFS, below -60 dBFS)",
                 f"  manifest: written to {src / 'manifest.jsonl'} (4 entries)"]:
        assert line in lines, (line, out)
    # silence_db=null keeps the silent file; label_from=none drops the labels
    code, out, _ = _main(capsys, ["prepare", f"source={src}", "silence_db=null", "label_from=none",
                                  f"out={tmp_path / 'all.jsonl'}"])
    assert code == 0 and [("label" in e) for e in read_manifest(tmp_path / "all.jsonl")] == [False] * 5


def test_cli_prepare_with_a_labels_table(tmp_path, capsys):
    src = _classes(tmp_path / "w", ["a.wav", "b.wav"])
    (tmp_path / "t.csv").write_text("file,word\na.wav,yes\nb.wav,no\n")
    code, out, _ = _main(capsys, ["prepare", f"source={src}", f"labels={tmp_path / 't.csv'}"])
    assert code == 0
    assert [e["word"] for e in read_manifest(src / "manifest.jsonl")] == ["yes", "no"]
    assert f"  labels: from the table {tmp_path / 't.csv'} (field 'word')" in out.splitlines()


@pytest.mark.parametrize("extra, code, message", [
    (["label_from=folders"], 2, "label_from='folders' is neither 'folder', 'none' nor a regular expression with "
                                "named groups (?P<name>...); e.g. label_from=folder"),
    (["silence_db=loud"], 2, "silence_db='loud' is not allowed; allowed: a number of dBFS <= 0 (e.g. -60), or None "
                             "to keep silent files"),
    (["labels=nope.csv"], 2, "labels table nope.csv does not exist; give labels=<table.csv|table.json> naming each "
                             "file (path relative to the source folder) and its label"),
])
def test_cli_prepare_bad_settings_exit_2_with_one_line(tmp_path, capsys, extra, code, message):
    _classes(tmp_path, [f"{i}.wav" for i in range(53)])
    got, out, err = _main(capsys, ["prepare", f"source={tmp_path}", *extra])
    assert (got, out, err) == (code, "", f"audiodiff prepare: error: {message}\n")


def test_cli_prepare_missing_source_exits_2(tmp_path, capsys):
    got, out, err = _main(capsys, ["prepare", f"source={tmp_path / 'my_wavs'}"])
    assert (got, out) == (2, "")
    assert err == (f"audiodiff prepare: error: source {tmp_path / 'my_wavs'} does not exist; give a folder of audio, "
                   "a .csv or a .jsonl manifest\n")


def test_custom_recipe_prepares_a_folder(tmp_path, capsys, monkeypatch):
    src = _classes(tmp_path / "mine", ["kick/1.wav", "snare/2.wav"])
    _write(src / "kick" / "0.wav", amp=0.0)
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "custom" / "prepare.py"
    monkeypatch.setattr(sys, "argv", [str(recipe), str(src), str(tmp_path / "m.jsonl")])
    runpy.run_path(str(recipe), run_name="__main__")
    assert [e["label"] for e in read_manifest(tmp_path / "m.jsonl")] == ["kick", "snare"]
    out = capsys.readouterr().out
    assert out.startswith(f"{src}: 2 files kept (0.00 h), 1 skipped of 3\n")
    assert f"      skipped {src / 'kick' / '0.wav'}: is silent (peak -inf dBFS, below -60 dBFS)" in out


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
