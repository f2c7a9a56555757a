"""train(): checkpoints in the DESIGN layout, exact resume after SIGKILL, NaN guard, torchrun (gloo), LR and EMA."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from audiodiff.runs.checkpoint import list_checkpoints, load_checkpoint, resolve
from audiodiff.training import loop, runtime
from audiodiff.training.ema import EMA
from tests.helpers import tiny_cfg

ROOT = Path(__file__).resolve().parents[2]


def losses(run_dir):
    """Per-step losses of a run; a resumed run rewrites steps after its checkpoint, the last write wins."""
    out = {}
    for line in open(Path(run_dir) / "metrics.jsonl"):
        r = json.loads(line)
        out[r["step"]] = r["loss"]
    return out


def test_few_steps_write_checkpoint_in_design_layout(tmp_path):
    run = loop.train(tiny_cfg(tmp_path / "run", steps=4))
    ckpts = list_checkpoints(run)
    assert [int(c.name) for c in ckpts] == [2, 4]
    last = resolve(run)
    assert last == ckpts[-1] and (run / "checkpoints" / "last").read_text().strip() == last.name
    for f in ("model.safetensors", "ema.safetensors", "train_state.pt", "meta.json"):
        assert (last / f).is_file(), f
    assert (run / "config.yaml").is_file()
    weights = load_file(str(last / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())
    ck = load_checkpoint(run)
    assert ck["step"] == 4 and ck["train_state"]["step"] == 4
    assert ck["meta"]["sample_rate"] == 8000 and ck["meta"]["conditions"] == {"pitch": "pitch"}
    assert ck["meta"]["pitch_range"] == [60, 72]
    # no temp dirs left behind
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert len(losses(run)) == 4 and all(math.isfinite(v) for v in losses(run).values())


def test_rerun_resumes_and_extends(tmp_path):
    loop.train(tiny_cfg(tmp_path / "a", steps=2))
    with pytest.raises(loop.TrainingConfigError, match=r"train.steps: run 2, now 4.*train.resume=force"):
        loop.train(tiny_cfg(tmp_path / "a", steps=4))  # other settings: refused, nothing changes
    assert sorted(losses(tmp_path / "a")) == [1, 2]
    loop.train(tiny_cfg(tmp_path / "a", steps=4, resume="force"))  # same run_dir, asked for: continues at step 2
    loop.train(tiny_cfg(tmp_path / "b", steps=4))
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(la) == [1, 2, 3, 4]
    for s in la:
        assert la[s] == pytest.approx(lb[s], rel=1e-5, abs=1e-7), s


def _cfg_file(tmp_path, run_dir, steps):
    cfg = tiny_cfg(run_dir, steps=steps, ckpt_every=3)
    p = tmp_path / f"cfg_{Path(run_dir).name}.json"
    p.write_text(json.dumps(cfg))
    return p


SCRIPT = "import json,sys; from audiodiff.training.loop import train; train(json.load(open(sys.argv[1])))"


def test_sigkill_mid_training_then_resume_matches_uninterrupted(tmp_path):
    steps = 30
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, "-c", SCRIPT, str(_cfg_file(tmp_path, ref, steps))], env=env, check=True,
                   timeout=300)
    run = tmp_path / "killed"
    cfg = _cfg_file(tmp_path, run, steps)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(cfg)], env=env)
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "checkpoints" / "000000006").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(int(c.name) for c in list_checkpoints(run))
    assert 6 <= killed_at < steps, "the run must be killed mid-training"
    subprocess.run([sys.executable, "-c", SCRIPT, str(cfg)], env=env, check=True, timeout=300)
    a, b = losses(run), losses(ref)
    assert sorted(a) == sorted(b) == list(range(1, steps + 1))
    for s in range(1, steps + 1):
        assert a[s] == pytest.approx(b[s], rel=1e-5, abs=1e-7), f"step {s} differs after resume"
    wa = load_file(str(resolve(run) / "ema.safetensors"))
    wb = load_file(str(resolve(ref) / "ema.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_nan_guard_skips_then_stops_with_clear_message(tmp_path, monkeypatch):
    from audiodiff import objectives

    real = objectives.TrainingObjective.loss

    def bad_loss(self, denoiser, x0, **kw):
        return real(self, denoiser, x0, **kw) * float("nan")

    monkeypatch.setattr(objectives.TrainingObjective, "loss", bad_loss)
    with pytest.raises(runtime.TrainingError, match="non-finite steps in a row"):
        loop.train(tiny_cfg(tmp_path / "nan", steps=10, max_bad_steps=3))
    assert not list_checkpoints(tmp_path / "nan")


def test_unknown_train_key_is_rejected(tmp_path):
    cfg = tiny_cfg(tmp_path / "x")
    cfg["train"]["stpes"] = 3
    with pytest.raises(runtime.TrainingError, match="unknown train settings.*stpes"):
        loop.train(cfg)


def test_lr_warmup_and_cosine():
    t = {**loop.TRAIN_DEFAULTS, "lr": 1.0, "warmup_steps": 10, "steps": 110, "min_lr_ratio": 0.1}
    assert runtime.lr_at(0, t) == pytest.approx(0.1)
    assert runtime.lr_at(9, t) == pytest.approx(1.0)
    assert runtime.lr_at(60, t) == pytest.approx(0.1 + 0.9 * 0.5)
    assert runtime.lr_at(110, t) == pytest.approx(0.1)


def test_ema_closed_form():
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = EMA(net, decay=0.9, warmup=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    for _ in range(3):
        ema.update(net)
    assert ema.model.weight.item() == pytest.approx(1 - 0.9 ** 3)
    warm = EMA(net, decay=0.999)
    assert warm.current_decay() == pytest.approx(1 / 10)


def test_batch_order_is_a_permutation_split_across_ranks():
    o0 = runtime.BatchOrder(20, 3, seed=1, rank=0, world=2)
    o1 = runtime.BatchOrder(20, 3, seed=1, rank=1, world=2)
    b0, b1 = list(o0.epoch_batches(0)), list(o1.epoch_batches(0))
    seen = [i for b in b0 + b1 for i in b]
    assert len(seen) == len(set(seen)) == 18 and all(len(b) == 3 for b in b0 + b1)
    assert list(o0.epoch_batches(0, start=2)) == b0[2:]
    assert list(o0.epoch_batches(1)) != b0


def test_torchrun_two_processes_gloo(tmp_path):
    run = tmp_path / "ddp"
    cfg = tiny_cfg(run, steps=2, ckpt_every=2)
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.replace("; ", "\n"))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                        str(script), str(p)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = load_checkpoint(run)
    assert ck["step"] == 2
    assert isinstance(ck["train_state"]["rng"], list) and len(ck["train_state"]["rng"]) == 2
    assert len(losses(run)) == 2


def test_tensorboard_gets_scalars_audio_and_spectrogram(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = loop.train(tiny_cfg(tmp_path / "tb", steps=2, sample_every=2, sample_steps=2, log_every=1))
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"audio": 0, "images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/lr", "train/grad_norm"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    assert "sample/0" in tags["audio"] and "sample/spectrogram" in tags["images"]


def test_max_seconds_stops_with_a_checkpoint_and_rerun_continues(tmp_path):
    run = loop.train(tiny_cfg(tmp_path / "t", steps=4, max_seconds=1e-9, ckpt_every=100))
    assert [int(c.name) for c in list_checkpoints(run)] == [1]
    loop.train(tiny_cfg(tmp_path / "t", steps=4, ckpt_every=100))
    assert int(resolve(run).name) == 4 and sorted(losses(run)) == [1, 2, 3, 4]


def test_worker_processes_give_the_same_losses(tmp_path):
    loop.train(tiny_cfg(tmp_path / "w0", steps=20, num_workers=0, ckpt_every=100))  # crosses an epoch (16 batches)
    loop.train(tiny_cfg(tmp_path / "w2", steps=20, num_workers=2, ckpt_every=100))
    assert losses(tmp_path / "w0") == losses(tmp_path / "w2")
