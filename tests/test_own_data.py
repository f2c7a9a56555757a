"""Your own audio, end to end (issue: "Your own audio"): each thing a new user hit with a folder of their own
recordings is reproduced here, and the README's "Your own audio" commands run as written on a folder this file
synthesises (class sub-folders; WAV, FLAC, OGG and MP3; 44.1 kHz stereo and 16 kHz mono; a silent and a
too-short file), with only speed settings added (a few steps instead of thousands)."""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodiff import cli
from audiodiff.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
RATE_MIX = [(44100, 2, "WAV", ".wav"), (16000, 1, "FLAC", ".flac"), (22050, 1, "OGG", ".ogg"),
            (16000, 1, "MP3", ".mp3"), (44100, 2, "WAV", ".WAV"), (16000, 1, "FLAC", ".flac")]


def _clip(kind: str, k: int, sr: int, seconds: float = 0.6) -> np.ndarray:
    """A 'yes' is a falling two-tone hum, a 'no' a rising chirp: two classes a judge can tell apart."""
    t = np.arange(int(sr * seconds)) / sr
    env = np.minimum(1.0, t / 0.02) * np.exp(-3 * t)
    if kind == "yes":
        f = 300 + 40 * k - 150 * t
        x = np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.3 * np.sin(4 * np.pi * np.cumsum(f) / sr)
    else:
        f = 500 + 30 * k + 900 * t
        x = np.sin(2 * np.pi * np.cumsum(f) / sr)
    return (0.4 * env * x).astype("float32")


def make_folder(root: Path) -> Path:
    """`root/my_wavs`: yes/ and no/ with 6 clips each in mixed formats (one nested), one silent, one too short."""
    folder = root / "my_wavs"
    for kind in ("yes", "no"):
        for k, (sr, ch, fmt, ext) in enumerate(RATE_MIX):
            x = _clip(kind, k, sr)
            data = np.stack([x, 0.8 * x], 1) if ch == 2 else x
            sub = folder / kind / ("take2" if k == 5 else "")
            sub.mkdir(parents=True, exist_ok=True)
            sf.write(str(sub / f"{kind}{k}{ext}"), data, sr, format=fmt)
    sf.write(str(folder / "yes" / "silent.wav"), np.zeros(16000, "float32"), 16000)
    sf.write(str(folder / "no" / "short.wav"), _clip("no", 9, 16000, seconds=0.02), 16000)
    return folder


def run_cli(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "audiodiff", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def main_exit(capsys, argv) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


# ---------------------------------------------------------------------- the README's commands, as written
def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Your own audio", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.strip().splitlines() if line.strip()]


# speed settings added to each command (what it does is unchanged)
FAST = {"train": ["train.steps=2", "train.batch_size=4", "train.ckpt_every=2", "train.progress=false"],
        "finetune": ["train.steps=2", "train.batch_size=4", "train.ckpt_every=2", "train.progress=false"],
        "generate": ["steps=2"], "train-judge": ["epochs=1"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_readme_own_audio_commands_run_as_written(tmp_path):
    folder = make_folder(tmp_path)
    commands = readme_commands()
    assert [shlex.split(c)[1] for c in commands] == ["prepare", "train", "generate", "evaluate", "evaluate",
                                                     "finetune", "serve"]
    for line in commands:
        args = shlex.split(line)
        assert args[0] == "audiodiff"
        cmd = args[1]
        key = "train-judge" if args[2:3] == ["train-judge"] else cmd
        if cmd == "serve":
            continue  # below: it serves until stopped
        done = run_cli(args[1:] + FAST.get(key, []), cwd=tmp_path)
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
        what = done.stdout + done.stderr
        if cmd == "prepare":
            # what was found, and what was left out with the reason
            assert "12 files kept" in what and "2 skipped of 14" in what, what
            assert re.search(r"is silent \(peak -inf dBFS", what) and "is too short" in what
            assert "sample rates: 16000 Hz (6), 22050 Hz (2), 44100 Hz (4)" in what
            assert "channels: mono (8), stereo (4)" in what and ".mp3 (2)" in what and ".ogg (2)" in what
            entries = read_manifest(folder / "manifest.jsonl")
            assert len(entries) == 12 and sorted({e["label"] for e in entries}) == ["no", "yes"]
            assert all(isinstance(e["label"], str) for e in entries)
            assert any(e["path"].endswith("take2/yes5.flac") for e in entries)  # nested folders
            assert any(e["path"].endswith(".WAV") for e in entries)  # upper-case extensions
        elif cmd == "train":
            # the data and every choice, logged before the first step
            assert "data: my_wavs/manifest.jsonl: 12 files" in what
            assert "sample rates found: 16000 Hz x 6, 22050 Hz x 2, 44100 Hz x 4; model rate 16000 Hz" in what
            assert "classes (label): 2: no 6, yes 6" in what and "split: 11 train / 1 held out" in what
            assert "mel contract notes16k_80" in what and "model: unet1d" in what
            assert what.index("classes (label)") < what.index("trained steps 0->2")
            assert "tensorboard --logdir runs/my_wavs/tensorboard" in what  # where the curves are, as the README says
            assert any((tmp_path / "runs" / "my_wavs" / "tensorboard").iterdir())
            ck = tmp_path / "runs" / "my_wavs" / "checkpoints"
            assert (ck / "last").read_text().strip() == "000000002"
            meta = json.loads((ck / "000000002" / "meta.json").read_text())
            assert meta["vocab"] == ["no", "yes"] and meta["sample_rate"] == 16000
            assert meta["representation"] == "mel"
        elif cmd == "generate":
            rows = [json.loads(x) for x in (tmp_path / "samples" / "my_wavs" / "generated.jsonl").read_text()
                    .splitlines()]
            assert [r["label"] for r in rows] == ["yes", "no", "yes", "no"]  # strings, never YAML's booleans
            audio, sr = sf.read(str(tmp_path / "samples" / "my_wavs" / "sample_000.wav"))
            assert sr == 16000 and np.isfinite(audio).all()
        elif key == "train-judge":
            report = json.loads((tmp_path / "runs" / "my_wavs" / "judge" / "train_report.json").read_text())
            assert report["num_valid"] >= 1 and "trust" in report
            assert not report["trust"]["ok"]  # a handful of held-out clips cannot tell: it says so
            assert "held-out" in what and "warning" in what.lower()
        elif cmd == "evaluate":
            report = json.loads((tmp_path / "samples" / "my_wavs" / "evaluation" / "report.json").read_text())
            assert report["rows"]["generated"]["n"] == 4 and "accuracy" in report["rows"]["generated"]
            assert "real (held-out)" in report["rows"]
        elif cmd == "finetune":
            run = tmp_path / "runs" / "my_wavs_from_digits"
            meta = json.loads((run / "checkpoints" / "000000002" / "meta.json").read_text())
            assert meta["vocab"][:10] == list(range(10)) and meta["vocab"][10:] == ["no", "yes"]
            assert meta["sample_rate"] == 8000  # the base's rate: the files were resampled to it
    serve = shlex.split(commands[-1])
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "audiodiff", *serve[1:], f"port={port}"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        page = None
        for _ in range(240):
            if proc.poll() is not None:
                break
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert page is not None, proc.stdout.read() if proc.poll() is not None else "serve did not answer"
        assert "gradio" in page.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------------- 1. training from a folder
def test_train_data_custom_works_and_a_failed_start_leaves_no_run_dir(tmp_path, capsys):
    folder = make_folder(tmp_path)
    cli.main(["prepare", f"source={folder}"])
    capsys.readouterr()
    run = tmp_path / "run"
    # `data=custom` alone (the default waveform network) chooses its settings from the data, as `own` does
    cfg, _ = cli.training_config("train", ["data=custom", f"data.manifest={folder}/manifest.jsonl",
                                           f"run_dir={run}", "train.steps=1", "train.batch_size=2"])
    from omegaconf import OmegaConf

    from audiodiff.training import loop

    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["model"] = {**plain["model"], "channels": [16, 32], "factors": [1, 2], "blocks": [1, 1],
                      "attention": [False, False]}
    loop.train(plain)
    meta = json.loads((run / "checkpoints" / "000000001" / "meta.json").read_text())
    assert meta["representation"] == "waveform" and meta["sample_rate"] == 16000 and meta["vocab"] == ["no", "yes"]
    capsys.readouterr()
    # a start that fails inside the run (every file gone after the manifest was made) leaves no folder behind
    for e in read_manifest(folder / "manifest.jsonl"):
        Path(e["path"]).unlink()
    code, _, err = main_exit(capsys, ["train", f"data.manifest={folder}/manifest.jsonl",
                                      f"run_dir={tmp_path / 'run2'}", "train.steps=1"])
    assert code == 1 and err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "run2").exists()


def test_a_missing_required_key_is_named_with_how_to_give_it(capsys):
    code, _, err = main_exit(capsys, ["train", "data=custom"])
    assert code == 2 and "data.manifest" in err and "audiodiff prepare" in err and err.count("\n") == 1


# ---------------------------------------------------------------------- 3. labels are what the user wrote
def test_generate_labels_stay_strings_on_the_command_line():
    def parse(*args):
        return cli.parse_keys(["run=r", *args], cli.GENERATE_KEYS)

    kv = parse("labels=[yes,no]", "pitch=[60]", "n=2")
    assert kv["labels"] == ["yes", "no"] and kv["pitch"] == [60]
    assert parse("labels=on")["labels"] == "on" and parse("labels=[3,7]")["labels"] == [3, 7]
    assert parse("labels=['3',x]")["labels"] == ["3", "x"]


def test_folder_labels_3_and_7_are_a_digit_base_s_3_and_7(tmp_path):
    """Folder names "3" and "7" given to a base whose labels are the integers 0-9 mean 3 and 7 (no new classes)."""
    from audiodiff.training import finetune, loop
    from tests.helpers import tiny_cfg

    cfg = tiny_cfg(tmp_path / "base", steps=2)
    folder = tmp_path / "digits"
    for d in ("3", "7"):
        (folder / d).mkdir(parents=True)
        for k in range(3):
            sf.write(str(folder / d / f"{k}.wav"), _clip("yes" if d == "3" else "no", k, 8000), 8000)
    from audiodiff.data.manifest import build_manifest, write_manifest

    build_manifest(folder, out=folder / "manifest.jsonl")
    labelled = read_manifest(folder / "manifest.jsonl")
    assert {e["label"] for e in labelled} == {"3", "7"}  # folder names are strings
    base_m = tmp_path / "base.jsonl"  # a digit base: integer labels 0-9
    write_manifest([{**labelled[d % len(labelled)], "label": d} for d in range(10)], base_m)
    cfg["data"] = {"kind": "manifest", "manifest": str(base_m), "sample_rate": 8000, "segment_seconds": 0.125,
                   "conditions": {"labels": "label"}, "valid_fraction": 0.0}
    base = loop.train(cfg)
    ft = {"run_dir": str(tmp_path / "ft"), "model": {}, "data": {"kind": "manifest",
          "manifest": str(folder / "manifest.jsonl"), "valid_fraction": 0.0},
          "train": {"init_from": str(base), "steps": 1, "batch_size": 2, "progress": False, "num_workers": 0},
          "finetune": {"extend_vocab": True}}
    resolved = loop.resolve_config({**ft, "model": cfg["model"]})
    plan = finetune.adopt_base(resolved, finetune.load_base(base))
    assert plan["vocab"] == list(range(10)) and plan["added_labels"] == []  # never "3" beside 3
    loop.train({**ft, "model": cfg["model"]})
    meta = json.loads((tmp_path / "ft" / "checkpoints" / "000000001" / "meta.json").read_text())
    assert meta["vocab"] == list(range(10)) and meta["model"]["num_classes"] == 10


# ---------------------------------------------------------------------- 4. nothing resumed or deleted unasked
def test_a_second_project_gets_its_own_run_and_another_dataset_is_not_resumed(tmp_path, capsys):
    a, b = make_folder(tmp_path / "a"), make_folder(tmp_path / "b2")
    b.rename(tmp_path / "b2" / "other_words")
    b = tmp_path / "b2" / "other_words"
    for f in (a, b):
        cli.main(["prepare", f"source={f}"])
    capsys.readouterr()
    cfg_a, _ = cli.training_config("finetune", [f"data.manifest={a}/manifest.jsonl", "train.init_from=runs/x"])
    cfg_b, _ = cli.training_config("finetune", [f"data.manifest={b}/manifest.jsonl", "train.init_from=runs/x"])
    assert cfg_a.run_dir == "runs/my_wavs_from_x" and cfg_b.run_dir == "runs/other_words_from_x"
    # the same run_dir with other recordings: refused, naming the data, and the run is untouched
    from audiodiff.training import loop
    from tests.helpers import TINY_UNET1D

    def cfg(manifest, **train):
        return {"run_dir": str(tmp_path / "run"), "model": {**TINY_UNET1D, "pitch": False},
                "data": {"kind": "manifest", "manifest": str(manifest), "sample_rate": 8000,
                         "segment_seconds": 0.125, "conditions": {"labels": "label"}},
                "train": {"steps": 2, "batch_size": 2, "ckpt_every": 2, "progress": False, "num_workers": 0, **train}}

    loop.train(cfg(a / "manifest.jsonl"))
    (b / "yes" / "yes0.wav").unlink()  # other recordings: 11 files
    cli.main(["prepare", f"source={b}"])
    before = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    with pytest.raises(loop.TrainingConfigError, match=r"data: the run was trained on 12 files of .*, now 11 files"):
        loop.train(cfg(b / "manifest.jsonl"))
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == before
    # the same data and settings resume; other settings are refused unless asked for
    loop.train(cfg(a / "manifest.jsonl"))
    with pytest.raises(loop.TrainingConfigError, match=r"train.steps: run 2, now 4.*run_dir=.*train.resume=force"):
        loop.train(cfg(a / "manifest.jsonl", steps=4))
    loop.train(cfg(a / "manifest.jsonl", steps=4, resume="force"))
    assert (tmp_path / "run" / "checkpoints" / "last").read_text().strip() == "000000004"


def test_the_readme_train_line_does_not_change_the_demo_run(tmp_path, capsys):
    """`audiodiff train experiment=tones train.steps=2000` into the demo's run_dir is refused, not resumed."""
    run = tmp_path / "tones"
    args = ["train", "experiment=tones", f"run_dir={run}", "train.steps=1", "train.progress=false",
            "model.channels=[16,32,32,32]"]
    cli.main(args)
    capsys.readouterr()
    code, _, err = main_exit(capsys, [*args[:-3], "train.steps=2", *args[-2:]])
    assert code == 2 and "train.steps: run 1, now 2" in err and "train.resume=force" in err
    assert err.count("\n") == 1


def _bash(args, env=None, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                               **(env or {})})


def test_a_recipe_never_deletes_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("my notes")
    done = _bash(["recipes/fsdd/run.sh", "--stage", "3", "--stop-stage", "3"], env={"OUT": str(out)})
    assert done.returncode == 2 and "is not empty" in done.stderr
    assert (out / "keep.txt").read_text() == "my notes"
    assert "rm -rf" not in (ROOT / "recipes" / "common.sh").read_text() + (ROOT / "recipes/tones/run.sh").read_text()


def test_recipe_arguments_reach_their_stage_or_are_refused():
    done = _bash(["recipes/fsdd/run.sh", "--stage", "3", "n=10", "steps=5"])
    assert done.returncode == 2 and "training overrides for stage 2" in done.stderr and "generate.n=10" in done.stderr
    done = _bash(["recipes/fsdd/run.sh", "--stage", "2", "--stop-stage", "2", "generate.n=3"])
    assert done.returncode == 2 and "generation settings for stage 3" in done.stderr
    done = _bash(["recipes/fsdd_speaker/run.sh", "--stage", "5", "generate.n=3"])
    assert done.returncode == 2 and "takes none" in done.stderr
    # generate.* settings replace the recipe's own: source args.sh and print what stage 3 would pass
    script = ('source recipes/args.sh; generate_args n=20 steps=25 seed=0; printf "%s\\n" "${GEN[@]}"')
    done = subprocess.run(["bash", "-c", script, "x", "generate.steps=5", "generate.sampler=heun"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split() == ["n=20", "steps=5", "seed=0", "sampler=heun"], done.stderr


def test_recipes_generate_with_the_guidance_their_readmes_report():
    common = (ROOT / "recipes" / "common.sh").read_text()
    assert 'guidance="${GUIDANCE:-2.0}"' in common
    for name in ("fsdd", "piano", "sax", "drums"):
        assert "source \"$(dirname \"$0\")/../common.sh\"" in (ROOT / "recipes" / name / "run.sh").read_text()
        assert re.search(r"guidance 2\b", (ROOT / "recipes" / name / "README.md").read_text()), name


# ---------------------------------------------------------------------- 7. the smaller ones
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu_is_one_line_exit_2(tmp_path, capsys):
    code, _, err = main_exit(capsys, ["generate", "run=digits", "device=cuda", f"out={tmp_path / 'x'}"])
    assert code == 2 and err.startswith("audiodiff generate: error: device='cuda' but this machine has no CUDA GPU")
    assert "allowed here: auto, cpu" in err and err.count("\n") == 1
    code, _, err = main_exit(capsys, ["train", "experiment=tones", "train.device=cuda", f"run_dir={tmp_path / 'r'}"])
    assert code == 2 and "train.device='cuda' but this machine has no CUDA GPU" in err
    assert not (tmp_path / "r").exists()


def test_missing_files_exit_2(tmp_path, capsys):
    for argv, says in ((["generate", f"run={tmp_path / 'nope'}", f"out={tmp_path / 'o'}"], "no such run"),
                       (["train", f"data.manifest={tmp_path / 'nope.jsonl'}"], "does not exist"),
                       (["prepare", f"source={tmp_path / 'nope'}"], "does not exist"),
                       (["evaluate", f"generated={tmp_path / 'nope'}"], "does not exist")):
        code, _, err = main_exit(capsys, argv)
        assert code == 2 and says in err and err.count("\n") == 1, (argv, err)


def test_version(capsys):
    from audiodiff import __version__

    cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"audiodiff {__version__}"


# ---------------------------------------------------------------------- 6. bases to start from
def test_bases_ship_small_with_a_model_card():
    from audiodiff.runs import list_bases
    from audiodiff.runs.bases import BASES_DIR

    assert {"digits", "sax"} <= set(list_bases())
    for name in ("digits", "sax"):
        folder = BASES_DIR / name
        size = sum(p.stat().st_size for p in folder.iterdir())
        assert size <= 10 * 10 ** 6, (name, size)  # at most 10 MB on disk, card included
        card = (folder / "README.md").read_text().lower()  # data and license, command, minutes and hardware, quality
        for must in ("## training data", "license cc by", "## how it was trained", "minutes", "cpu",
                     "## measured quality", "audiodiff evaluate", "recipes/bases/run.sh", "fine-tun"):
            assert must in card, (name, must)
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["storage"] == "int8" and meta["base"]["name"] == name and meta["data"]["loudness_db"] == -20.0


def test_a_base_generates_by_name_without_training(tmp_path, capsys):
    from audiodiff import Pipeline

    pipe = Pipeline.from_pretrained("digits", device="cpu")
    out = pipe.generate(n=2, labels=["3", 7], steps=2, seed=0, progress=False)  # a folder "3" is the digit 3
    frames = round(8000 / 128)  # one second of the fsdd mel contract (hop 128), through Griffin-Lim
    assert out.sample_rate == 8000 and out.audio.shape == (2, 1, frames * 128) and torch.isfinite(out.audio).all()
    assert out.items[0]["label"] == "3" and pipe.vocab == list(range(10))
    cli.main(["generate", "run=sax", "n=1", "labels=alto", "pitch=60", "steps=2", f"out={tmp_path / 's'}"])
    assert "wrote 1 clip (16000 Hz WAV) and generated.jsonl" in capsys.readouterr().out
    rows = json.loads((tmp_path / "s" / "generated.jsonl").read_text())
    assert rows["instrument"] == "alto" and rows["pitch"] == 60 and rows["sample_rate"] == 16000
    from audiodiff.serve import build_app

    assert build_app(Pipeline.from_pretrained("sax", device="cpu")) is not None


def test_a_folder_of_yours_named_like_a_base_wins(tmp_path, monkeypatch):
    from audiodiff import Pipeline
    from audiodiff.training import loop
    from tests.helpers import tiny_cfg

    monkeypatch.chdir(tmp_path)
    loop.train(tiny_cfg("digits", steps=2))
    pipe = Pipeline.from_pretrained("digits", device="cpu")
    assert pipe.sample_rate == 8000 and pipe.run_dir == (tmp_path / "digits").resolve()
    assert pipe.condition_spec.fields == {"pitch": "pitch"}  # the tiny pitch model, not the shipped digit base


def test_a_base_is_exported_with_the_vocoder_it_ships(tmp_path):
    """export_base(..., vocoder=...) writes the settings the base decodes with (the run's otherwise); settings that
    cannot build are refused before anything is written."""
    from audiodiff import Pipeline
    from audiodiff.runs.export import export_base
    from audiodiff.training import loop
    from tests.helpers import tiny_mel_cfg

    run = loop.train(tiny_mel_cfg(tmp_path / "mel", steps=2))  # the run: {name: griffinlim, n_iter: 4}
    pghi = {"name": "griffinlim", "init": "pghi", "n_iter": 0}
    base = export_base(run, "mel_pghi", out_root=tmp_path / "bases", vocoder=pghi)
    assert json.loads((base / "meta.json").read_text())["vocoder"] == pghi
    assert Pipeline.from_pretrained(base, device="cpu").vocoder.config()["init"] == "pghi"
    kept = export_base(run, "mel_own", out_root=tmp_path / "bases")
    assert json.loads((kept / "meta.json").read_text())["vocoder"] == {"name": "griffinlim", "n_iter": 4}
    with pytest.raises(Exception, match="allowed settings"):
        export_base(run, "mel_bad", out_root=tmp_path / "bases", vocoder={"name": "griffinlim", "inti": "pghi"})
    assert not (tmp_path / "bases" / "mel_bad").exists()


def test_int8_weights_are_within_half_a_step_and_a_base_keeps_its_data_settings(tmp_path):
    from audiodiff.runs.checkpoint import load_checkpoint
    from audiodiff.runs.export import export_base
    from audiodiff.runs.quant import SCALE_SUFFIX, dequantize_state, quantize_state
    from audiodiff.training import finetune, loop
    from tests.helpers import tiny_cfg

    w = torch.randn(8, 64, 3)
    q = quantize_state({"w": w, "b": torch.randn(8), "n": torch.tensor([3])})
    assert q["w"].dtype == torch.int8 and q["b"].dtype == torch.float16 and q["n"].dtype == torch.int64
    scale = w.abs().amax(dim=(1, 2), keepdim=True) / 127
    torch.testing.assert_close(q["w" + SCALE_SUFFIX], scale)
    back = dequantize_state(q)
    assert set(back) == {"w", "b", "n"} and ((back["w"] - w).abs() <= scale / 2 + 1e-7).all()
    assert (back["w"].abs().amax(dim=(1, 2)) - w.abs().amax(dim=(1, 2))).abs().max() < 1e-6  # absmax exact
    cfg = tiny_cfg(tmp_path / "run", steps=2)
    cfg["data"]["loudness_db"] = -23.0
    run = loop.train(cfg)
    base = export_base(run, "tiny", out_root=tmp_path / "bases")
    with pytest.raises(Exception, match="a base of that name exists"):
        export_base(run, "tiny", out_root=tmp_path / "bases")
    ck, own = load_checkpoint(base), load_checkpoint(run)
    for k, v in own["ema"].items():
        if v.dim() >= 2 and v.numel() >= 1024:
            step = v.abs().reshape(v.shape[0], -1).amax(1).reshape(-1, *[1] * (v.dim() - 1)) / 127
            assert ((ck["model"][k] - v).abs() <= step / 2 + 1e-7).all(), k
        else:
            torch.testing.assert_close(ck["model"][k], v.half().float())
    init = finetune.load_base(base)
    assert init["data"]["loudness_db"] == -23.0 and init["data"]["segment_seconds"] == 0.125
