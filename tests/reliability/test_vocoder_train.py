"""Issue 13, vocoder training: `train_vocoder` handles its run directory as `audiodiff.train` does.

The run directory is locked while it trains (a second trainer gets one line naming the holder), what a killed run
left in `checkpoints/` is removed at start, `train.resume=false` never overwrites a run, and `metrics.jsonl` holds
every row up to a checkpoint when it is written and each step once after a resume. The configs are the tiny GAN
vocoder of tests/vocoders/test_train.py (a few seconds per run on CPU).
"""
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from audiodiff.errors import AudiodiffError, UsageError
from audiodiff.runs import checkpoint as ckpt
from audiodiff.runs.checkpoint import list_checkpoints
from audiodiff.training.lock import LockHeld, RunLock, read_holder
from audiodiff.training.runtime import RunDirBusyError, RunDirExistsError
from audiodiff.training.vocoder import train_vocoder
from tests.helpers import tiny_vocoder_cfg

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HOLD = ("import sys, time; from audiodiff.training.lock import RunLock; "
        "lock = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)")


def _cfg(shared_data, run_dir, **train):
    return tiny_vocoder_cfg(shared_data, run_dir, **train)


def steps_of(run_dir):
    return [int(d.name) for d in list_checkpoints(run_dir)]


def row_steps(run_dir):
    return [json.loads(line)["step"] for line in open(Path(run_dir) / "metrics.jsonl")]


def leftovers(run_dir):
    root = Path(run_dir) / "checkpoints"
    complete = {d.name for d in list_checkpoints(run_dir)}
    return sorted(p.name for p in root.iterdir() if p.name not in complete and p.name != "last")


@pytest.fixture(scope="module")
def base_run(shared_data, tmp_path_factory):
    """A finished 2-step vocoder run (checkpoint 2, metrics rows 1-2); tests copy it before changing anything."""
    return train_vocoder(_cfg(shared_data, tmp_path_factory.mktemp("voc") / "run"))


@pytest.fixture
def run_copy(base_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst)
    return dst


def test_a_second_process_holding_the_lock_stops_vocoder_training_naming_it(shared_data, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirBusyError) as e:
            train_vocoder(_cfg(shared_data, run))
        msg = str(e.value)
        assert isinstance(e.value, AudiodiffError) and "\n" not in msg
        assert f"pid {holder.pid} on host {socket.gethostname()}" in msg and str(run / ".lock") in msg
        assert "another run_dir" in msg
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # no checkpoint, config, metrics or logs
    finally:
        holder.send_signal(signal.SIGKILL)  # the OS drops the flock of a killed holder
        holder.wait()
    train_vocoder(_cfg(shared_data, run))
    assert steps_of(run) == [2] and row_steps(run) == [1, 2]
    with RunLock(run):  # released when train_vocoder returns
        pass
    assert read_holder(run) == {}


def test_leftovers_of_a_killed_vocoder_run_are_cleaned_at_start_and_logged(run_copy, shared_data, caplog):
    run, root = run_copy, run_copy / "checkpoints"
    (root / ".tmp-000000004-abc").mkdir()
    (root / ".tmp-000000004-abc" / "model.safetensors").write_bytes(b"half")
    (root / ".trash-000000001-def").mkdir()
    (root / ".last-xyz").write_text("000000004\n")
    (root / "000000006").mkdir()  # empty
    (root / "000000008").mkdir()  # partial: weights but no meta.json
    shutil.copy(root / "000000002" / "model.safetensors", root / "000000008")
    (root / "last").write_text("000000008\n")
    with caplog.at_level(logging.WARNING, logger="audiodiff.checkpoint"):
        train_vocoder(_cfg(shared_data, run, steps=4, resume="force"))
    for name in (".tmp-000000004-abc", ".trash-000000001-def", ".last-xyz", "000000006", "000000008"):
        assert f"removed {root / name}" in caplog.text, name
    assert steps_of(run) == [2, 4] and leftovers(run) == []  # resumed from 2, not from the partial 8
    assert (root / "last").read_text().strip() == "000000004"
    assert row_steps(run) == [1, 2, 3, 4]


def test_resume_false_on_an_existing_vocoder_run_refuses_and_keeps_it(run_copy, shared_data):
    before = {p.relative_to(run_copy): p.read_bytes() for p in sorted(run_copy.rglob("*")) if p.is_file()}
    with pytest.raises(RunDirExistsError) as e:
        train_vocoder(_cfg(shared_data, run_copy, steps=4, resume=False))
    msg = str(e.value)
    assert isinstance(e.value, UsageError) and e.value.exit_code == 2 and "\n" not in msg
    assert str(run_copy) in msg and "steps [2]" in msg and "train.resume=true" in msg and "new run_dir" in msg
    after = {p.relative_to(run_copy): p.read_bytes() for p in sorted(run_copy.rglob("*")) if p.is_file()}
    assert {k: v for k, v in after.items() if k.name != ".lock"} == \
        {k: v for k, v in before.items() if k.name != ".lock"}


def test_metrics_rows_are_on_disk_before_each_checkpoint_and_the_lock_is_held(shared_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    on_disk, holders = {}, []
    real = ckpt.save_checkpoint

    def save(run_dir, step, *a, **k):  # what a kill -9 during this checkpoint write would leave
        on_disk[step] = row_steps(run_dir)
        holders.append(read_holder(run_dir).get("pid"))
        with pytest.raises(LockHeld, match="in use by pid"):  # a second trainer could not start now
            RunLock(run_dir).acquire()
        return real(run_dir, step, *a, **k)

    monkeypatch.setattr(ckpt, "save_checkpoint", save)
    train_vocoder(_cfg(shared_data, run, steps=4))
    assert on_disk == {2: [1, 2], 4: [1, 2, 3, 4]} and holders == [os.getpid()] * 2
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 4 and {"loss/gen", "loss/mel_l1", "loss/disc", "lr"} <= set(row)


def test_resume_drops_the_rows_after_the_checkpoint_so_each_step_is_logged_once(run_copy, shared_data, caplog):
    run = run_copy
    with open(run / "metrics.jsonl", "a") as f:  # a run killed after logging steps 3-4 but before checkpoint 4
        f.write(json.dumps({"step": 3, "loss/gen": 1.0}) + "\n")
        f.write(json.dumps({"step": 4, "loss/gen": 1.0}) + "\n")
        f.write('{"step": 5, "loss/g')  # a line cut off by the kill
    with caplog.at_level(logging.INFO, logger="audiodiff.train"):
        train_vocoder(_cfg(shared_data, run, steps=3, resume="force"))
    assert "dropped 3 row(s) after step 2" in caplog.text
    assert steps_of(run) == [2, 3] and row_steps(run) == [1, 2, 3]
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["loss/gen"] != 1.0


# ---------------------------------------------------------------------- the error classes a Python user catches
def test_the_error_classes_are_importable_from_audiodiff_without_loading_training():
    code = ("import sys, audiodiff\n"
            "heavy = [m for m in ('audiodiff.training.loop', 'audiodiff.data.waveform', 'audiodiff.data.mel_dataset', 'hydra', 'librosa', 'gradio')"
            " if m in sys.modules]\n"
            "from audiodiff import (AudiodiffError, UsageError, TrainingError, CheckpointError, PipelineError,\n"
            "                       AudioError, MelContractError, SaveError, DatasetError)\n"
            "from audiodiff.training.runtime import RunDirBusyError, TrainingConfigError\n"
            "from audiodiff.runs.checkpoint import CheckpointError as C\n"
            "assert C is CheckpointError and issubclass(RunDirBusyError, TrainingError)\n"
            "assert issubclass(TrainingConfigError, UsageError) and issubclass(PipelineError, UsageError)\n"
            "assert all(issubclass(c, AudiodiffError) for c in (TrainingError, CheckpointError, AudioError,\n"
            "                                                     MelContractError, SaveError, DatasetError))\n"
            "print(heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"  # none of them was imported by `import audiodiff`
