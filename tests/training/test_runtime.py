"""The one training runtime: every task (diffusion, GAN vocoder, diffusion vocoder, judge) resumes exactly.

A run is interrupted while it draws the batch of step k + 1 (after step k's metrics row, between checkpoints or
right after one), then run again: the resumed run's per-step metrics (losses, gradient norms, learning rate) and
its final weights equal an uninterrupted run's, bit for bit. The SIGKILL variants (a killed process, a kill inside
a checkpoint write) are tests/training/test_loop.py and tests/reliability/test_training.py for the diffusion task;
the machinery is the same for every task.
"""
import hashlib
import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from audiodiff.errors import UsageError
from audiodiff.runs.checkpoint import list_checkpoints, resolve
from audiodiff.training import runtime
from tests.helpers import tiny_cfg, tiny_vocoder_cfg

DIFFUSION_VOCODER = {"name": "diffusion", "steps": 2, "net": {"patch": 4, "channels": [8, 16], "factors": [1, 2],
                                                               "blocks": [1, 1], "attention": [False, False]}}


def _diffusion(shared_data, run):
    from audiodiff.training import loop

    loop.train(tiny_cfg(run, steps=6, ckpt_every=2))
    return run, resolve(run) / "ema.safetensors"


def _vocoder(voc=None, **train):
    def run_it(shared_data, run):
        from audiodiff.training.vocoder import train_vocoder

        cfg = tiny_vocoder_cfg(shared_data, run, steps=6, ckpt_every=2, **train)
        if voc is not None:
            cfg["vocoder"] = dict(voc)
        train_vocoder(cfg)
        return run, run / "vocoder" / "model.safetensors"

    return run_it


def _judge(shared_data, run):
    from audiodiff.data.manifest import read_manifest
    from audiodiff.evaluation.judge import train_judge

    entries = read_manifest(shared_data / "fsdd" / "manifest.jsonl")
    random.Random(0).shuffle(entries)
    # 27 training clips in batches of 8: 4 steps per epoch (the last one shorter), a checkpoint after each epoch
    _, report = train_judge(entries[:30], "label", run, sample_rate=8000, seconds=0.3, epochs=2, batch_size=8,
                            seed=0, device="cpu", channels=(4, 8), hidden=8)
    (run / "history.json").write_text(json.dumps(report["history"]))
    return run, run / "judge.safetensors"


def _distill(shared_data, run):
    """A 2-step student of a tiny teacher (made once beside the run), its pairs made before the first step."""
    from audiodiff.training import distill, loop

    teacher = run.parent / "teacher"
    if not (teacher / "checkpoints").is_dir():
        loop.train(tiny_cfg(teacher, steps=2))
    distill.train_distill({"teacher": str(teacher), "run_dir": str(run), "pairs": 12, "teacher_steps": 3,
                           "student_steps": 2, "train": {"steps": 6, "ckpt_every": 2, "batch_size": 4,
                                                         "log_every": 1, "progress": False}})
    return run, resolve(run) / "ema.safetensors"


TASKS = {"diffusion": _diffusion, "gan_vocoder": _vocoder(), "diffusion_vocoder": _vocoder(DIFFUSION_VOCODER,
                                                                                            ema_decay=0.9),
         "judge": _judge, "distill": _distill}
CKPT_EVERY = {"diffusion": 2, "gan_vocoder": 2, "diffusion_vocoder": 2, "judge": 4, "distill": 2}


def rows(run) -> dict:
    """Per-step metrics rows; a resumed run rewrote the steps after its checkpoint, so each step is there once."""
    out = {}
    for line in open(Path(run) / "metrics.jsonl"):
        r = json.loads(line)
        assert r["step"] not in out, f"step {r['step']} logged twice"
        out[r["step"]] = r
    return out


def digest(path) -> str:
    h = hashlib.sha256()
    for k, v in sorted(load_file(str(path)).items()):
        h.update(k.encode() + v.numpy().tobytes())
    return h.hexdigest()


class Killed(BaseException):
    """Stands for the process dying (not an Exception, so nothing on the way catches it)."""


def kill_before_step(monkeypatch, step: int):
    """Make the runtime die while drawing the first batch of step `step` (after step - 1 finished)."""
    real = runtime.batches

    def stream(*a, **k):
        for i, item in enumerate(real(*a, **k)):
            if i == step - 1:
                raise Killed
            yield item

    monkeypatch.setattr(runtime, "batches", stream)  # every task draws through Runtime.fit, which reads this name


@pytest.fixture(scope="module")
def reference(shared_data, tmp_path_factory):
    done = {}

    def get(task):
        if task not in done:
            run, weights = TASKS[task](shared_data, tmp_path_factory.mktemp(task) / "run")
            done[task] = rows(run), digest(weights), run
        return done[task]

    return get


@pytest.mark.parametrize("killed_after", ["between_checkpoints", "a_checkpoint"])
@pytest.mark.parametrize("task", list(TASKS))
def test_a_run_killed_at_any_step_resumes_to_the_same_losses_and_weights(task, killed_after, reference, shared_data,
                                                                        tmp_path, monkeypatch):
    want_rows, want_weights, ref_run = reference(task)
    every = CKPT_EVERY[task]
    last = every + 1 if killed_after == "between_checkpoints" else every  # the last step that finished
    run = tmp_path / "run"
    kill_before_step(monkeypatch, last + 1)
    with pytest.raises(Killed):
        TASKS[task](shared_data, run)
    monkeypatch.undo()
    assert [int(d.name) for d in list_checkpoints(run)][-1] == every  # it died before checkpoint 2 * every
    assert max(rows(run)) == last

    _, weights = TASKS[task](shared_data, run)
    got = rows(run)
    assert sorted(got) == sorted(want_rows) == list(range(1, max(want_rows) + 1))
    for step, row in want_rows.items():
        assert got[step] == row, f"step {step} differs after the resume"
    assert all(math.isfinite(v) for r in got.values() for k, v in r.items() if k != "step")
    assert digest(weights) == want_weights
    if task == "judge":  # the report's per-epoch numbers are state too
        assert json.loads((run / "history.json").read_text()) == json.loads((ref_run / "history.json").read_text())


# ---------------------------------------------------------------------------------------------- the schedule
def _old_vocoder_lambda(step, t):
    """The vocoder trainer's LambdaLR factor before the runtime (warm-up times a decay counted from step 0)."""
    w = min(1.0, (step + 1) / t["warmup_steps"]) if t["warmup_steps"] > 0 else 1.0
    if t["lr_schedule"] == "exponential":
        return w * max(t["lr_gamma"] ** step, t["min_lr_ratio"])
    if t["lr_schedule"] == "cosine":
        p = min(1.0, step / max(t["steps"], 1))
        return w * (t["min_lr_ratio"] + (1 - t["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * p)))
    return w


@pytest.mark.parametrize("kind", runtime.LR_SCHEDULES)
def test_lr_at_gives_the_old_vocoder_schedules_without_warm_up(kind):
    t = {"lr": 5e-4, "steps": 50, "warmup_steps": 0, "min_lr_ratio": 0.1, "lr_schedule": kind, "lr_gamma": 0.9}
    for step in range(60):
        assert runtime.lr_at(step, t) == t["lr"] * _old_vocoder_lambda(step, t), step


def test_lr_at_decays_after_the_warm_up():
    t = {"lr": 1.0, "steps": 110, "warmup_steps": 10, "min_lr_ratio": 0.0, "lr_schedule": "exponential",
         "lr_gamma": 0.5}
    assert [runtime.lr_at(s, t) for s in (0, 9, 10, 11, 12)] == pytest.approx([0.1, 1.0, 1.0, 0.5, 0.25])
    assert runtime.lr_at(50, {**t, "lr_schedule": "constant"}) == 1.0
    with pytest.raises(runtime.TrainingConfigError, match="lr_schedule='step' is not allowed; allowed"):
        runtime.lr_at(50, {**t, "lr_schedule": "step"})


def test_the_data_stream_leaves_the_global_rng_to_the_task():
    """A resumed run starts a new loader: drawing its worker seed from the global RNG would shift dropout."""
    class Items(torch.utils.data.Dataset):  # items are fetched as dataset[(epoch, index)]
        def __len__(self):
            return 8

        def __getitem__(self, item):
            return item

    torch.manual_seed(0)
    before = torch.get_rng_state()
    stream = runtime.batches(Items(), runtime.BatchOrder(8, 2, seed=0), 0, 0, 0, list)
    got = [next(stream) for _ in range(5)]  # crosses into epoch 1
    assert [(e, b) for e, b, _ in got] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    assert sorted(i for _, _, batch in got[:4] for _, i in batch) == list(range(8))
    assert torch.equal(torch.get_rng_state(), before)


def test_one_task_registry_dispatches_every_trained_thing(tmp_path, monkeypatch):
    """`task` names a registry entry (diffusion, vocoder, judge); the CLI and `tasks.train` reach the trainers only
    through it, and a runtime hook sees the loop start and end (what benchmarks time with)."""
    import audiodiff.evaluation.judge.train  # noqa: F401  (the judge registers itself)
    from audiodiff.training import tasks
    from tests.helpers import tiny_cfg

    assert {"diffusion", "vocoder", "judge", "distill"} <= set(tasks.TASKS)
    assert {e.kind for e in tasks.TASKS.values()} >= {"diffusion", "vocoder", "judge"}
    with pytest.raises(UsageError, match=r"task='distil' is not a task; allowed: \['diffusion', 'distill', 'judge', 'vocoder'"):
        tasks.train({"task": "distil"})
    seen = []
    run = tasks.train(tiny_cfg(tmp_path / "run", steps=2),
                      hooks={"loop_start": lambda: seen.append("start"), "loop_end": lambda: seen.append("end")})
    assert run == tmp_path / "run" and seen == ["start", "end"]
    with pytest.raises(UsageError, match=r"unknown runtime hooks \['after'\]; allowed: \['loop_start', 'loop_end'\]"):
        tasks.train(tiny_cfg(tmp_path / "run2", steps=2), hooks={"after": print})
