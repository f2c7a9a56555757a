"""Command line: `audiodiff <command> key=value ...` (also `python -m audiodiff ...`).

Commands:
  train      Hydra-composed training:  audiodiff train experiment=tones train.steps=500
  finetune   from a trained run:       audiodiff finetune data.manifest=my_wavs/m.jsonl train.init_from=runs/tones
  generate   WAVs from a run:          audiodiff generate run=runs/tones n=4 labels=[60,62,64,65] out=samples/x seed=0
  prepare    a manifest from a folder: audiodiff prepare source=my_wavs/ out=my_wavs/manifest.jsonl
  distill    a few-step student:       audiodiff distill run=runs/fsdd_mel steps=4
  evaluate   judges and reports:       audiodiff evaluate generated=samples/x
  config     the config, printed only: audiodiff config experiment=fsdd
  serve      a local web page to generate from a run (see `audiodiff serve --help`)

`audiodiff <command> --help` (or -h) lists the command's keys, defaults and an example. Quote a value with
braces as one argument, or the shell splits it: 'train.lora={rank:8,alpha:16}'.
An error prints one line, `audiodiff <command>: error: <message>`, and exits 2 for a bad argument or setting,
1 for a failure, 130 on Ctrl-C; add --debug (or set AUDIODIFF_DEBUG=1) to see the full traceback.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path

# The config tree (compose, config_dir, ...) lives in audiodiff/config.py, the base layer, so that
# training/vocoder.py composes through it too; `cli.compose` is the same function.
from .config import _hydra_compose, _override_key, compose, config_dir, config_groups
from .errors import AudiodiffError, UsageError

COMMANDS = ("train", "finetune", "generate", "prepare", "evaluate", "config", "serve", "distill")
HELP_FLAGS = ("-h", "--help")
DEBUG_FLAG = "--debug"
REQUIRED = object()  # the default of a key that must be given


def _one_line(msg: str) -> str:
    """A message on one line: its non-empty lines joined with spaces."""
    return " ".join(line.strip() for line in str(msg).splitlines() if line.strip())


# ---------------------------------------------------------------------- training configs (Hydra)
MISSING_HINTS = {
    "data.manifest": "data.manifest=<manifest.jsonl> (make one with `audiodiff prepare source=<folder>`)",
    "train.init_from": "train.init_from=<run directory to start from, e.g. runs/tones>",
    "mel": "+mel@mel=<a mel contract of configs/mel/, e.g. ljspeech>",
}


# where a group that an experiment may leave unchosen goes, by task: the mel contract is the data's (data.mel) for
# a diffusion model and the top-level `mel` of a vocoder run
GROUP_PLACES = {"mel": {"diffusion": "data.mel", "vocoder": "mel"}}


def _require(cfg, finetune: bool = False) -> None:
    """Every `???` value is given; a fine-tune names the run it starts from."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if finetune and "train.init_from" not in missing and OmegaConf.select(cfg, "train.init_from") is None:
        missing.append("train.init_from")
    if missing:
        hints = " ".join(MISSING_HINTS.get(k, f"{k}=<value>") for k in missing)
        what = "finetune needs" if finetune and "train.init_from" in missing else "missing required"
        raise UsageError(f"{what} setting{'s' if len(missing) > 1 else ''} {', '.join(missing)}; give {hints}")


def _train_args(cmd: str, args: list[str]) -> list[str]:
    """finetune defaults to `experiment=custom`; train (and config) given `data.manifest=` and no experiment or data
    option to `experiment=own`: your own recordings, with the settings chosen from them (configs/experiment/own.yaml)."""
    keys = {_override_key(a) for a in args}
    if cmd == "finetune" and "experiment" not in keys:
        return ["experiment=custom", *args]
    if cmd in ("train", "config") and "data.manifest" in keys and not keys & {"experiment", "data"}:
        return ["experiment=own", *args]
    return list(args)


def training_config(cmd: str, args: list[str]):
    """`(config, is_vocoder)` of `audiodiff train|finetune|config args...`, composed and checked but not run.

    Every experiment composes the same way; a config whose `task` is `vocoder` (a vocoder experiment, or
    `task=vocoder`) is trained by `training.vocoder.train_vocoder`, any other by `training.loop.train`.
    """
    cfg = compose(_train_args(cmd, args))
    if cmd != "config":
        _require(cfg, finetune=cmd == "finetune")
    return cfg, cfg.get("task") == "vocoder"


def cmd_train(args: list[str], cmd: str = "train") -> None:
    from omegaconf import OmegaConf

    cfg, _ = training_config(cmd, args)
    from .training import tasks  # the one dispatch, on the config's `task`

    run = tasks.train(OmegaConf.to_container(cfg, resolve=True))
    print(f"trained: {run}")


def cmd_finetune(args: list[str]) -> None:
    cmd_train(args, cmd="finetune")


def cmd_config(args: list[str]) -> None:
    from omegaconf import OmegaConf

    cfg, _ = training_config("config", args)
    print(OmegaConf.to_yaml(cfg, resolve=True), end="")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        print(f"audiodiff config: note: required settings not given yet (???): {', '.join(missing)}",
              file=sys.stderr)


# ---------------------------------------------------------------------- key=value commands
# key -> (kind, default, meaning). kind: "path" (kept as typed), "bool" (true|false), "number", "str",
# "list" (of strings), "mapping" (`{k:v,...}` in the grammar of train's overrides, e.g. 'train.lora={rank:8}'; the
# library checks its keys), or "value" (parsed like YAML and passed on as is: the library checks it).
GENERATE_KEYS: dict[str, tuple[str, object, str]] = {
    "run": ("path", REQUIRED, "run directory (newest checkpoint) or runs/<name>/checkpoints/<step>"),
    "n": ("value", 1, "number of clips (an integer >= 1)"),
    "seconds": ("value", None, "length of each clip in seconds (default: the training segment length)"),
    "steps": ("value", None, "sampler steps, an integer >= 1 (default: the run's sampler config)"),
    "sampler": ("value", None, "ddpm, ddim, euler, heun, dpmpp_2m, dpmpp_2m_sde, ... (default: the run's)"),
    "sampler_options": ("mapping", None, "the sampler's settings, e.g. '{eta:0.5}' (default: the run's "
                                         "sampler.options, when the sampler is the run's)"),
    "labels": ("labels", None, "one condition per clip, or one for all: MIDI pitches or class values as written, "
                               "e.g. [60,64] or [yes,no]"),
    "pitch": ("labels", None, "MIDI pitches, for a model conditioned on both a class (labels) and a pitch"),
    "guidance": ("value", None, "classifier-free guidance scale (unset or 1: plain conditional sampling)"),
    "seed": ("value", 0, "integer seed: clip k gets seed+k (or a list, one per clip)"),
    "batch_size": ("value", None, "generate in chunks of this many clips (memory); results do not change"),
    "out": ("path", "samples/generated", "output folder: one WAV per clip + generated.jsonl"),
    "plot": ("bool", False, "also write a spectrogram PNG per clip"),
    "overwrite": ("bool", False, "write into an out folder that is not empty"),
    "device": ("path", None, "cpu, cuda, cuda:1, ... (default: cuda when available)"),
    "vocoder": ("path", None, "mel models: a vocoder folder to use instead of the run's own, or changes to the "
                              "run's own as a mapping, e.g. '{init:pghi,n_iter:0}' (phase-gradient phase, no "
                              "Griffin-Lim iterations)"),
    "use_ema": ("bool", True, "use the EMA weights (false: the raw training weights)"),
    "step": ("value", None, "checkpoint step to load (default: the newest)"),
}
PREPARE_KEYS: dict[str, tuple[str, object, str]] = {
    "source": ("path", REQUIRED, "a folder of audio (searched recursively), a .csv or a .jsonl manifest"),
    "out": ("path", None, "manifest to write (default for a folder: <source>/manifest.jsonl; else only reported)"),
    "min_duration": ("number", 0.05, "leave out files shorter than this many seconds"),
    "silence_db": ("value", -60.0, "leave out files whose peak is below this many dBFS (silent); null keeps them"),
    "label_from": ("path", None, "folder | none | a regex with named groups (?P<name>...), where labels come from: "
                                 "folder = the first-level sub-folder's name (my_wavs/yes/s1/a.wav -> yes), none = no "
                                 "labels, a regex = fields from file names; default: folder when every file lies in "
                                 "one of >= 2 sub-folders, else none"),
    "labels": ("path", None, "table.csv or table.json, labels of a folder source's files: CSV with a path or file "
                             "column (relative to the source) and label columns; JSON {\"yes/a.wav\": \"yes\"} or "
                             "[{path: ..., label: ...}]; files not in it are left out"),
    "label_fields": ("list", None, "CSV/JSONL columns to keep as labels, e.g. [label,speaker] (default: all)"),
    "path_column": ("str", "path", "the CSV column holding the file paths"),
    "extensions": ("list", None, "file extensions to take from a folder, e.g. [.wav,.flac]"),
    "max_fail_fraction": ("number", 0.5, "fail when more than this share of the files is left out"),
}
DISTILL_KEYS: dict[str, tuple[str, object, str]] = {
    "run": ("path", REQUIRED, "the teacher: a diffusion run or a shipped base"),
    "steps": ("value", 4, "the student's sampler steps (one network call each; guidance is distilled in)"),
    "pairs": ("value", 2048, "teacher pairs (noise -> where the guided teacher's ODE lands), made once"),
    "guidance": ("value", 2.0, "the teacher's guidance scale, distilled into the student"),
    "teacher_steps": ("value", 16, "the teacher's sampler steps when it makes the pairs"),
    "pair_seed": ("value", 0, "pair k draws its noise with seed pair_seed + k"),
    "run_dir": ("path", None, "the student's run (default runs/<teacher>_distill<steps>)"),
}
EXAMPLES = {
    "train": "audiodiff train experiment=tones train.steps=2000",
    "finetune": "audiodiff finetune data.manifest=my_wavs/manifest.jsonl train.init_from=runs/tones "
                "'train.lora={rank:8,alpha:16}'",
    "config": "audiodiff config experiment=fsdd",
    "generate": "audiodiff generate run=runs/tones n=4 labels=[60,62,64,65] out=samples/x seed=0",
    "prepare": "audiodiff prepare source=my_wavs/ out=my_wavs/manifest.jsonl",
    "distill": "audiodiff distill run=runs/fsdd_mel steps=4 train.max_seconds=300",
}


def parse_keys(args: list[str], keys: dict[str, tuple[str, object, str]], defaults: bool = True) -> dict:
    """`key=value` arguments checked against a key table: unknown, repeated or missing keys raise UsageError.

    Values are typed like YAML (`n=4` -> 4, `labels=[60,64]` -> a list, `seed=abc` -> "abc") and passed on as
    given (never rounded or replaced); "path" keys keep the text as typed; "bool" keys must be true or false.
    With `defaults`, keys not given get the table's default.
    """
    from omegaconf import OmegaConf

    allowed = ", ".join(keys)
    out: dict = {}
    for a in args:
        if "=" not in a:
            raise UsageError(f"{a!r} is not key=value; allowed keys: {allowed}")
        k, text = a.split("=", 1)
        k = k.strip()
        if k not in keys:
            raise UsageError(f"unknown key {k!r}; allowed keys: {allowed}")
        if k in out:
            raise UsageError(f"key {k!r} given twice")
        kind = keys[k][0]
        if kind == "path":
            if not text.strip():
                raise UsageError(f"{k}= is empty; give {k}=<{keys[k][2].split(',')[0]}>")
            out[k] = text
            continue
        if kind == "mapping":  # Hydra's grammar, as for train: {eta:0.5} (YAML would read a key 'eta:0.5')
            out[k] = _mapping(k, text)
            continue
        if kind == "labels":  # as written: `yes` stays the string 'yes' (YAML would make it True)
            out[k] = parse_labels(k, text)
            continue
        try:
            value = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={text}"]))["v"]
        except Exception as e:
            raise UsageError(f"{k}={text!r} does not parse ({_one_line(e).split(' in ')[0]}); write lists as "
                             "[a,b] and quote them for the shell") from None
        ok = {"bool": lambda v: isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "str": lambda v: isinstance(v, str),
              "list": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
              "value": lambda v: True}[kind](value)
        if not ok:
            need = {"bool": "true or false", "number": "a number", "str": "a string",
                    "list": "a list of strings, e.g. [a,b]"}[kind]
            raise UsageError(f"{k}={text!r} is not allowed; allowed: {need}")
        out[k] = value
    missing = [k for k, (_, default, _) in keys.items() if default is REQUIRED and k not in out]
    if missing:
        raise UsageError(f"missing required key{'s' if len(missing) > 1 else ''} "
                         + "; ".join(f"{k} ({keys[k][2]})" for k in missing))
    for k, (_, default, _) in keys.items():
        if defaults and k not in out and default is not REQUIRED:
            out[k] = default
    return out


_NUMBER = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def _label_item(key: str, text: str):
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]  # quoted: a string, whatever it looks like
    if not t:
        raise UsageError(f"{key}= holds an empty item; write {key}=[a,b] with one value per item")
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    if _NUMBER.fullmatch(t):
        return float(t)
    return t


def parse_labels(key: str, text: str):
    """`labels=` / `pitch=` as the user wrote them: `[yes,no]` -> ['yes', 'no'] (never YAML's booleans), `[3,7]`
    -> [3, 7], `60` -> 60, `'[\"3\",x]'` -> ['3', 'x'] (quotes keep an item a string), `null` -> None."""
    t = text.strip()
    if t in ("null", "~", ""):
        return None
    if t.startswith("[") != t.endswith("]"):
        raise UsageError(f"{key}={text!r} does not parse: write one value, or a list as [a,b] (quoted for the shell)")
    if not t.startswith("["):
        return _label_item(key, t)
    inner = t[1:-1].strip()
    if not inner:
        raise UsageError(f"{key}=[] is empty; give one value per clip, or one for all")
    items, quote, cur = [], None, ""
    for ch in inner:  # commas inside quotes stay in the item
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            items.append(cur)
            cur = ""
            continue
        cur += ch
    items.append(cur)
    return [_label_item(key, i) for i in items]


def _mapping(key: str, text: str) -> dict | None:
    """`{eta:0.5,s_noise:1}` (or null) parsed as a `train` override value is; anything else is a UsageError."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        value = OverridesParser.create().parse_override(f"v={text}").value()
    except HydraException:
        value = text
    if value is not None and not isinstance(value, dict):
        raise UsageError(f"{key}={text!r} is not allowed; allowed: a mapping such as '{{eta:0.5}}' (quoted for the "
                         "shell), or null")
    return None if value is None else dict(value)


def _folder_in_use(folder: Path) -> bool:
    return folder.exists() and (not folder.is_dir() or any(folder.iterdir()))


def cmd_generate(args: list[str]) -> None:
    kv = parse_keys(args, GENERATE_KEYS)
    folder = Path(kv["out"])
    if _folder_in_use(folder) and not kv["overwrite"]:  # before loading the model: fail in a second, not after
        what = "is a file" if not folder.is_dir() else "is not empty"
        raise UsageError(f"out={folder} {what}; choose a new folder or add overwrite=true")
    from .pipeline import Pipeline

    vocoder = kv["vocoder"]
    if vocoder is not None and vocoder.lstrip().startswith("{"):
        vocoder = _mapping("vocoder", vocoder)
    pipe = Pipeline.from_pretrained(kv["run"], device=kv["device"], use_ema=kv["use_ema"], vocoder=vocoder,
                                    step=kv["step"])
    out = pipe.generate(n=kv["n"], seconds=kv["seconds"], steps=kv["steps"], sampler=kv["sampler"],
                        labels=kv["labels"], guidance=kv["guidance"], seed=kv["seed"], batch_size=kv["batch_size"],
                        pitch=kv["pitch"], sampler_options=kv["sampler_options"])
    paths = out.save(folder, plot=kv["plot"], overwrite=kv["overwrite"])
    print(f"wrote {len(paths)} clip{'s' if len(paths) != 1 else ''} ({out.sample_rate} Hz WAV) and generated.jsonl "
          f"to {folder}")


def cmd_prepare(args: list[str]) -> None:
    """Build a manifest (a folder's goes to <source>/manifest.jsonl unless out= says otherwise) and print its
    summary: files kept and skipped with reasons, hours, durations, rates, channels, formats, label classes."""
    kv = parse_keys(args, PREPARE_KEYS, defaults=False)  # build_manifest's own defaults (the table shows them)
    from .data.manifest import build_manifest

    source = kv.pop("source")
    out = kv.pop("out", None) or (Path(source) / "manifest.jsonl" if Path(source).is_dir() else None)
    print(build_manifest(source, out=out, **kv))  # str(report) is the summary (ManifestReport.describe)


def cmd_evaluate(args: list[str]) -> None:
    from .evaluation.cli import main as eval_main

    code = eval_main(args) or 0
    if code:
        raise SystemExit(code)


def cmd_distill(args: list[str]) -> None:
    """`audiodiff distill run=R steps=4 [pairs=..] [guidance=..] [run_dir=..] [train.<key>=<value> ...]`."""
    train_args = [a for a in args if a.split("=", 1)[0].startswith("train.")]
    kv = parse_keys([a for a in args if a not in train_args], DISTILL_KEYS)
    train = {}
    for a in train_args:
        key, text = a.split("=", 1)
        train[key[len("train."):]] = parse_keys([f"v={text}"], {"v": ("value", None, "")})["v"]
    cfg = {"task": "distill", "teacher": kv["run"], "student_steps": kv["steps"], "pairs": kv["pairs"],
           "guidance": kv["guidance"], "teacher_steps": kv["teacher_steps"], "pair_seed": kv["pair_seed"],
           "train": train}
    if kv["run_dir"]:
        cfg["run_dir"] = kv["run_dir"]
    from .training import tasks

    print(f"distilled: {tasks.train(cfg)}")


def _serve():
    """`(cmd_serve, HELP)` of audiodiff/serve.py, imported only when `serve` is asked for."""
    try:
        from .serve import HELP, cmd_serve
    except ImportError as e:
        raise AudiodiffError(f"the serve command is not available: cannot import it from audiodiff.serve "
                             f"({_one_line(e)}); reinstall audiodiff (make install)") from None
    return cmd_serve, HELP


def cmd_serve(args: list[str]) -> None:
    _serve()[0](args)


# ---------------------------------------------------------------------- help
def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v)


def _flat(data, prefix=""):
    """`(dotted key, shown value)` of a plain nested dict; empty dicts and lists are shown as values."""
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from _flat(v, key + ".")
        else:
            yield key, "???  (required)" if v == "???" else _fmt(v)


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def help_training(cmd: str, args: list[str]) -> str:
    """--help of train / finetune / config: the composed config's keys and values, and the config groups."""
    from omegaconf import OmegaConf

    what = {"train": "Train a model with the config composed from configs/train.yaml and the settings given.",
            "finetune": "Train starting from a trained run (train.init_from=, required), by default with "
                        "experiment=custom (your own manifest, data.manifest=, required).",
            "config": "Print the config a training command would use, without running it."}[cmd]
    lines = [f"usage: audiodiff {cmd} [experiment=<name>] [group=<option> ...] [key=value ...] [--help] [--debug]",
             "", what, f"Example: {EXAMPLES[cmd]}", ""]
    full = _train_args(cmd, args)
    cfg = compose(full)  # a bad setting is the usual one-line error
    choices = _hydra_compose(full, return_hydra_config=True).hydra.runtime.choices
    groups = config_groups()
    # a group placed at another package is chosen as `group@package` (mel@data.mel: the mel contract of the data)
    named = {g: [c for c in choices if c == g or c.startswith(g + "@")] for g in groups}
    task = cfg.get("task") or "diffusion"
    width = max(len(c) for g in groups for c in (named[g] or [f"+{g}@{GROUP_PLACES.get(g, {}).get(task, '')}"])) + 2
    lines += ["Config groups (choose one option with group=option; now: the option in use):"]
    for g, opts in groups.items():
        for c in named[g]:
            lines.append(f"  {(c + '=').ljust(width)}  now: {choices[c] or 'none'};  options: {', '.join(opts)}")
        if not named[g]:  # a group the defaults list does not name (e.g. vocoder): appended with +group=option
            add = f"+{g}@{GROUP_PLACES[g][task]}" if task in GROUP_PLACES.get(g, {}) else f"+{g}"
            lines.append(f"  {(add + '=').ljust(width)}  not chosen (add one with {add}=...);  "
                         f"options: {', '.join(opts)}")
    lines += [""]
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # e.g. an ${oc.env:...} that is not set here: show the expression
        data = OmegaConf.to_container(cfg, resolve=False)
    shown = " ".join(full) or "the defaults"
    lines += [f"Settings of this config ({shown}); override any with key=value:"]
    rows = list(_flat(data))
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k.ljust(width)}  = {v}" for k, v in rows]
    return "\n".join(lines)


def help_keys(cmd: str) -> str:
    """--help of generate / prepare: the key table the argument check uses."""
    keys = {"generate": GENERATE_KEYS, "prepare": PREPARE_KEYS, "distill": DISTILL_KEYS}[cmd]
    what = {"generate": "Generate clips from a trained run; writes one WAV per clip and generated.jsonl into out.",
            "prepare": "Build a JSONL manifest from a folder of audio, a CSV or a JSONL, listing skipped files.",
            "distill": "Distil a few-step student from a trained run (rectified-flow reflow on guided teacher "
                       "pairs, training/distill.py); train.<key>=<value> sets its training (train --help lists "
                       "them)."}[cmd]
    req = " ".join(f"{k}=<...>" for k, (_, d, _) in keys.items() if d is REQUIRED)
    rows = [("key", "default", "meaning")]
    rows += [(k, "(required)" if d is REQUIRED else _fmt(d), m) for k, (_, d, m) in keys.items()]
    return "\n".join([f"usage: audiodiff {cmd} {req} [key=value ...] [--help] [--debug]", "", what,
                      f"Example: {EXAMPLES[cmd]}", "", _table(rows)])


def command_help(cmd: str, args: list[str]) -> str:
    if cmd in ("train", "finetune", "config"):
        return help_training(cmd, [a for a in args if a not in HELP_FLAGS])
    if cmd in ("generate", "prepare", "distill"):
        return help_keys(cmd)
    if cmd == "evaluate":
        from .evaluation.cli import HELP

        return HELP
    return _serve()[1]


# ---------------------------------------------------------------------- main
def _check_options(cmd: str, args: list[str]) -> None:
    bad = [a for a in args if a.startswith("-") and a not in HELP_FLAGS]
    if bad:
        raise UsageError(f"unknown option {bad[0]!r}; options: --help (-h), --debug; settings are key=value "
                         f"(see audiodiff {cmd} --help)")


def _describe(e: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception that reached the command line."""
    if isinstance(e, AudiodiffError):
        return e.exit_code, _one_line(e)
    mod = type(e).__module__ or ""
    if mod.startswith("omegaconf"):
        key = getattr(e, "full_key", None)
        if type(e).__name__ == "MissingMandatoryValue" and key:
            return 2, f"missing required setting {key}; give {MISSING_HINTS.get(key, f'{key}=<value>')}"
        msg = _one_line(str(e).split("full_key:")[0])
        return 2, f"bad setting{f' {key}' if key else ''}: {msg}"
    if mod.startswith("hydra"):
        return 2, _one_line(e)
    if isinstance(e, OSError):
        return 1, _one_line(e)
    return 1, (f"unexpected {type(e).__name__}: {_one_line(e)} (run again with --debug or AUDIODIFF_DEBUG=1 to "
               "see the traceback, and please report it)")


def _quiet_stdout() -> None:
    """After a broken pipe (`audiodiff --help | head`): point stdout at /dev/null so the exit flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _run(cmd: str | None, rest: list[str]) -> None:
    if cmd in ("--version", "-V", "version"):
        from . import __version__

        print(f"audiodiff {__version__}")
        return
    if cmd is None or cmd in HELP_FLAGS or cmd == "help":
        if cmd == "help" and rest and rest[0] in COMMANDS:
            print(command_help(rest[0], rest[1:]))
        else:
            print(__doc__.strip())
        return
    if cmd not in COMMANDS:
        raise UsageError(f"unknown command {cmd!r}; allowed: {', '.join(COMMANDS)}")
    if any(a in HELP_FLAGS for a in rest):
        print(command_help(cmd, rest))
        return
    if cmd != "serve":
        _check_options(cmd, rest)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    {"train": cmd_train, "finetune": cmd_finetune, "generate": cmd_generate, "prepare": cmd_prepare,
     "evaluate": cmd_evaluate, "config": cmd_config, "serve": cmd_serve, "distill": cmd_distill}[cmd](rest)


def main(argv: list[str] | None = None) -> None:
    """Run `audiodiff <command> ...`; errors become one line on stderr and the exit code (2 usage, 1 failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("AUDIODIFF_DEBUG", "").strip().lower() in ("1", "true", "yes")
    argv = [a for a in argv if a != DEBUG_FLAG]
    cmd = argv[0] if argv else None
    prog = f"audiodiff {cmd}" if cmd in COMMANDS else "audiodiff"
    try:
        _run(cmd, argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        raise SystemExit(141) from None
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit as e:
        if isinstance(e.code, str):  # a library's own SystemExit("message")
            print(f"{prog}: error: {_one_line(e.code)}", file=sys.stderr)
            raise SystemExit(1) from None
        raise
    except Exception as e:
        if debug:
            raise
        code, msg = _describe(e)
        if cmd and msg.startswith(f"{cmd}: "):  # a message that already names the command
            msg = msg[len(cmd) + 2:]
        print(f"{prog}: error: {msg}", file=sys.stderr)
        raise SystemExit(code) from None


if __name__ == "__main__":
    main()
