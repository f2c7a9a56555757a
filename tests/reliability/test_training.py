"""Issue 13, training side: every bad setting or file gets one clear line, nothing is lost, runs are safe to
interrupt (kill -9) and to share (one trainer per run directory). Each test reproduces a probe through the
Python API (`audiodiff.train`) or the checkpoint functions and checks the outcome on disk."""
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import audiodiff
from audiodiff.errors import AudiodiffError, UsageError
from audiodiff.runs import checkpoint as ckpt
from audiodiff.runs.checkpoint import CheckpointError, clean_run_dir, list_checkpoints, load_checkpoint, resolve
from audiodiff.runs.vocoder import load_vocoder
from audiodiff.training import loop, runtime
from audiodiff.training.lock import RunLock, read_holder
from audiodiff.vocoders import VocoderError
from tests.helpers import tiny_cfg

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def rows(run_dir):
    return [json.loads(line) for line in open(Path(run_dir) / "metrics.jsonl")]


def steps_of(run_dir):
    return [int(d.name) for d in list_checkpoints(run_dir)]


def digest(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def leftovers(run_dir):
    """Everything in checkpoints/ that is neither a complete step folder nor `last`."""
    root = Path(run_dir) / "checkpoints"
    complete = {d.name for d in list_checkpoints(run_dir)}
    return sorted(p.name for p in root.iterdir() if p.name not in complete and p.name != "last")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished 2-step run (checkpoint 2); tests copy it before they change anything."""
    return audiodiff.train(tiny_cfg(tmp_path_factory.mktemp("base") / "run", steps=2))


@pytest.fixture
def run_copy(base_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst)
    return dst


# ---------------------------------------------------------------------------------------------- 3: resume=false
def test_resume_false_on_an_existing_run_refuses_and_keeps_every_checkpoint(run_copy):
    run = run_copy
    before = {d.name: digest(d / "model.safetensors") for d in list_checkpoints(run)}
    metrics_before = (run / "metrics.jsonl").read_text()
    with pytest.raises(runtime.RunDirExistsError) as e:
        audiodiff.train(tiny_cfg(run, steps=4, resume=False))
    assert isinstance(e.value, UsageError) and isinstance(e.value, runtime.TrainingError)
    msg = str(e.value)
    assert "\n" not in msg and str(run) in msg and "steps [2]" in msg
    assert "new run_dir" in msg and "train.resume=true" in msg
    assert {d.name: digest(d / "model.safetensors") for d in list_checkpoints(run)} == before
    assert (run / "checkpoints" / "last").read_text().strip() == "000000002"
    assert (run / "metrics.jsonl").read_text() == metrics_before


# ---------------------------------------------------------------------------------------------- 4: lock
HOLD = ("import sys, time; from audiodiff.training.lock import RunLock; "
        "lock = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)")


def test_a_second_process_holding_the_run_lock_blocks_training_until_it_dies(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        info = read_holder(run)
        assert info["pid"] == holder.pid and info["host"] == socket.gethostname() and info["started"]
        with pytest.raises(runtime.RunDirBusyError) as e:
            audiodiff.train(tiny_cfg(run, steps=2))
        msg = str(e.value)
        assert isinstance(e.value, AudiodiffError) and "\n" not in msg
        assert f"pid {holder.pid} on host {socket.gethostname()}" in msg and str(run / ".lock") in msg
        assert "another run_dir" in msg
        assert not (run / "checkpoints").exists() and not (run / "metrics.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # the OS drops a flock when its holder dies, even on kill -9
        holder.wait()
    audiodiff.train(tiny_cfg(run, steps=2))
    assert steps_of(run) == [2]
    with RunLock(run):  # released when train() returns
        pass
    assert read_holder(run) == {}


# ---------------------------------------------------------------------------------------------- 5: interrupted writes
def test_a_checkpoint_write_that_fails_midway_leaves_the_old_checkpoint_and_nothing_else(run_copy, monkeypatch):
    run = run_copy
    ck = load_checkpoint(run)
    old = digest(run / "checkpoints" / "000000002" / "model.safetensors")

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    # a new step: the write fails after model and ema are on disk
    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="000000004: could not write the checkpoint.*No space left"):
        ckpt.save_checkpoint(run, 4, ck["model"], ck["ema"], ck["train_state"], meta=ck["meta"])
    assert steps_of(run) == [2] and leftovers(run) == []
    assert (run / "checkpoints" / "last").read_text().strip() == "000000002"
    monkeypatch.undo()

    # the same step again: the swap into place fails after the old folder was moved aside -> it is put back
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name.startswith(".tmp-"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", failing_replace)
    with pytest.raises(CheckpointError, match="000000002: could not write"):
        ckpt.save_checkpoint(run, 2, {k: v + 1 for k, v in ck["model"].items()}, ck["ema"], ck["train_state"],
                             meta=ck["meta"])
    monkeypatch.undo()
    assert steps_of(run) == [2] and leftovers(run) == []
    assert digest(run / "checkpoints" / "000000002" / "model.safetensors") == old


def test_an_interrupted_prune_never_leaves_a_partial_step_folder(run_copy, monkeypatch):
    run = run_copy
    ck = load_checkpoint(run)
    real_rmtree = shutil.rmtree

    def killed_rmtree(path, *a, **k):  # deletes one file, then the process "dies"
        files = sorted(Path(path).iterdir())
        files[0].unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.shutil, "rmtree", killed_rmtree)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(run, 4, ck["model"], ck["ema"], ck["train_state"], meta=ck["meta"], keep=1)
    monkeypatch.setattr(ckpt.shutil, "rmtree", real_rmtree)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert [n for n in names if n.isdigit()] == ["000000004"], names  # step 2 left only under a .trash- name
    assert [n for n in names if n.startswith(".trash-000000002-")]
    assert resolve(run).name == "000000004"
    assert clean_run_dir(run) and leftovers(run) == []


def test_leftovers_of_a_killed_run_are_cleaned_at_start_and_logged(run_copy, caplog):
    run = run_copy
    root = run / "checkpoints"
    (root / ".tmp-000000004-abc").mkdir()
    (root / ".tmp-000000004-abc" / "model.safetensors").write_bytes(b"half")
    (root / ".trash-000000001-def").mkdir()
    (root / ".last-xyz").write_text("000000004\n")
    (root / "000000006").mkdir()  # empty
    (root / "000000008").mkdir()  # partial: no meta.json
    shutil.copy(root / "000000002" / "model.safetensors", root / "000000008")
    (root / "last").write_text("000000008\n")
    with caplog.at_level(logging.WARNING, logger="audiodiff.checkpoint"):
        audiodiff.train(tiny_cfg(run, steps=4, resume="force"))
    logged = caplog.text
    for name in (".tmp-000000004-abc", ".trash-000000001-def", ".last-xyz", "000000006", "000000008"):
        assert f"removed {root / name}" in logged, name
    assert steps_of(run) == [2, 4] and leftovers(run) == []
    assert (root / "last").read_text().strip() == "000000004"
    assert [r["step"] for r in rows(run)] == [1, 2, 3, 4]


def test_a_rewrite_interrupted_between_its_two_renames_is_restored(run_copy):
    run = run_copy
    root = run / "checkpoints"
    want = digest(root / "000000002" / "model.safetensors")
    os.rename(root / "000000002", root / ".old-000000002-1234")  # moved aside; the new copy never arrived
    (root / ".tmp-000000002-5678").mkdir()
    done = clean_run_dir(run)
    assert any(line.startswith(f"restored {root / '000000002'}") for line in done)
    assert steps_of(run) == [2] and leftovers(run) == []
    assert digest(root / "000000002" / "model.safetensors") == want


def test_resolve_picks_the_newest_complete_checkpoint_and_rewrites_last(tmp_path):
    run = audiodiff.train(tiny_cfg(tmp_path / "run", steps=4))
    (run / "checkpoints" / "last").write_text("000000002\n")  # a kill between the rename and the `last` update
    assert resolve(run).name == "000000004"
    assert (run / "checkpoints" / "last").read_text().strip() == "000000004"
    assert load_checkpoint(run)["step"] == 4


SLOW_WRITE = """
import json, sys, time
from audiodiff.runs import checkpoint
from audiodiff.training.loop import train
cfg, hang, marker = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
real = checkpoint._save_tensors
def slow(state, path):
    real(state, path)
    if path.name == "ema.safetensors" and path.parent.name.startswith(".tmp-" + hang):
        open(marker, "w").close()
        time.sleep(600)
checkpoint._save_tensors = slow
train(cfg)
"""


def test_sigkill_during_a_checkpoint_write_loses_nothing_and_resume_is_exact(tmp_path, caplog):
    ref = audiodiff.train(tiny_cfg(tmp_path / "ref", steps=6, log_every=100))
    run, marker = tmp_path / "killed", tmp_path / "writing"
    cfg = tiny_cfg(run, steps=6, log_every=100)  # metrics are flushed only before checkpoints
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, str(tmp_path / "cfg.json"), "000000004", str(marker)],
                            env=ENV)
    try:
        deadline = time.time() + 240
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the trainer never reached the checkpoint write of step 4"
        with pytest.raises(runtime.RunDirBusyError, match=f"pid {proc.pid}"):  # a live trainer holds the run
            audiodiff.train(cfg)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # killed inside the write of checkpoint 4: checkpoint 2 stands, its rows (and step 3-4's) were flushed
    assert steps_of(run) == [2] and (run / "checkpoints" / "last").read_text().strip() == "000000002"
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-000000004-")]
    assert [r["step"] for r in rows(run)] == [1, 2, 3, 4]
    with caplog.at_level(logging.INFO):
        audiodiff.train(cfg)
    assert "removed" in caplog.text and ".tmp-000000004-" in caplog.text
    assert "dropped 2 row(s) after step 2" in caplog.text
    assert steps_of(run) == [2, 4, 6] and leftovers(run) == []
    got, want = rows(run), rows(ref)
    assert [r["step"] for r in got] == [1, 2, 3, 4, 5, 6]  # each step once
    for a, b in zip(got, want):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7), a["step"]
    wa, wb = load_file(str(resolve(run) / "ema.safetensors")), load_file(str(resolve(ref) / "ema.safetensors"))
    for k in wb:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- 7: damaged files
def _ckpt(run):
    return run / "checkpoints" / "000000002"


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
def test_a_truncated_weights_file_names_the_file(run_copy, name):
    path = _ckpt(run_copy) / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(run_copy)
    assert str(path) in str(e.value) and "bytes" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match=name):  # a resume says the same
        audiodiff.train(tiny_cfg(run_copy, steps=4, resume="force"))
    # without the sizes in meta.json (an older checkpoint) the library's error is still wrapped
    meta = json.loads((_ckpt(run_copy) / "meta.json").read_text())
    meta.pop("files")
    (_ckpt(run_copy) / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: is not a readable safetensors file")):
        load_checkpoint(run_copy)


def test_an_empty_meta_json_names_the_file(run_copy):
    path = _ckpt(run_copy) / "meta.json"
    path.write_text("")
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: is empty")):
        load_checkpoint(run_copy)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: is empty")):
        load_checkpoint(_ckpt(run_copy))
    path.write_text("{\"step\": 2,")
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: is not valid JSON")):
        load_checkpoint(run_copy)


def _replace_train_state(d, obj=None, data=None):
    path = d / "train_state.pt"
    if data is None:
        torch.save(obj, path)
    else:
        path.write_bytes(data)
    meta = json.loads((d / "meta.json").read_text())
    meta["files"]["train_state.pt"] = path.stat().st_size
    (d / "meta.json").write_text(json.dumps(meta))
    return path


def test_a_train_state_that_is_not_weights_only_is_refused_without_suggesting_weights_only_false(run_copy):
    import argparse

    path = _replace_train_state(_ckpt(run_copy), {"step": 2, "extra": argparse.Namespace(x=1)})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(run_copy)
    msg = str(e.value)
    assert msg.startswith(f"{path}: holds Python objects") and "\n" not in msg
    assert "weights_only" not in msg and e.value.__cause__ is None and e.value.__suppress_context__
    with pytest.raises(CheckpointError, match="holds Python objects"):
        audiodiff.train(tiny_cfg(run_copy, steps=4, resume="force"))
    path = _replace_train_state(_ckpt(run_copy), data=path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: is not a readable torch file")):
        load_checkpoint(run_copy)


def test_a_damaged_vocoder_folder_names_the_file(tmp_path):
    from audiodiff import vocoders
    from audiodiff.mel import MelSpec

    mel = MelSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=32, f_max=4000.0)
    d = vocoders.build({"name": "griffinlim", "n_iter": 4}, mel=mel).save(tmp_path / "voc")
    (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5])
    with pytest.raises(VocoderError, match=re.escape(f"{d / 'model.safetensors'}: not a readable safetensors file")):
        load_vocoder(d)
    (d / "mel.json").write_text("")
    with pytest.raises(VocoderError, match=re.escape(f"{d / 'mel.json'}: is empty")):
        load_vocoder(d)


# ---------------------------------------------------------------------------------------------- 9: settings
@pytest.mark.parametrize("where, value, fragments", [
    ("train.batch_size", 0, ["train.batch_size=0 is not allowed", "an integer >= 1"]),
    ("train.ckpt_every", 0, ["train.ckpt_every=0 is not allowed", "an integer >= 1"]),
    ("train.steps", "abc", ["train.steps='abc' is not allowed", "an integer >= 1"]),
    ("train.steps", -5, ["train.steps=-5 is not allowed", "an integer >= 1"]),
    ("train.steps", 2.5, ["train.steps=2.5 is not allowed"]),
    ("train.log_every", 0, ["train.log_every=0 is not allowed"]),
    ("train.accumulate", 0, ["train.accumulate=0 is not allowed"]),
    ("train.lr", 0, ["train.lr=0 is not allowed", "a number > 0"]),
    ("train.resume", "yes", ["train.resume='yes' is not allowed", "true (continue", "false (refuse", "or force"]),
    ("train.precision", "fp16", ["train.precision='fp16' is not allowed", "'bf16'"]),
    ("train.device", "gpu", ["train.device='gpu' is not allowed", "'cuda:<index>'"]),
    ("train.betas", [0.9], ["train.betas=[0.9] is not allowed", "two numbers"]),
    ("sampler.method", "dpmpp2m", ["sampler.method='dpmpp2m' is not allowed", "'dpmpp_2m'", "'heun'"]),
    ("sampler.steps", 0, ["sampler.steps=0 is not allowed", "an integer >= 1"]),
    ("objective.parameterization", "score", ["objective.parameterization='score' is not allowed", "'edm'"]),
    ("schedule.name", "linear", ["schedule.name='linear' is not allowed", "'karras'", "'vp_cosine'"]),
    ("model.name", "unet3d", ["model.name='unet3d' is not allowed", "'unet1d'"]),
    ("foo", 1, ["unknown top-level setting(s) ['foo']", "'run_dir'", "'task'", "'name'"]),
    ("task", "vocoder", ["task='vocoder' is not allowed", "'diffusion'"]),
])
def test_a_bad_setting_is_refused_up_front_naming_it(tmp_path, where, value, fragments):
    cfg = tiny_cfg(tmp_path / "run", steps=2)
    cfg.setdefault("sampler", {"method": "dpmpp_2m", "steps": 25})
    cfg.setdefault("schedule", {"name": "karras"})
    *parents, key = where.split(".")
    section = cfg
    for p in parents:
        section = section[p]
    section[key] = value
    with pytest.raises(loop.TrainingConfigError) as e:
        audiodiff.train(cfg)
    assert isinstance(e.value, UsageError) and e.value.exit_code == 2
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, (f, msg)
    assert not (tmp_path / "run").exists(), "nothing is written before the config is checked"


def test_every_shipped_experiment_passes_the_checks():
    from omegaconf import OmegaConf

    from audiodiff.cli import compose

    names = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
    checked = []
    for name in [None, *names]:
        args = [] if name is None else [f"experiment={name}"]
        composed = compose(args)
        if composed.task == "vocoder":
            continue  # trained by audiodiff.training.vocoder, which checks its own config
        if OmegaConf.is_missing(composed.train, "init_from"):  # the fine-tune experiment: a required value
            missing = re.escape("train.init_from must be set (the config has ???)")
            with pytest.raises(loop.TrainingConfigError, match=missing):
                loop.resolve_config(composed)
            composed = compose([*args, "train.init_from=runs/tones"])
        cfg = loop.resolve_config(composed)
        assert cfg["task"] == "diffusion" and cfg["name"]
        checked.append(name)
    assert len(checked) >= 8, checked
    cfg = loop.resolve_config({**tiny_cfg("unused"), "run_dir": Path("runs/x")})  # a Path is a plain value
    assert cfg["run_dir"] == "runs/x"
    assert OmegaConf.create(cfg)


def test_resuming_with_another_model_names_the_differing_keys(run_copy):
    cfg = tiny_cfg(run_copy, steps=2)
    cfg["model"]["channels"] = [16, 64]
    with pytest.raises(loop.TrainingConfigError) as e:  # asked before anything is loaded: what differs, and the way out
        audiodiff.train(cfg)
    msg = str(e.value)
    assert "model.channels: run [16, 32], now [16, 64]" in msg and "size mismatch" not in msg
    assert "train.resume=force" in msg and "new run_dir" in msg and "\n" not in msg
    assert steps_of(run_copy) == [2]
    cfg["train"]["resume"] = "force"  # forced: the network still cannot take the run's weights, and says which keys
    with pytest.raises(loop.TrainingConfigError) as e:
        audiodiff.train(cfg)
    msg = str(e.value)
    assert "model.channels: run [16, 32], config [16, 64]" in msg and "size mismatch" not in msg
    assert "train.resume=true" in msg and "new run_dir" in msg and str(run_copy / "config.yaml") in msg
    assert steps_of(run_copy) == [2]
    cfg = tiny_cfg(run_copy, steps=4, lora={"rank": 2}, resume="force")
    with pytest.raises(loop.TrainingConfigError, match=r"train.lora: run None, config \{'rank': 2\}"):
        audiodiff.train(cfg)
