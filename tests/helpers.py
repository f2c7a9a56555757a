"""Small configs shared by the training, pipeline and CLI tests (tiny networks, built-in data)."""
import copy

TINY_UNET1D = {"name": "unet1d", "patch": 4, "channels": [16, 32], "factors": [1, 2], "blocks": [1, 1],
               "attention": [False, True], "head_dim": 16, "pitch": True}
TINY_UNET2D = {"name": "unet2d", "channels": [16, 32], "factors": [1, 2], "blocks": [1, 1],
               "attention": [False, False], "head_dim": 16}


def tiny_cfg(run_dir, steps=4, **train):
    return copy.deepcopy({
        "run_dir": str(run_dir),
        "model": TINY_UNET1D,
        "objective": {"parameterization": "edm", "cond_drop_prob": 0.2},
        "data": {"kind": "synth", "sample_rate": 8000, "segment_seconds": 0.125, "conditions": {"pitch": "pitch"},
                 "synth": {"n": 64, "pitches": list(range(60, 73)), "timbres": ["sine"], "velocity": 0.8}},
        "train": {"steps": steps, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "ckpt_every": 2, "log_every": 1,
                  "progress": False, "num_workers": 0, **train},
    })


def tiny_mel_cfg(run_dir, steps=2):
    cfg = tiny_cfg(run_dir, steps)
    cfg["model"] = dict(TINY_UNET2D)
    cfg["objective"] = {"parameterization": "v", "cond_drop_prob": 0.0}
    cfg["data"] = {"kind": "synth", "sample_rate": 8000, "segment_seconds": 0.25, "conditions": {},
                   "representation": "mel",
                   "mel": {"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 32, "f_max": 4000.0},
                   "synth": {"n": 32, "pitches": [60, 64], "timbres": ["sine"], "velocity": 0.8}}
    cfg["vocoder"] = {"name": "griffinlim", "n_iter": 4}
    return cfg


VOCODER_MEL = {"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 32}
SMALL_DISC = {"periods": [2, 3], "mpd_channels": [4, 8], "resolutions": [[256, 64, 256]], "mrd_channels": 4}


def tiny_vocoder_cfg(shared_data, run_dir, **train):
    """A tiny GAN vocoder run on 6 FSDD clips: checkpoint every 2 steps, a metrics row every step."""
    return copy.deepcopy({
        "task": "vocoder", "run_dir": str(run_dir),
        "data": {"manifest": str(shared_data / "fsdd" / "manifest.jsonl"), "max_items": 6, "valid_fraction": 0.34,
                 "segment_frames": 16, "batch_size": 2, "valid_items": 1, "valid_seconds": 0.3},
        "mel": VOCODER_MEL,
        "vocoder": {"name": "neural", "dim": 16, "num_layers": 1},
        "train": {"steps": 2, "device": "cpu", "ckpt_every": 2, "log_every": 1, "progress": False,
                  "mrstft_resolutions": [[128, 32, 128], [256, 64, 256]], "discriminator": SMALL_DISC, **train},
    })
