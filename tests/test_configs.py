"""Issue 14, one config system: every experiment composes through Hydra (vocoders included), each mel contract is
written once (configs/mel/), the defaults of each trainer live in one YAML file that the command line and the Python
API both read, and sampler options can be set in YAML, on the command line and at generation."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from audiodiff import cli, config, models, samplers
from audiodiff.mel import MelSpec
from audiodiff.training import loop
from audiodiff.training import vocoder as vtrain
from tests.helpers import TINY_UNET1D, tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
VOCODER_EXPERIMENTS = ["fsdd_vocoder", "ljspeech_diffusion_vocoder", "ljspeech_vocoder"]


def plain(cfg):
    return OmegaConf.to_container(cfg, resolve=True)


# ---------------------------------------------------------------------- every experiment composes through Hydra
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_names_its_task(name):
    cfg = cli.compose([f"experiment={name}"])
    assert cfg.task == ("vocoder" if name in VOCODER_EXPERIMENTS else "diffusion")
    if name in ("own", "custom"):  # your own data: the run is named after it (no run_dir two projects share)
        given = cli.compose([f"experiment={name}", "data.manifest=my_wavs/manifest.jsonl", "train.init_from=runs/x"])
        assert given.run_dir == {"own": "runs/my_wavs", "custom": "runs/my_wavs_from_x"}[name]
    else:
        assert cfg.name == name and cfg.run_dir == f"runs/{name}"
    _, is_vocoder = cli.training_config("config", [f"experiment={name}"])
    assert is_vocoder == (cfg.task == "vocoder")


@pytest.mark.parametrize("name", VOCODER_EXPERIMENTS)
def test_a_composed_vocoder_config_holds_every_value_the_trainer_uses(name):
    """resolve_config adds nothing to a composed vocoder config: the defaults come from the composition."""
    composed = plain(cli.compose([f"experiment={name}"]))
    assert vtrain.resolve_config(composed) == composed


@pytest.mark.parametrize("name", VOCODER_EXPERIMENTS)
def test_the_vocoder_module_command_composes_like_audiodiff_train(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides = ["train.steps=7", "data.max_items=6", "vocoder.autocast=false"]
    via_file = vtrain.load_config(f"configs/experiment/{name}.yaml", overrides)
    assert plain(via_file) == plain(cli.compose([f"experiment={name}", *overrides]))
    assert via_file.train.steps == 7 and via_file.data.max_items == 6
    with pytest.raises(vtrain.VocoderTrainError, match="not a vocoder one"):
        vtrain.load_config("configs/experiment/tones.yaml")


def test_a_standalone_vocoder_file_outside_the_config_folder_still_loads(tmp_path):
    complete = plain(cli.compose(["experiment=fsdd_vocoder"]))
    path = tmp_path / "mine.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(complete)))
    cfg = vtrain.load_config(path, ["train.steps=3"])
    assert cfg.train.steps == 3 and vtrain.resolve_config(cfg)["mel"] == complete["mel"]
    path.write_text("defaults:\n  - /mel@mel: fsdd\ntask: vocoder\n")
    with pytest.raises(config.ConfigError, match="configs/experiment/"):
        vtrain.load_config(path)


def test_train_dispatches_a_vocoder_experiment_to_train_vocoder(monkeypatch, capsys):
    got = {}
    monkeypatch.setattr(vtrain, "train_vocoder", lambda cfg, **kw: got.setdefault("cfg", cfg))
    monkeypatch.setattr(loop, "train", lambda cfg, **kw: pytest.fail("a vocoder experiment reached the diffusion "
                                                                     "trainer"))
    cli.main(["train", "experiment=fsdd_vocoder", "train.steps=5"])
    assert got["cfg"]["task"] == "vocoder" and got["cfg"]["train"]["steps"] == 5
    assert got["cfg"]["mel"] == yaml.safe_load((CONFIGS / "mel" / "fsdd.yaml").read_text())


def test_vocoder_experiments_have_config_and_help(capsys):
    cli.main(["config", "experiment=ljspeech_vocoder"])
    out = capsys.readouterr().out
    assert OmegaConf.create(out).train.steps == 1000000
    cli.main(["train", "experiment=ljspeech_vocoder", "--help"])
    out = capsys.readouterr().out
    assert "task=" in out and "now: vocoder" in out and "train.loss_weights.mel" in out


# ---------------------------------------------------------------------- one copy of each mel contract
def _keys(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from _keys(v)


def test_mel_fields_are_written_only_in_configs_mel():
    offenders = [str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")
                 if p.parent.name != "mel" and "norm_min" in set(_keys(yaml.safe_load(p.read_text())))]
    assert not offenders, f"mel contracts belong in configs/mel/ (referenced with - /mel@...): {offenders}"


def test_each_mel_file_is_a_whole_contract():
    fields = {f.name for f in dataclasses.fields(MelSpec)}
    files = sorted((CONFIGS / "mel").glob("*.yaml"))
    assert files
    for p in files:
        data = yaml.safe_load(p.read_text())
        assert set(data) <= fields, p
        MelSpec.from_dict(data)


@pytest.mark.parametrize("contract, users", [
    ("fsdd", [("fsdd_mel", "data.mel"), ("fsdd_vocoder", "mel")]),
    ("ljspeech", [("ljspeech_mel", "data.mel"), ("ljspeech_vocoder", "mel"), ("ljspeech_diffusion_vocoder", "mel")]),
])
def test_mel_models_and_their_vocoders_share_one_contract(contract, users):
    want = yaml.safe_load((CONFIGS / "mel" / f"{contract}.yaml").read_text())
    for experiment, key in users:
        assert plain(OmegaConf.select(cli.compose([f"experiment={experiment}"]), key)) == want, experiment


# ---------------------------------------------------------------------- defaults in one place
def test_diffusion_train_defaults_are_the_composed_ones():
    composed = plain(cli.compose([]))
    assert loop.train_defaults() == composed["train"] == loop.TRAIN_DEFAULTS
    assert set(loop.train_defaults()) == set(loop.TRAIN_RULES)
    cfg = loop.resolve_config({"run_dir": "runs/x", "model": TINY_UNET1D, "data": composed["data"]})
    for key in ("train", "objective", "schedule", "sampler"):  # a Python dict gets what the CLI composes
        assert cfg[key] == composed[key], key


def test_vocoder_defaults_are_the_composed_ones():
    composed = plain(cli.compose(["task=vocoder", "data.manifest=m.jsonl", "+mel@mel=ljspeech"]))
    cfg = vtrain.resolve_config({"task": "vocoder", "run_dir": "runs/v", "data": {"manifest": "m.jsonl"},
                                 "mel": composed["mel"], "vocoder": {"name": "neural"}})
    assert cfg["train"] == composed["train"] == vtrain.TRAIN_DEFAULTS
    assert cfg["data"] == composed["data"] == {"manifest": "m.jsonl", **vtrain.DATA_DEFAULTS}
    assert vtrain.DISC_DEFAULTS == composed["train"]["discriminator"]


@pytest.fixture
def configs_copy(tmp_path, monkeypatch):
    d = tmp_path / "configs"
    shutil.copytree(CONFIGS, d)
    monkeypatch.setenv("AUDIODIFF_CONFIGS", str(d))
    return d


def test_a_default_changed_in_its_yaml_reaches_both_the_cli_and_python(configs_copy):
    for rel, old, new in [("train/default.yaml", "warmup_steps: 500", "warmup_steps: 123"),
                          ("train/vocoder.yaml", "log_every: 100", "log_every: 77")]:
        p = configs_copy / rel
        assert old in p.read_text()
        p.write_text(p.read_text().replace(old, new))
    assert cli.compose([]).train.warmup_steps == 123 == loop.train_defaults()["warmup_steps"]
    assert cli.compose(["experiment=ljspeech_vocoder"]).train.log_every == 77 == vtrain.train_defaults()["log_every"]


def test_a_train_default_without_a_rule_is_refused_naming_the_file(configs_copy):
    p = configs_copy / "train" / "default.yaml"
    p.write_text(p.read_text() + "warmup_shape: linear\n")
    with pytest.raises(config.ConfigError, match=r"default.yaml: .*unknown \['warmup_shape'\]"):
        loop.train_defaults()


# ---------------------------------------------------------------------- sampler options
@pytest.mark.parametrize("path", sorted((CONFIGS / "sampler").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_sampler_file_has_options_and_documents_their_names(path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data["options"], dict)
    samplers.check_options(data["method"], data["options"])
    for name in samplers.sampler_options(data["method"]):
        assert name in path.read_text(), (path.name, name)


def test_sampler_options_from_the_command_line_and_yaml():
    cfg = cli.compose(["experiment=tones", "sampler=ddim", "sampler.options.eta=0.5"])
    assert plain(cfg.sampler) == {"method": "ddim", "steps": 25, "options": {"eta": 0.5}}
    cfg = cli.compose(["sampler=heun", "+sampler.options.s_churn=10", "sampler.options.s_noise=1.003"])
    assert plain(cfg.sampler.options) == {"s_churn": 10, "s_noise": 1.003}
    assert loop.resolve_config(cfg)["sampler"]["options"] == {"s_churn": 10, "s_noise": 1.003}
    cfg = cli.compose(["sampler=dpmpp_2m_sde", "sampler.options={eta:0.25}"])
    assert plain(cfg.sampler.options) == {"eta": 0.25}


@pytest.mark.parametrize("args, fragments", [
    (["sampler.options.eta=0.5"], ["sampler.options: sampler 'dpmpp_2m' takes no option(s) ['eta']", "none"]),
    (["sampler=ddim", "sampler.options.etaa=0.5"], ["['etaa']", "allowed: ['eta', 's_noise']"]),
    (["sampler=ddim", "sampler.options.eta=2"], ["sampler.options: ddim eta must be in [0, 1]"]),
    (["sampler=heun", "sampler.options.s_churn=abc"], ["sampler.options.s_churn='abc' is not allowed"]),
])
def test_bad_sampler_options_are_one_line_usage_errors(capsys, tmp_path, args, fragments):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "experiment=tones", f"run_dir={run}", *args])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and err.startswith("audiodiff train: error: ")
    for f in fragments:
        assert f in err, (f, err)
    assert not run.exists()


OWN = ["experiment=own", "data.manifest=my_wavs/manifest.jsonl"]  # what a run without an experiment composes


@pytest.mark.parametrize("args, expected", [
    (["vocoder.init=pghi"], {"name": "griffinlim", "init": "pghi"}),  # a key the experiment did not write
    (["vocoder.init=pghi", "vocoder.n_iter=0"], {"name": "griffinlim", "init": "pghi", "n_iter": 0}),
    (["vocoder={name:griffinlim,n_iter:8}"], {"name": "griffinlim", "n_iter": 8}),  # replaced, not merged
    (["vocoder.path=runs/v/vocoder"], {"path": "runs/v/vocoder"}),  # a trained one: its folder alone
    (["vocoder=null"], None),
    (["~vocoder"], None),
    (["vocoder=griffinlim"], {"name": "griffinlim", "n_iter": 32, "momentum": 0.99, "nnls_iters": 20,
                              "init": "random", "seed": 0}),  # the configs/vocoder file, whole
])
def test_a_diffusion_runs_vocoder_is_set_from_the_command_line(args, expected):
    for base in (OWN, ["experiment=ljspeech_mel"]):
        assert plain(cli.compose([*base, *args]))["vocoder"] == expected, (base, args)
    # an experiment that wrote more keys keeps them when one is changed, loses them when the whole is given
    fsdd = ["experiment=fsdd_mel"]
    assert plain(cli.compose([*fsdd, "vocoder.nnls_iters=5"]).vocoder) == {
        "name": "griffinlim", "init": "pghi", "n_iter": 0, "nnls_iters": 5}
    assert plain(cli.compose([*fsdd, "vocoder={name:griffinlim}"]).vocoder) == {"name": "griffinlim"}


def test_a_vocoder_experiment_still_picks_its_network_from_the_vocoder_group():
    cfg = cli.compose(["experiment=ljspeech_vocoder", "vocoder=neural_small", "vocoder.dim=64"])
    assert cfg.vocoder.name == "neural" and cfg.vocoder.dim == 64 and cfg.vocoder.num_layers == 4


@pytest.mark.parametrize("args, fragments", [
    (["vocoder.inti=pghi"], ["'vocoder.inti'", "allowed: init, momentum, n_iter, name, nnls_iters, seed"]),
    (["vocoder={name:foo}"], ["vocoder.name=foo", "allowed: diffusion, griffinlim, neural"]),
    (["vocoder=bogus"], ["vocoder=bogus", "configs/vocoder/bogus.yaml", "griffinlim", "vocoder.path=DIR"]),
    (["vocoder.path=runs/v/vocoder", "vocoder.n_iter=3"], ["'vocoder.n_iter'", "trained one at runs/v/vocoder"]),
    (["vocoder.a.b=1"], ["'vocoder.a.b'", "one level deep"]),
    (["vocoder=neural"], ["vocoder 'neural' learns its weights", "vocoder.path=runs/<that run>/vocoder"]),
])
def test_bad_vocoder_settings_are_one_line_errors_before_training(capsys, tmp_path, args, fragments):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "experiment=tones_full", f"run_dir={run}", *args])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and err.startswith("audiodiff train: error: "), err
    for f in fragments:
        assert f in err, (f, err)
    assert not run.exists()


def _tiny_pipe(options=None, method="ddim"):
    from audiodiff import Pipeline

    meta = {"model": TINY_UNET1D, "objective": {"parameterization": "edm"}, "schedule": {"name": "karras"},
            "sampler": {"method": method, "steps": 2, **({"options": options} if options is not None else {})},
            "representation": "waveform", "sample_rate": 8000, "channels": 1, "segment_samples": 256,
            "conditions": {"pitch": "pitch"}, "pitch_range": [60, 72]}
    return Pipeline(models.build(TINY_UNET1D), meta, device="cpu")


@pytest.fixture
def seen(monkeypatch):
    """The `options` every samplers.sample call receives."""
    calls = []
    real = samplers.sample

    def spy(*a, options=None, **kw):
        calls.append(dict(options or {}))
        return real(*a, options=options, **kw)

    monkeypatch.setattr(samplers, "sample", spy)
    return calls


def test_generation_defaults_to_the_runs_options_and_takes_its_own(seen):
    from audiodiff import PipelineError

    pipe = _tiny_pipe({"eta": 0.5})
    out = pipe.generate(n=1, seed=0, progress=False)
    assert seen[-1] == {"eta": 0.5} and out.items[0]["sampler_options"] == {"eta": 0.5}
    pipe.generate(n=1, seed=0, progress=False, sampler_options={"eta": 0.0})
    assert seen[-1] == {"eta": 0.0}
    pipe.generate(n=1, seed=0, progress=False, sampler="euler")  # another method: the run's options are not its
    assert seen[-1] == {}
    n = len(seen)
    with pytest.raises(PipelineError, match=r"sampler_options: sampler 'euler' takes no option\(s\) \['eta'\]"):
        pipe.generate(n=1, seed=0, progress=False, sampler="euler", sampler_options={"eta": 0.5})
    with pytest.raises(PipelineError, match="sampler_options=3 is not allowed"):
        pipe.generate(n=1, seed=0, progress=False, sampler_options=3)
    assert len(seen) == n, "a bad request never samples"
    pipe.variation(torch.zeros(1, 512), strength=0.5, seed=0, progress=False)
    assert seen[-1] == {"eta": 0.5}


def test_options_change_the_samples():
    a = _tiny_pipe({"eta": 0.0}).generate(n=1, seed=0, progress=False, steps=4)
    b = _tiny_pipe({"eta": 1.0}).generate(n=1, seed=0, progress=False, steps=4)
    c = _tiny_pipe(None, method="euler").generate(n=1, seed=0, progress=False, steps=4)
    assert torch.equal(a.audio, c.audio) and not torch.equal(a.audio, b.audio)  # ddim eta=0 is euler


def test_generate_command_passes_sampler_options(monkeypatch, tmp_path):
    from audiodiff import pipeline

    got = {}

    class Fake:
        def generate(self, **kw):
            got.update(kw)
            return type("G", (), {"save": lambda self, folder, plot, overwrite: [], "sample_rate": 8000})()

    monkeypatch.setattr(pipeline.Pipeline, "from_pretrained", staticmethod(lambda *a, **kw: Fake()))
    cli.main(["generate", "run=runs/x", "sampler=ddim", "sampler_options={eta:0.5}", f"out={tmp_path / 'o'}"])
    assert got["sampler"] == "ddim" and got["sampler_options"] == {"eta": 0.5}


def test_options_set_for_training_are_stored_in_the_run_and_used_by_its_samples(tmp_path, seen):
    from audiodiff import Pipeline

    cfg = tiny_cfg(tmp_path / "run", steps=2)
    cfg["sampler"] = {"method": "dpmpp_2m_sde", "steps": 2, "options": {"eta": 0.3}}
    run = loop.train(cfg)
    newest = run / "checkpoints" / (run / "checkpoints" / "last").read_text().strip()
    meta = json.loads((newest / "meta.json").read_text())
    assert meta["sampler"]["options"] == {"eta": 0.3}
    Pipeline.from_pretrained(run, device="cpu").generate(n=1, seed=0, progress=False)
    assert seen[-1] == {"eta": 0.3}

    class Writer:
        def add_audio(self, *a, **kw):
            pass

        def add_figure(self, *a, **kw):
            pass

    net = models.build(meta["model"])
    from audiodiff import representations

    loop.sample_logger(net, meta, representations.from_meta(meta), "cpu", steps=2, n=1)(Writer(), 1)  # training-time
    assert seen[-1] == {"eta": 0.3}
