"""Issue 13, command line: every bad input gets one clear line on stderr and the right exit code, nothing is lost.

Probes run the real command (`python -m audiodiff ...` in a subprocess) where the process boundary matters (exit
code, no traceback, a closed pipe) and `audiodiff.cli.main([...])` with capsys elsewhere (same code, faster).
"""
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import audiodiff
from audiodiff import cli
from audiodiff.errors import UsageError
from tests.helpers import tiny_cfg

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "AUDIODIFF_DEBUG": ""}


def run_cli(*args, env=None, **kw):
    """The real command: `python -m audiodiff args...` from the repository root."""
    return subprocess.run([sys.executable, "-m", "audiodiff", *args], cwd=ROOT, env=env or ENV, timeout=300,
                          capture_output=True, text=True, **kw)


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def assert_one_line(stderr, command, *fragments):
    """stderr is one line `audiodiff <command>: error: ...` holding every fragment, and no traceback."""
    lines = _lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"audiodiff {command}: error: "), lines[0]
    assert "Traceback" not in stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def main_exit(capsys, argv):
    """`cli.main(argv)` -> (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained run (2 steps of a pitch-conditioned waveform model)."""
    d = tmp_path_factory.mktemp("cli") / "run"
    audiodiff.train(tiny_cfg(d, steps=2))
    return d


# ---------------------------------------------------------------------- 1. finetune keeps its required init_from
def test_finetune_without_init_from_is_a_usage_error_and_trains_nothing(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"path": "a.wav", "duration": 1.0, "sample_rate": 16000}\n')
    run = tmp_path / "R"
    r = run_cli("finetune", f"data.manifest={manifest}", "train.steps=2", f"run_dir={run}")
    assert r.returncode == 2, r.stderr
    assert_one_line(r.stderr, "finetune", "train.init_from", "train.init_from=<run directory")
    assert not run.exists()  # nothing trained from scratch


def test_custom_experiment_keeps_its_required_value():
    """OmegaConf's merge keeps `null` from train/default.yaml over the experiment's `???`: compose puts it back."""
    cfg = cli.compose(["experiment=custom", "data.manifest=m.jsonl"])
    assert OmegaConf.is_missing(cfg.train, "init_from")
    assert sorted(OmegaConf.missing_keys(cfg)) == ["train.init_from"]
    cfg = cli.compose(["experiment=custom", "data.manifest=m.jsonl", "train.init_from=runs/base"])
    assert cfg.train.init_from == "runs/base" and not OmegaConf.missing_keys(cfg)
    assert cli.compose(["experiment=tones"]).train.init_from is None  # no requirement without the experiment


def test_train_with_a_missing_value_names_every_missing_setting(capsys):
    code, _, err = main_exit(capsys, ["train", "experiment=custom"])
    assert code == 2
    assert_one_line(err, "train", "data.manifest", "train.init_from", "audiodiff prepare")


def test_finetune_of_another_experiment_still_needs_init_from(capsys):
    code, _, err = main_exit(capsys, ["finetune", "experiment=tones", "train.steps=2"])
    assert code == 2
    assert_one_line(err, "finetune", "train.init_from")


# ---------------------------------------------------------------------- 2. documented commands work as written
def _readme_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip().startswith("audiodiff")]


def _docstring_commands():
    return [shlex.split(m) for m in re.findall(r"(audiodiff (?:train|finetune|generate|prepare|evaluate|config) "
                                               r"[^\n`]*)", cli.__doc__)]


def _check_parses(argv):
    """Parse / compose a documented command without running it (no training, no model loading)."""
    assert argv[0] == "audiodiff"
    cmd, args = argv[1], argv[2:]
    if cmd in ("train", "finetune", "config"):
        cfg, _ = cli.training_config(cmd, args)
        return OmegaConf.to_container(cfg, resolve=False)
    if cmd == "generate":
        kv = cli.parse_keys(args, cli.GENERATE_KEYS)
        labels = kv["labels"]
        assert labels is None or not isinstance(labels, list) or len(labels) in (1, kv["n"]), argv
        return kv
    if cmd == "prepare":
        return cli.parse_keys(args, cli.PREPARE_KEYS)
    if cmd == "evaluate":
        from audiodiff.evaluation import cli as ecli

        return ecli.parse_args(args, ecli.EVAL_KEYS) if args[0] != "train-judge" else \
            ecli.parse_args(args[1:], ecli.TRAIN_KEYS)
    if cmd == "serve":
        assert all("=" in a for a in args)
        return {}
    if cmd == "--version":
        assert not args
        return {}
    if cmd == "distill":
        return cli.parse_keys([a for a in args if not a.startswith("train.")], cli.DISTILL_KEYS)
    raise AssertionError(f"unknown documented command {argv}")


def test_readme_command_line_examples_parse():
    commands = _readme_commands()
    assert {c[1] for c in commands} >= {"train", "generate", "prepare", "finetune", "evaluate", "config"}
    for argv in commands:
        _check_parses(argv)


def test_help_examples_parse():
    commands = _docstring_commands() + [shlex.split(e) for e in cli.EXAMPLES.values()]
    assert len(commands) >= 10
    for argv in commands:
        _check_parses(argv)


def test_documented_lora_finetune_gives_the_lora_dict():
    lora = [c for c in _readme_commands() if c[1] == "finetune" and any("lora" in a for a in c)]
    assert lora, "the README documents a LoRA fine-tune"
    cfg, _ = cli.training_config("finetune", lora[0][2:])
    assert OmegaConf.to_container(cfg.train.lora) == {"rank": 8, "alpha": 16}
    assert cfg.train.init_from == "runs/tones"


def test_bracketed_lora_override_is_one_clear_line(capsys):
    code, _, err = main_exit(capsys, ["config", "['train.lora={rank:8,alpha:16}']"])
    assert code == 2
    assert_one_line(err, "config", "cannot parse the setting", "'train.lora={rank:8,alpha:16}'")


def test_dotted_key_under_a_null_section_says_how_to_set_it(capsys):
    code, _, err = main_exit(capsys, ["config", "experiment=custom", "train.lora.rank=8"])
    assert code == 2
    assert_one_line(err, "config", "train.lora is null", "'train.lora={rank:...}'")


def test_new_section_as_a_dict_says_how_to_add_it_and_the_hint_composes(capsys):
    code, _, err = main_exit(capsys, ["config", "experiment=tones", "data.mel={n_mels:64}"])
    assert code == 2
    assert_one_line(err, "config", "data has no key 'mel'", "+data.mel={n_mels:64}")
    assert cli.compose(["experiment=tones", "+data.mel={n_mels:64}"]).data.mel.n_mels == 64
    code, _, err = main_exit(capsys, ["config", "experiment=tones", "train.stepz=5"])  # a typo: no such hint
    assert code == 2
    assert "train has no key 'stepz'" in err and "+train" not in err


# ---------------------------------------------------------------------- 6 / 12. generate passes values through
@pytest.mark.parametrize("arg, fragment", [
    ("n=2.7", "n=2.7 is not allowed"), ("n=0", "n=0 is not allowed"), ("steps=2.5", "steps=2.5 is not allowed"),
    ("steps=0", "steps=0 is not allowed"), ("batch_size=0", "batch_size=0"), ("guidance=abc", "guidance='abc'"),
    ("seed=abc", "seed='abc' is not allowed"), ("seed=99999999999999999999", "seed=99999999999999999999"),
    ("seed=-1", "seed=-1"), ("plot=maybe", "plot='maybe' is not allowed; allowed: true or false"),
    ("overwrite=2", "overwrite='2' is not allowed"), ("labels=[60,64", "labels='[60,64'"),
])
def test_generate_bad_value_is_one_line_exit_2(capsys, run_dir, tmp_path, arg, fragment):
    out = tmp_path / "out"
    base = [a for a in ("steps=2", "n=1") if a.split("=")[0] != arg.split("=")[0]]
    code, _, err = main_exit(capsys, ["generate", f"run={run_dir}", *base, f"out={out}", arg])
    assert code == 2
    assert_one_line(err, "generate", fragment)
    assert not out.exists()


def test_generate_bad_n_real_command(run_dir, tmp_path):
    r = run_cli("generate", f"run={run_dir}", "n=2.7", f"out={tmp_path / 'o'}")
    assert r.returncode == 2
    assert_one_line(r.stderr, "generate", "n=2.7", "allowed: an integer >= 1")


def test_generate_refuses_a_non_empty_out_unless_overwrite(capsys, run_dir, tmp_path):
    out = tmp_path / "gen"
    args = ["generate", f"run={run_dir}", "n=2", "labels=[60,64]", "steps=2", f"out={out}", "seed=3"]
    cli.main(args)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["generated.jsonl", "sample_000.wav", "sample_001.wav"]
    capsys.readouterr()
    code, _, err = main_exit(capsys, args[:-1] + ["seed=4"])
    assert code == 2
    assert_one_line(err, "generate", str(out), "overwrite=true")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # nothing lost
    cli.main(args[:-1] + ["seed=4", "overwrite=true"])
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(second) == sorted(first) and second["sample_000.wav"] != first["sample_000.wav"]


def test_generate_passes_values_as_parsed(monkeypatch, tmp_path):
    """No int()/bool() coercion: the pipeline gets exactly what was typed (it owns the checks)."""
    seen = {}

    class FakePipe:
        sample_rate = 8000

        @classmethod
        def from_pretrained(cls, path, **kw):
            seen["load"] = (path, kw)
            return cls()

        def generate(self, **kw):
            seen["generate"] = kw
            return types.SimpleNamespace(sample_rate=8000, save=lambda folder, **kw: seen.update(save=kw) or [])

    import audiodiff.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "Pipeline", FakePipe)
    cli.main(["generate", "run=runs/x", "n=2.7", "steps=0", "seed=abc", "labels=[60,64]", "guidance=1.5",
              f"out={tmp_path / 'o'}", "overwrite=true", "plot=true"])
    g = seen["generate"]
    assert g["n"] == 2.7 and g["steps"] == 0 and g["seed"] == "abc" and g["labels"] == [60, 64]
    assert g["guidance"] == 1.5 and g["batch_size"] is None and g["sampler"] is None
    assert seen["save"] == {"plot": True, "overwrite": True}
    assert seen["load"] == ("runs/x", {"device": None, "use_ema": True, "vocoder": None, "step": None})


# ---------------------------------------------------------------------- 8. --help, errors, pipes, Ctrl-C
@pytest.mark.parametrize("command", ["train", "finetune", "config", "generate", "prepare", "evaluate", "serve"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(capsys, command, flag):
    if command == "serve" and not (ROOT / "audiodiff" / "serve.py").exists():
        pytest.skip("audiodiff/serve.py not written yet")
    cli.main([command, flag])
    out, err = capsys.readouterr()
    assert err == "" and out.strip()
    assert "audiodiff" in out and "Traceback" not in out


def test_train_help_lists_the_composed_keys_and_groups(capsys):
    cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"^  train\.steps +  = 20000$", out, re.M)
    assert re.search(r"^  name +  = default$", out, re.M)
    assert re.search(r"^  model=  +now: unet1d_small;  options: unet1d_base, .*unet2d_small$", out, re.M)
    assert re.search(r"^  experiment= +now: none;", out, re.M) and "custom" in out
    assert "Example: audiodiff train experiment=tones" in out


def test_help_names_the_place_of_an_unchosen_mel_contract_and_the_hint_composes(capsys):
    cli.main(["train", "--help"])
    hint = re.search(r"^  (\+mel@\S+)= +not chosen \(add one with \1=\.\.\.\)", capsys.readouterr().out, re.M)
    assert hint and hint.group(1) == "+mel@data.mel"
    cfg = cli.compose([f"{hint.group(1)}=fsdd"])
    assert cfg.data.mel.n_mels == 64 and cfg.data.mel.hop_length == 128  # configs/mel/fsdd.yaml, where data reads it
    cli.main(["train", "task=vocoder", "--help"])
    assert re.search(r"^  \+mel@mel= +not chosen", capsys.readouterr().out, re.M)


def test_help_follows_the_experiment_given(capsys):
    cli.main(["train", "experiment=fsdd", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"^  name +  = fsdd$", out, re.M) and "now: fsdd" in out
    cli.main(["finetune", "-h"])
    out = capsys.readouterr().out
    assert re.search(r"^  train\.init_from +  = \?\?\?  \(required\)$", out, re.M)


def test_generate_help_is_the_table_the_check_uses(capsys):
    cli.main(["generate", "--help"])
    out = capsys.readouterr().out
    for key, (_, default, meaning) in cli.GENERATE_KEYS.items():
        shown = "(required)" if default is cli.REQUIRED else cli._fmt(default)
        assert re.search(rf"^  {key} +{re.escape(shown)} +{re.escape(meaning)}$", out, re.M), key
    assert "overwrite" in out and "Example: audiodiff generate" in out


def test_prepare_table_defaults_are_build_manifest_defaults():
    import inspect

    from audiodiff.data.manifest import build_manifest

    sig = inspect.signature(build_manifest).parameters
    for key, (_, default, _) in cli.PREPARE_KEYS.items():
        if key in sig and key not in ("source", "out", "extensions", "label_fields"):
            assert sig[key].default == default, key


def test_help_real_command_has_no_traceback():
    r = run_cli("train", "--help")
    assert r.returncode == 0 and "Traceback" not in r.stderr and "train.batch_size" in r.stdout
    r = run_cli("generate", "--help")
    assert r.returncode == 0 and "must be key=value" not in r.stdout + r.stderr and "overwrite" in r.stdout


def test_help_into_a_closed_pipe_is_quiet():
    """`audiodiff --help | head -0`: the reader is gone before we write."""
    p = subprocess.Popen([sys.executable, "-m", "audiodiff", "--help"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "BrokenPipeError" not in err and "Traceback" not in err, err
    assert p.returncode == 141  # 128 + SIGPIPE, like other tools cut off by `head`


def test_hydra_errors_are_one_line_usage_errors(capsys):
    code, _, err = main_exit(capsys, ["train", "train.stepz=3"])
    assert code == 2
    assert_one_line(err, "train", "'train.stepz'", "allowed: steps, batch_size")
    code, _, err = main_exit(capsys, ["train", "experiment=nope"])
    assert code == 2
    assert_one_line(err, "train", "experiment=nope", "custom", "tones")
    code, _, err = main_exit(capsys, ["train", "model=unet3d"])
    assert code == 2
    assert_one_line(err, "train", "model=unet3d", "unet1d_small")
    code, _, err = main_exit(capsys, ["train", "train.steps=[1"])
    assert code == 2
    assert_one_line(err, "train", "'train.steps=[1'")
    code, _, err = main_exit(capsys, ["config", "mel=fsdd"])  # a group the diffusion task places under data.mel
    assert code == 2
    assert_one_line(err, "config", "+mel=<option>", "fsdd")
    code, _, err = main_exit(capsys, ["config", "vocoder=nope"])  # a diffusion run's vocoder: one of its files
    assert code == 2
    assert_one_line(err, "config", "vocoder=nope", "griffinlim", "vocoder.path=DIR")


def test_hydra_error_real_command():
    r = run_cli("train", "train.stepz=3")
    assert r.returncode == 2
    assert_one_line(r.stderr, "train", "train.stepz")


def test_unknown_command_and_option(capsys):
    code, _, err = main_exit(capsys, ["trian"])
    assert code == 2 and _lines(err) == ["audiodiff: error: unknown command 'trian'; allowed: train, finetune, "
                                         "generate, prepare, evaluate, config, serve, distill"]
    code, _, err = main_exit(capsys, ["generate", "--force"])
    assert code == 2
    assert_one_line(err, "generate", "'--force'", "--help")


def test_unexpected_error_is_one_line_and_debug_shows_it(capsys, monkeypatch):
    def boom(args):
        raise RuntimeError("something broke\ninside")

    monkeypatch.setattr(cli, "cmd_prepare", boom)
    monkeypatch.setenv("AUDIODIFF_DEBUG", "")
    code, _, err = main_exit(capsys, ["prepare", "source=x"])
    assert code == 1
    assert_one_line(err, "prepare", "unexpected RuntimeError: something broke inside", "--debug", "AUDIODIFF_DEBUG=1")
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["prepare", "source=x", "--debug"])
    monkeypatch.setenv("AUDIODIFF_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["prepare", "source=x"])


def test_audiodiff_errors_keep_their_exit_code(capsys, monkeypatch):
    from audiodiff.errors import AudiodiffError

    def fail(args):
        raise AudiodiffError("runs/x/checkpoints/2/model.safetensors is truncated")

    monkeypatch.setattr(cli, "cmd_prepare", fail)
    code, _, err = main_exit(capsys, ["prepare", "source=x"])
    assert code == 1
    assert _lines(err) == ["audiodiff prepare: error: runs/x/checkpoints/2/model.safetensors is truncated"]


def test_ctrl_c_exits_130_with_one_line(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_prepare", interrupted)
    code, _, err = main_exit(capsys, ["prepare", "source=x"])
    assert code == 130 and _lines(err) == ["audiodiff prepare: interrupted"]


# ---------------------------------------------------------------------- 9. unknown keys list the allowed ones
@pytest.mark.parametrize("argv, fragment", [
    (["generate", "run=r", "bogus=1"], "unknown key 'bogus'; allowed keys: run, n, seconds"),
    (["generate", "n=2"], "missing required key run"),
    (["generate", "run=r", "n=1", "n=2"], "key 'n' given twice"),
    (["generate", "run=r", "labels"], "'labels' is not key=value; allowed keys: run"),
    (["prepare", "source=x", "min_durration=1"], "unknown key 'min_durration'; allowed keys: source, out, min_dur"),
    (["prepare", "source=x", "min_duration=abc"], "min_duration='abc' is not allowed; allowed: a number"),
    (["prepare", "source=x", "extensions=.wav"], "extensions='.wav' is not allowed; allowed: a list of strings"),
    (["prepare"], "missing required key source"),
    (["evaluate", "generated=x", "foo=1"], "unknown key 'foo'; allowed keys: ['device'"),
    (["evaluate", "train-judge", "data=a", "label=b", "out=c", "epochs=many"], "epochs='many' is not a valid int"),
    (["evaluate"], "train-judge"),
])
def test_unknown_or_bad_keys_are_usage_errors(capsys, argv, fragment):
    code, _, err = main_exit(capsys, argv)
    assert code == 2
    assert_one_line(err, argv[0], fragment)


def test_prepare_passes_only_given_keys(monkeypatch, tmp_path, capsys):
    import audiodiff.data.manifest as manifest_mod

    seen = {}
    monkeypatch.setattr(manifest_mod, "build_manifest", lambda source, out=None, **kw: seen.update(
        source=source, out=out, kw=kw) or "report")
    cli.main(["prepare", f"source={tmp_path}", "min_duration=0.5", "label_from=folder"])
    assert seen == {"source": str(tmp_path), "out": tmp_path / "manifest.jsonl",
                    "kw": {"min_duration": 0.5, "label_from": "folder"}}
    assert capsys.readouterr().out.strip() == "report"


# ---------------------------------------------------------------------- serve is wired in
def test_serve_is_dispatched_lazily(monkeypatch, capsys):
    calls = []
    fake = types.ModuleType("audiodiff.serve")
    fake.HELP = "audiodiff serve run=RUN (fake help)"
    fake.cmd_serve = calls.append
    monkeypatch.setitem(sys.modules, "audiodiff.serve", fake)
    cli.main(["serve", "run=runs/x", "port=0"])
    assert calls == [["run=runs/x", "port=0"]]
    cli.main(["serve", "--help"])
    assert capsys.readouterr().out.strip() == fake.HELP


def test_serve_that_cannot_import_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "audiodiff.serve", None)  # importing it raises ImportError
    code, _, err = main_exit(capsys, ["serve", "run=runs/x"])
    assert code == 1
    assert_one_line(err, "serve", "cannot import it from audiodiff.serve")


def test_usage_error_class_is_shared():
    with pytest.raises(UsageError):
        cli.parse_keys(["x=1"], cli.GENERATE_KEYS)
