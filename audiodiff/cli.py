"""Command line: `audiodiff <command> key=value ...` (also `python -m audiodiff ...`).

Commands:
  train      Hydra-composed training:  audiodiff train experiment=tones train.steps=500
  finetune   same, from a trained run: audiodiff finetune experiment=custom data.manifest=... train.init_from=runs/x
  generate   WAVs from a run:          audiodiff generate run=runs/tones n=4 labels=[60,64] out=samples/x seed=0
  prepare    a manifest from a folder: audiodiff prepare source=my_wavs/ out=my_wavs/manifest.jsonl
  evaluate   judges and reports:       audiodiff evaluate generated=samples/x real=... (see evaluation/cli.py)
  config     print the composed config of a training command without running it
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

COMMANDS = ("train", "finetune", "generate", "prepare", "evaluate", "config")


def config_dir() -> Path:
    """The Hydra config folder: $AUDIODIFF_CONFIGS or the repository's `configs/`."""
    env = os.environ.get("AUDIODIFF_CONFIGS")
    d = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not (d / "train.yaml").exists():
        raise SystemExit(f"audiodiff: config folder {d} has no train.yaml; set AUDIODIFF_CONFIGS to your configs/")
    return d


def compose(overrides: list[str]):
    """Compose `configs/train.yaml` with Hydra overrides (`experiment=tones`, `train.steps=10`, ...)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return hydra_compose(config_name="train", overrides=list(overrides))


def _kv(args: list[str]) -> dict:
    from omegaconf import OmegaConf

    bad = [a for a in args if "=" not in a]
    if bad:
        raise SystemExit(f"audiodiff: arguments must be key=value; got {bad}")
    return OmegaConf.to_container(OmegaConf.from_dotlist(args), resolve=True)


def _vocoder_experiment(args: list[str]):
    """A `task: vocoder` experiment is a complete config of its own (not composed onto the diffusion defaults)."""
    from omegaconf import OmegaConf

    exp = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), None)
    if exp is None:
        return None
    path = config_dir() / "experiment" / f"{exp}.yaml"
    if not path.exists():
        return None
    if OmegaConf.load(path).get("task") != "vocoder":
        return None
    from .vocoders.train import load_config

    return load_config(path, [a for a in args if not a.startswith("experiment=")])


def cmd_train(args: list[str]) -> None:
    from omegaconf import OmegaConf

    voc = _vocoder_experiment(args)
    if voc is not None:
        from .vocoders.train import train_vocoder

        train_vocoder(OmegaConf.to_container(voc, resolve=True))
        return
    cfg = compose(args)
    from .training.loop import train

    run = train(cfg)
    print(f"trained: {run}")


def cmd_finetune(args: list[str]) -> None:
    if not any(a.startswith(("experiment=", "+experiment=")) for a in args):
        args = ["experiment=custom", *args]
    cmd_train(args)


def cmd_config(args: list[str]) -> None:
    from omegaconf import OmegaConf

    cfg = _vocoder_experiment(args)
    print(OmegaConf.to_yaml(cfg if cfg is not None else compose(args), resolve=True))


def cmd_generate(args: list[str]) -> None:
    from .pipeline import Pipeline

    kv = _kv(args)
    allowed = {"run", "n", "seconds", "steps", "sampler", "labels", "guidance", "seed", "batch_size", "out", "plot",
               "device", "vocoder", "use_ema", "pitch"}
    unknown = sorted(set(kv) - allowed)
    if unknown or "run" not in kv:
        raise SystemExit(f"audiodiff generate: need run=<dir>; unknown keys {unknown}; allowed: {sorted(allowed)}")
    pipe = Pipeline.from_pretrained(kv["run"], device=kv.get("device"), use_ema=kv.get("use_ema", True),
                                    vocoder=kv.get("vocoder"))
    out = pipe.generate(n=int(kv.get("n", 1)), seconds=kv.get("seconds"), steps=kv.get("steps"),
                        sampler=kv.get("sampler"), labels=kv.get("labels"), guidance=kv.get("guidance"),
                        seed=kv.get("seed", 0), batch_size=kv.get("batch_size"), pitch=kv.get("pitch"))
    folder = Path(kv.get("out", "samples/generated"))
    paths = out.save(folder, plot=bool(kv.get("plot", False)))
    print(f"wrote {len(paths)} files to {folder} ({out.sample_rate} Hz)")


def cmd_prepare(args: list[str]) -> None:
    from .data.manifest import build_manifest

    kv = _kv(args)
    if "source" not in kv:
        raise SystemExit("audiodiff prepare: need source=<folder | file.csv | file.jsonl> [out=manifest.jsonl] "
                         "[min_duration=0.05] [label_from=<regex with named groups>]")
    source = kv.pop("source")
    out = kv.pop("out", None) or (Path(source) / "manifest.jsonl" if Path(source).is_dir() else None)
    result = build_manifest(source, out=out, **kv)
    print(result if not isinstance(result, tuple) else result[-1])


def cmd_evaluate(args: list[str]) -> None:
    from .evaluation.cli import main as eval_main

    sys.exit(eval_main(args) or 0)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        raise SystemExit(f"audiodiff: unknown command {cmd!r}; allowed: {', '.join(COMMANDS)}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    {"train": cmd_train, "finetune": cmd_finetune, "generate": cmd_generate, "prepare": cmd_prepare,
     "evaluate": cmd_evaluate, "config": cmd_config}[cmd](rest)


if __name__ == "__main__":
    main()
