"""The one config system: the Hydra tree under `configs/`, composed for every trainer, and its section defaults.

`compose(overrides)` composes `configs/train.yaml` (the primary config) with Hydra overrides. Its defaults list
picks a task: `task/diffusion.yaml` (the model, objective, schedule, sampler, data and train groups) unless an
experiment says `- override /task: vocoder` (`task/vocoder.yaml`: its data section, the train/vocoder and vocoder
options); mel contracts live once each in `configs/mel/` and are referenced from defaults lists
(`- /mel@data.mel: fsdd`, `- /mel@mel: ljspeech`). `audiodiff train|finetune|config` (cli.py) and
`python -m audiodiff.training.vocoder FILE` both compose through here.

`section_defaults(task, section)` is what a Python caller of `audiodiff.train(cfg)` / `train_vocoder(cfg)` gets
for a section the dict lacks: the file the task's defaults list picks (`train/default.yaml`, ...), read with
OmegaConf only (no Hydra state is touched, so a caller inside its own Hydra app is unaffected). The defaults are
written in those YAML files and nowhere else.

Base layer: imports only `errors` from the package.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UsageError

PRIMARY = "train"  # configs/train.yaml
# `sampler.options.<name>=v` on the command line adds a key to an open mapping (the YAML has `options: {}`, the
# method's own defaults apply to every option not given): compose passes it to Hydra as `++sampler.options.<name>=v`
# so it needs no `+`; the trainer checks the names against the method (samplers.check_options).
OPEN_SECTIONS = ("sampler.options",)


class ConfigError(UsageError):
    """The config folder or one of its files cannot be used as it is (the message names the file)."""


def folder_name(key: str, *, _root_=None) -> str:
    """`${folder_name:data.manifest}`: a run name from the path at `key` (a manifest's folder, a run's folder).

    `my_wavs/manifest.jsonl` -> `my_wavs`, `data/new_50.jsonl` -> `new_50`, `runs/fsdd_mel` -> `fsdd_mel`,
    `runs/x/checkpoints/000001000` -> `x`; a path not given yet (`???`) -> `<data>` / `<base>` (what `--help`
    shows; training refuses to start without it). Used by the experiments for
    your own data (configs/experiment/own.yaml, custom.yaml), so two projects do not share one default run_dir.
    """
    from omegaconf import OmegaConf

    value = OmegaConf.select(_root_, key, throw_on_missing=False, default=None) if _root_ is not None else None
    if value is None or str(value) in ("", "???"):
        return "<base>" if key.endswith("init_from") else "<data>"
    p = Path(str(value).rstrip("/"))
    if p.parent.name == "checkpoints" and p.name.isdigit():
        p = p.parent.parent
    if p.suffix.lower() in (".jsonl", ".json", ".csv"):
        p = p.parent if p.stem == "manifest" else p.with_suffix("")
    name = re.sub(r"[^\w.-]+", "_", p.name).strip("._") or "custom"
    return name


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("folder_name"):
        OmegaConf.register_new_resolver("folder_name", folder_name)


def config_dir() -> Path:
    """The Hydra config folder: $AUDIODIFF_CONFIGS or the repository's `configs/`."""
    env = os.environ.get("AUDIODIFF_CONFIGS")
    d = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not (d / f"{PRIMARY}.yaml").exists():
        raise ConfigError(f"config folder {d} has no {PRIMARY}.yaml; set AUDIODIFF_CONFIGS to your configs/ folder")
    return d


def _one_line(msg) -> str:
    """A message on one line: its non-empty lines joined with spaces."""
    return " ".join(line.strip() for line in str(msg).splitlines() if line.strip())


# ---------------------------------------------------------------------- section defaults (no Hydra)
def _load(path: Path) -> dict:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    except Exception as e:  # a YAML syntax error: name the file
        raise ConfigError(f"{path}: cannot be read ({_one_line(e)})") from None


def _choice(defaults: list, group: str):
    """The option a defaults list picks for `group` (`- /train: default` or `- train: default`), or None."""
    for entry in defaults or []:
        if isinstance(entry, dict) and len(entry) == 1:
            (key, value), = entry.items()
            if key.lstrip("/") == group:
                return value
    return None


def group_file(group: str, option: str) -> dict:
    """`configs/<group>/<option>.yaml` as a plain dict, with its own same-group defaults (`- default`) merged under it.

    Interpolations are kept as written; `???` stays the string "???" (a value the caller must give).
    """
    path = config_dir() / group / f"{option}.yaml"
    if not path.is_file():
        raise ConfigError(f"there is no {path}")
    data = _load(path)
    defaults = data.pop("defaults", None) or []
    merged: dict = {}
    for entry in defaults:
        if entry == "_self_":
            continue
        if not isinstance(entry, str):
            raise ConfigError(f"{path}: section_defaults reads only same-group entries (- <option>) in its defaults "
                              f"list; got {entry!r}")
        merged = _deep_merge(merged, group_file(group, entry))
    return _deep_merge(merged, data)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def section_defaults(task: str, section: str) -> dict:
    """The defaults of `section` for `task` ("diffusion" | "vocoder"): the option `configs/task/<task>.yaml` picks.

    `section_defaults("diffusion", "train")` is `configs/train/default.yaml` (the option it picks), `("vocoder",
    "data")` the `data` section written in `configs/task/vocoder.yaml`: what `audiodiff train` composes, read
    without Hydra.
    """
    path = config_dir() / "task" / f"{task}.yaml"
    if not path.is_file():
        raise ConfigError(f"there is no {path} (the defaults of task {task!r})")
    raw = _load(path)
    option = _choice(raw.get("defaults"), section)
    if option is not None:
        return group_file(section, option)
    if isinstance(raw.get(section), dict):  # written in the task file itself (the vocoder's data section)
        return dict(raw[section])
    raise ConfigError(f"{path}: picks no {section} option (- /{section}: <option>) and has no {section} section")


# ---------------------------------------------------------------------- composing (Hydra)
def _hydra_compose(overrides: list[str], return_hydra_config: bool = False):
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    _register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return hydra_compose(config_name=PRIMARY, overrides=list(overrides), return_hydra_config=return_hydra_config)


def _override_key(arg: str) -> str:
    """`+train.x=1` -> `train.x`."""
    return arg.split("=", 1)[0].lstrip("+~").strip()


def _open_keys(overrides: list[str]) -> list[str]:
    """`sampler.options.eta=0.5` -> `++sampler.options.eta=0.5`, and `sampler.options={eta:0.5}` likewise (merged
    into the mapping, as Hydra merges a dict override): the keys of an open mapping, see OPEN_SECTIONS."""
    out = []
    for a in overrides:
        key = a.split("=", 1)[0].strip()
        if "=" in a and key[:1] not in "+~" and any(key == s or key.startswith(s + ".") for s in OPEN_SECTIONS):
            a = "++" + a
        out.append(a)
    return out


def _check_overrides(overrides: list[str]) -> None:
    """Each override parses on its own (so an error names the argument at fault)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for a in overrides:
        try:
            parser.parse_override(a)
        except HydraException as e:  # parse_override raises the base class, parse_overrides a subclass
            first = _one_line(str(e).split("See https://")[0])
            raise UsageError(f"cannot parse the setting {a!r} ({first}); write key=value, and quote a list or "
                             "dict value for the shell as a whole argument, e.g. 'train.lora={rank:8,alpha:16}' "
                             "or model.channels=[32,64,64]") from None


def config_groups() -> dict[str, list[str]]:
    """The config groups under configs/ and their options (`{"model": ["unet1d_base", ...], ...}`)."""
    d = config_dir()
    return {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in sorted(d.iterdir())
            if g.is_dir() and any(g.glob("*.yaml"))}


def _unknown_override(key: str, others: list[str], value: str | None = None) -> str:
    """Explain an override Hydra could not apply: name the section and list its keys.

    A whole section given as a dict (`data.mel={n_mels:64}`) where the config has none is most often meant as an
    addition, so the message then says how to add it (`+data.mel=...`); for a plain value it does not, since an
    unknown plain key is most often a typo.
    """
    from omegaconf import DictConfig

    try:
        base = _hydra_compose(others)
    except Exception:
        return f"unknown setting {key!r} (allowed: the keys `audiodiff config` prints)"
    parts = key.split(".")
    node, depth = base, 0
    while depth < len(parts) - 1 and parts[depth] in node and isinstance(node[parts[depth]], DictConfig):
        node, depth = node[parts[depth]], depth + 1
    here = ".".join(parts[:depth + 1])
    if depth < len(parts) - 1 and parts[depth] in node:  # a value (or null) where a section was expected
        rest = ".".join(parts[depth + 1:])
        if node[parts[depth]] is None:
            return f"cannot set {key!r}: {here} is null in this config; set it as a whole, e.g. '{here}={{{rest}:...}}'"
        return f"cannot set {key!r}: {here} is a value, not a section"
    section = ".".join(parts[:depth]) or "the top level"
    hint = ""
    if value is not None and value.strip().startswith("{") and depth == len(parts) - 1:
        hint = f" (to add it as a new section write +{key}={value.strip()})"
    return (f"unknown setting {key!r}: {section} has no key {parts[depth]!r}; allowed: "
            f"{', '.join(str(k) for k in node.keys())}{hint}")


def _declared_missing(overrides: list[str]) -> list[str]:
    """Dotted keys the chosen experiment file marks `???` (required).

    OmegaConf's merge keeps an earlier value when the later one is `???`, so `init_from: ???` in an experiment
    would silently stay `null` from `train/default.yaml`; `compose` puts the requirement back.
    """
    from omegaconf import DictConfig, OmegaConf

    exp = None
    for a in overrides:
        if _override_key(a) == "experiment" and "=" in a and not a.startswith("~"):
            exp = a.split("=", 1)[1].strip()
    if not exp or exp == "null":
        return []
    path = config_dir() / "experiment" / f"{exp}.yaml"
    if not path.is_file() or "@package _global_" not in path.read_text().split("\n", 1)[0]:
        return []
    raw = OmegaConf.load(path)

    def walk(node, prefix):
        for k in node.keys():
            if prefix == "" and k == "defaults":
                continue
            key = f"{prefix}{k}"
            if OmegaConf.is_missing(node, k):
                yield key
            elif isinstance(node[k], DictConfig):
                yield from walk(node[k], key + ".")

    return list(walk(raw, ""))


def compose(overrides: list[str]):
    """Compose `configs/train.yaml` with Hydra overrides (`experiment=tones`, `train.steps=10`, ...).

    Every experiment composes here, vocoders included (their `task` is `vocoder`). Raises UsageError (one line) for
    an override that does not parse, an unknown key or a missing config option. A value the experiment marks `???`
    stays missing unless an override sets it. A diffusion run's `vocoder` settings are applied by compose itself
    (`_apply_vocoder`: `vocoder.init=pghi`, `vocoder.path=DIR`, `vocoder={...}`, `vocoder=null`).
    """
    from omegaconf import OmegaConf, open_dict

    overrides = list(overrides)
    _check_overrides(overrides)
    rest, vocoder_ops = _vocoder_overrides(overrides)
    cfg = _compose_checked(rest)
    if vocoder_ops:
        if cfg.get("task") == "diffusion":
            _apply_vocoder(cfg, vocoder_ops)
        else:  # a vocoder experiment: `vocoder` is the group of the network it trains (vocoder=neural_small)
            cfg = _compose_checked(overrides)
    given = [_override_key(a) for a in overrides]
    for key in _declared_missing(overrides):
        if not any(key == g or key.startswith(g + ".") for g in given):
            with open_dict(cfg):
                OmegaConf.update(cfg, key, "???", merge=False)
    return cfg


def _compose_checked(overrides: list[str]):
    """Hydra's compose, its errors as one UsageError line naming the setting at fault."""
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException

    hydra_overrides = _open_keys(overrides)
    try:
        return _hydra_compose(hydra_overrides)
    except MissingConfigException as e:
        m = re.search(r"Could not find '([^']+)'", str(e))
        what = m.group(1) if m else None
        if what and "/" in what and e.options:
            group, opt = what.rsplit("/", 1)
            raise UsageError(f"{group}={opt}: there is no configs/{what}.yaml; allowed {group} values: "
                             f"{', '.join(e.options)}") from None
        raise UsageError(_one_line(str(e).split("Config search path")[0])) from None
    except ConfigCompositionException as e:
        m = re.match(r"Could not override '([^']+)'", str(e))
        if m and "No match in the defaults list" in str(e):
            key = m.group(1)
            opts = config_groups().get(key, [])
            raise UsageError(f"{key} is a config group that this config does not choose; add one with +{key}=<option> "
                             f"(options: {', '.join(opts)}) or set values with {key}.<key>=...") from None
        if m:
            key = m.group(1)
            others = [a for a in hydra_overrides if _override_key(a) != key]
            given = [a.split("=", 1)[1] for a in hydra_overrides if _override_key(a) == key and "=" in a]
            raise UsageError(_unknown_override(key, others, given[0] if given else None)) from None
        raise UsageError(_one_line(e)) from None
    except HydraException as e:
        raise UsageError(_one_line(e)) from None


def _vocoder_overrides(overrides: list[str]) -> tuple[list[str], list[tuple[str, object, bool]]]:
    """Split off the overrides of `vocoder` and its keys: `(the others, [(key, value, delete), ...])`.

    A diffusion run's `vocoder` is a plain mapping whose keys depend on its kind (the settings of
    `configs/vocoder/<name>.yaml`, or `{path: <a trained vocoder>}`), written by the experiments as a value. Hydra
    would read `vocoder=...` as a choice in the vocoder config group and refuse any key the experiment did not
    write (`vocoder.init=pghi` where it wrote only the name), so compose applies these itself (_apply_vocoder).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    rest, ops = [], []
    for a in overrides:
        key = _override_key(a)
        if key != "vocoder" and not key.startswith("vocoder."):
            rest.append(a)
            continue
        o = parser.parse_override(a)
        ops.append((key, None if o.is_delete() else o.value(), o.is_delete()))
    return rest, ops


def _apply_vocoder(cfg, ops: list[tuple[str, object, bool]]) -> None:
    """Apply the `vocoder` overrides to a composed diffusion config, then check the result's keys.

    `vocoder=null` / `~vocoder`: none (Griffin-Lim with its defaults at generation); `vocoder=griffinlim`: that
    file's settings; `vocoder={...}`: exactly that mapping; `vocoder.KEY=VALUE`: one setting, added or changed
    (`vocoder.path=DIR` makes it the trained vocoder in DIR, with no other key).
    """
    from omegaconf import OmegaConf, open_dict

    cur = OmegaConf.to_container(cfg.vocoder, resolve=True) if cfg.get("vocoder") is not None else None
    options = config_groups().get("vocoder", [])
    for key, value, delete in ops:
        sub = key[len("vocoder."):] if key != "vocoder" else None
        if sub is None:
            if delete or value is None:
                cur = None
            elif isinstance(value, str):
                if value not in options:
                    raise UsageError(f"vocoder={value}: there is no configs/vocoder/{value}.yaml; allowed: null, "
                                     f"{', '.join(options)}, a mapping {{name: ..., ...}} or vocoder.path=DIR")
                cur = group_file("vocoder", value)
            elif isinstance(value, dict):
                cur = dict(value)
            else:
                raise UsageError(f"vocoder={value!r}: allowed: null, {', '.join(options)}, a mapping "
                                 "{name: ..., ...} or vocoder.path=DIR")
        elif "." in sub:
            raise UsageError(f"cannot set {key!r}: the vocoder's settings are one level deep (vocoder.KEY=VALUE)")
        elif delete:
            if cur is None or sub not in cur:
                raise UsageError(f"cannot remove {key!r}: the vocoder has no key {sub!r}")
            cur.pop(sub)
        elif sub == "path":
            cur = {"path": value}
        else:
            if cur is not None and "path" in cur:
                raise UsageError(f"cannot set {key!r}: the vocoder is the trained one at {cur['path']} (its settings "
                                 "are its own); to use another, set vocoder.path=DIR or vocoder={name: ..., ...}")
            cur = {**(cur or {"name": "griffinlim"}), sub: value}
    _check_vocoder(cur, options)
    with open_dict(cfg):
        cfg.vocoder = cur


def _check_vocoder(voc: dict | None, options: list[str]) -> None:
    """A diffusion run's vocoder: null, `{path: DIR}`, or a `name` with keys from its configs/vocoder file."""
    if voc is None:
        return
    if "path" in voc:
        if set(voc) != {"path"}:
            raise UsageError(f"vocoder: a trained vocoder is {{path: DIR}} alone; got the keys {sorted(voc)}")
        return
    files = {o: group_file("vocoder", o) for o in options}
    names = sorted({f.get("name") for f in files.values() if f.get("name")})
    if voc.get("name") not in names:
        raise UsageError(f"vocoder.name={voc.get('name')}: allowed: {', '.join(names)} (or vocoder.path=DIR for a "
                         "trained one)")
    allowed = sorted({k for f in files.values() if f.get("name") == voc["name"] for k in f})
    unknown = sorted(set(voc) - set(allowed))
    if unknown:
        raise UsageError(f"unknown setting 'vocoder.{unknown[0]}': a {voc['name']} vocoder has no key {unknown[0]!r}; "
                         f"allowed: {', '.join(allowed)}")


def experiment_name(path) -> str | None:
    """`configs/experiment/<name>.yaml` (of the config folder in use) -> `<name>`; another path -> None."""
    p = Path(path)
    try:
        folder = (config_dir() / "experiment").resolve()
    except ConfigError:
        return None
    if p.suffix in (".yaml", ".yml") and p.resolve().parent == folder:
        return p.stem
    return None


__all__ = ["ConfigError", "compose", "config_dir", "config_groups", "section_defaults", "group_file",
           "experiment_name"]
