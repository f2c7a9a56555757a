"""Hydra configs and the command line: every experiment composes and builds; `audiodiff` == `python -m audiodiff`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from audiodiff import cli, models, objectives

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))


def test_there_are_experiments():
    assert {"tones", "fsdd", "custom", "ljspeech_mel"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_builds(name, shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIODIFF_DATA", str(shared_data))
    monkeypatch.setenv("PYTEST_TMP", str(tmp_path))
    args = [f"experiment={name}"]
    base = None
    if name == "custom":  # a fine-tune takes its data settings from its base run: give it a tiny real one
        from audiodiff.training import loop
        from tests.helpers import tiny_cfg

        base = loop.train(tiny_cfg(tmp_path / "base", steps=2))
        args += [f"data.manifest={shared_data}/fsdd/manifest.jsonl", f"train.init_from={base}"]
    if name == "own":  # your own recordings: the data settings are chosen from the manifest
        args += [f"data.manifest={shared_data}/fsdd/manifest.jsonl"]
    composed = cli.compose(args)
    voc = composed if composed.task == "vocoder" else None  # vocoder experiments compose like every other
    if voc is not None:
        from audiodiff import vocoders
        from audiodiff.mel import MelSpec
        from audiodiff.training.vocoder import resolve_config

        cfg = resolve_config(OmegaConf.to_container(voc, resolve=True))
        assert Path(cfg["data"]["manifest"]).is_file()
        v = vocoders.build({**cfg["vocoder"], "mel": cfg["mel"]})
        assert v.mel == MelSpec.from_dict(cfg["mel"])
        return
    cfg = OmegaConf.to_container(cli.compose(args), resolve=True)
    if name == "custom":
        assert cfg["run_dir"] == "runs/fsdd_from_base"
    else:
        assert cfg["run_dir"] == f"runs/{'fsdd' if name == 'own' else name}" and name in (cfg["name"], "own")
    if base is not None:
        from audiodiff.training import finetune

        assert cfg["data"]["sample_rate"] == "auto"  # nothing that defines the model's meaning is set here...
        finetune.adopt_base(cfg, finetune.load_base(base))
        assert cfg["data"]["sample_rate"] == 8000  # ...it is the base's
    if name == "own":
        from audiodiff.data.plan import plan_data

        cfg["data"], _ = plan_data(cfg["data"], cfg["model"])
        assert (cfg["data"]["representation"], cfg["data"]["sample_rate"]) == ("mel", 8000)
    from audiodiff.data.build import build_dataset

    if cfg["data"].get("precompute_mel") and "manifest" in cfg["data"]:  # don't compute every mel of the dataset here: a few files are enough
        cfg["data"]["manifest"] = _first_lines(cfg["data"]["manifest"], 8, Path(os.environ["PYTEST_TMP"]))
    built = build_dataset(cfg["data"], split="train")
    train_ds, info = built["dataset"], built["info"]
    item = train_ds[0]
    key = "mel" if "mel" in item else "audio"
    assert torch.isfinite(item[key]).all()
    from audiodiff import representations
    from audiodiff.conditions import ConditionSpec

    rep = representations.from_data(cfg["data"])
    net_cfg = models.from_data(cfg["model"], ConditionSpec.from_meta(info), rep)  # what train() builds
    if info["num_classes"]:
        assert net_cfg["num_classes"] == info["num_classes"]
    with torch.device("meta"):
        net = models.build(net_cfg)
    from audiodiff.data.stats import resolve_sigma_data  # what train() does before it builds the Denoiser

    objective = resolve_sigma_data(cfg["objective"], train_ds, rep,
                                   max_items=8)
    den = objectives.build(net, objective)
    assert den.parameterization in objectives.PARAMETERIZATIONS
    for k in info["conditions"]:
        assert k in ("labels", "pitch")


def _first_lines(manifest, n, folder):
    from audiodiff.data.manifest import read_manifest, write_manifest

    return str(write_manifest(read_manifest(manifest)[:n], folder / "manifest.jsonl"))


def test_unknown_command_lists_allowed(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["trian"])
    assert e.value.code == 2 and "allowed: train, finetune" in capsys.readouterr().err


def _tiny_overrides(run_dir):
    return [f"run_dir={run_dir}", "model.channels=[16,32,32,32]", "model.head_dim=16", "data.segment_seconds=0.1",
            "data.synth.n=32", "train.steps=2", "train.batch_size=4", "train.ckpt_every=2", "train.progress=false"]


def test_console_script_and_python_m_give_the_same_run(tmp_path):
    exe = Path(sys.executable).parent / "audiodiff"
    if not exe.exists():
        pytest.fail(f"console script {exe} missing: install the package (make install)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = []
    for i, head in enumerate(([str(exe)], [sys.executable, "-m", "audiodiff"])):
        run = tmp_path / f"r{i}"
        subprocess.run([*head, "train", "experiment=tones", *_tiny_overrides(run)], check=True, env=env,
                       cwd=ROOT, timeout=300, capture_output=True)
        runs.append([json.loads(l)["loss"] for l in open(run / "metrics.jsonl")])
    assert len(runs[0]) == 2 and runs[0] == runs[1]
    out = tmp_path / "gen"
    r = subprocess.run([str(exe), "generate", f"run={tmp_path / 'r0'}", "n=2", "labels=[60,62]", "steps=3",
                        f"out={out}", "seed=0"], env=env, cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.wav")) == ["sample_000.wav", "sample_001.wav"]
    rows = [json.loads(l) for l in open(out / "generated.jsonl")]
    assert [r["pitch"] for r in rows] == [60, 62]


def test_generate_refuses_unknown_keys(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", f"run={tmp_path}", "bogus=1"])
    assert e.value.code == 2 and "unknown key 'bogus'" in capsys.readouterr().err
