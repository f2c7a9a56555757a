"""Benchmark the denoiser networks: bf16 training step and one sampling forward per preset, peers side by side.

Method as in ../shared/device/peers_gpu.py (same timing loop, same FLOP counter, same audio accounting):
a training step is zero_grad + forward under bf16 autocast + backward + AdamW; a sampling call is one
network forward under no_grad + bf16 autocast. Reported: audio seconds per second, achieved TFLOP/s
(torch.utils.flop_counter.FlopCounterMode over forward + backward), peak memory (GPU only), whether the
bf16 loss and every gradient were finite, and ratios against the peers measured in the same run:
audio-diffusion-pytorch UNetV0 (README config) for unet1d, diffusers UNet2DModel (audio-diffusion 256x256
config) for unet2d, when those packages import. It also counts, on the meta device (no compute, any
machine), the FLOPs of one training step at the GPU target shapes, for ours and the peers.

Usage (from the repository root):
    PYTHONPATH=. python benchmarks/networks.py --out bench_networks.json            # GPU: B=16 x 65,536 / 256x256
    PYTHONPATH=. python benchmarks/networks.py --tiny --out /tmp/net_cpu.json       # CPU proof of run
Peers: put audio_diffusion_pytorch, a_unet and diffusers on PYTHONPATH (see ../shared/device/fetch-wheels.sh).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audiodiff import models  # noqa: E402

SR = 22050                 # audio accounting as in peers_gpu.py
MEL_HOP = 512              # a 256-frame mel at hop 512 holds 256 * 512 samples (~5.9 s at 22.05 kHz)
PRESETS = ["unet1d_small", "unet1d_base", "unet1d_large", "unet2d_small", "unet2d_base", "unet2d_large"]
TARGET = dict(batch=16, length=65536, mel=(256, 256))  # the GPU target shapes


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev, warmup, iters):
    """Mean seconds per call after warm-up (peers_gpu.gpu_time)."""
    for _ in range(warmup):
        fn()
    sync(dev)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(dev)
    return (time.perf_counter() - t) / iters


def flops_of(fn):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def matmul_ceiling(dev) -> float | None:
    """Measured bf16 matrix rate of this GPU in TFLOP/s (8192^3 products; METHOD: measure the ceiling, not the datasheet)."""
    if dev.type != "cuda":
        return None
    a, b = (torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16) for _ in range(2))
    dt = timed(lambda: a @ b, dev, 3, 20)
    return sig(2 * 8192 ** 3 / dt / 1e12)


def peak_gb(dev):
    return round(torch.cuda.max_memory_allocated() / 1e9, 2) if dev.type == "cuda" else None


def reset_peak(dev):
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def sig(v, digits=3):
    """Round to significant digits (CPU rates are tiny, GPU rates large: both stay readable)."""
    return float(f"{v:.{digits}g}")


def nparams(m):
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------ ours
def our_inputs(name, batch, length, mel, dev):
    shape = (batch, 1, length) if name.startswith("unet1d") else (batch, 1, *mel)
    audio = batch * (length if name.startswith("unet1d") else mel[1] * MEL_HOP)
    return shape, audio


def our_loss(net, x0):
    """x0-prediction MSE at log-normal noise levels with EDM input scaling (the work of one Denoiser.loss call)."""
    B = x0.shape[0]
    sigma = (torch.randn(B, device=x0.device) * 1.2 - 1.2).exp()
    view = (B,) + (1,) * (x0.ndim - 1)
    x = (x0 + sigma.view(view) * torch.randn_like(x0)) * (sigma ** 2 + 0.25).rsqrt().view(view)
    return (net(x, sigma.log() / 4).float() - x0).pow(2).mean()


def bench_train(label, model, loss_fn, audio_samples, dev, args, params):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = loss_fn()
        loss.backward()
        opt.step()
        return loss

    reset_peak(dev)
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev.type, dtype=torch.bfloat16):
        loss = loss_fn()
    loss.backward()
    finite = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p.grad).all()) for p in model.parameters()
                                                if p.grad is not None)
    fl = flops_of(lambda: loss_fn().backward())
    opt.zero_grad(set_to_none=True)
    for _ in range(args.warmup):
        step()
    sync(dev)
    mem_first = peak_gb(dev)        # as peers_gpu.py reports it: includes cuDNN's algorithm search
    reset_peak(dev)
    dt = timed(step, dev, 0, args.iters)
    r = dict(net=label, what="train_step", params_M=round(params / 1e6, 2), step_s=sig(dt, 4),
             audio_s_per_s=sig(audio_samples / SR / dt), tflops=sig(fl / dt / 1e12),
             tflop_per_step=sig(fl / 1e12), mem_GB=peak_gb(dev), mem_GB_incl_warmup=mem_first, finite=finite)
    del opt
    return r


def bench_sample(label, fn, audio_samples, nfe, dev, args):
    reset_peak(dev)
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16):
        dt = timed(fn, dev, 1, args.sample_iters)
    return dict(net=label, what="sample", nfe=nfe, ms_per_nfe=sig(1000 * dt / nfe, 4),
                x_realtime=sig(audio_samples / SR / dt * nfe), mem_GB=peak_gb(dev))


def run_ours(name, args, dev):
    shape, audio = our_inputs(name, args.batch, args.length, args.mel, dev)
    cfg = {**models.load_preset(name), "checkpointing": args.checkpointing}
    net = models.build(cfg).to(dev)
    params = nparams(net)
    model = torch.compile(net) if args.compile else net
    x0 = torch.randn(*shape, device=dev) * 0.5
    label = name + (" +compile" if args.compile else "") + (" +ckpt" if args.checkpointing else "")
    out = [bench_train(label, model, lambda: our_loss(model, x0), audio, dev, args, params)]
    c = torch.zeros(shape[0], device=dev)
    model.eval()
    out.append(bench_sample(label, lambda: model(x0, c), audio, 1, dev, args))
    del net, model
    return out


# ----------------------------------------------------------------------------------------- peers
def build_adp():
    from audio_diffusion_pytorch import DiffusionModel, UNetV0, VDiffusion, VSampler
    return DiffusionModel(net_t=UNetV0, in_channels=1,
                          channels=[8, 32, 64, 128, 256, 512, 512, 1024, 1024],
                          factors=[1, 4, 4, 4, 2, 2, 2, 2, 2], items=[1, 2, 2, 2, 2, 2, 2, 4, 4],
                          attentions=[0, 0, 0, 0, 0, 1, 1, 1, 1], attention_heads=8, attention_features=64,
                          diffusion_t=VDiffusion, sampler_t=VSampler)


def build_diffusers():
    from diffusers import UNet2DModel
    return UNet2DModel(sample_size=256, in_channels=1, out_channels=1,
                       block_out_channels=(128, 128, 256, 256, 512, 512),
                       down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4)


def run_adp(args, dev):
    label = "audio-diffusion-pytorch UNetV0 (README config)"
    model = build_adp().to(dev)
    B, L = args.batch, args.length
    x = torch.randn(B, 1, L, device=dev)
    out = [bench_train(label, model, lambda: model(x), B * L, dev, args, nparams(model))]
    noise = torch.randn(B, 1, L, device=dev)
    out.append(bench_sample(label, lambda: model.sample(noise, num_steps=args.nfe), B * L, args.nfe, dev, args))
    return out


def run_diffusers(args, dev):
    from diffusers import DDIMScheduler
    label = "diffusers UNet2DModel (audio-diffusion 256x256 config)"
    model = build_diffusers().to(dev)
    B, (H, W) = args.batch, args.mel
    x = torch.randn(B, 1, H, W, device=dev)

    def loss():
        t = torch.randint(0, 1000, (B,), device=dev)
        n = torch.randn_like(x)
        return torch.nn.functional.mse_loss(model(x + n, t).sample, n)
    out = [bench_train(label, model, loss, B * W * MEL_HOP, dev, args, nparams(model))]
    sch = DDIMScheduler(num_train_timesteps=1000)

    def sample():
        sch.set_timesteps(args.nfe)
        img = torch.randn(B, 1, H, W, device=dev)
        for t in sch.timesteps:
            img = sch.step(model(img, t).sample, t, img).prev_sample
        return img
    out.append(bench_sample(label, sample, B * W * MEL_HOP, args.nfe, dev, args))
    return out


# ------------------------------------------------------------------------ FLOPs at the GPU target
def target_flops(names, peers):
    """TFLOP of one training step (forward + backward) at the GPU target shapes, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode
    rows = []
    B, L, (H, W) = TARGET["batch"], TARGET["length"], TARGET["mel"]
    todo = [(n, lambda n=n: models.build(models.load_preset(n))) for n in names]
    if "adp" in peers:
        todo.append(("audio-diffusion-pytorch UNetV0", build_adp))
    if "diffusers" in peers:
        todo.append(("diffusers UNet2DModel", build_diffusers))
    for label, make in todo:
        try:
            with torch.device("meta"):
                net = make()
                one_d = label.startswith("unet1d") or label.startswith("audio-diffusion")
                x = torch.randn(B, 1, L) if one_d else torch.randn(B, 1, H, W)
                saved = {}

                def pack(t):
                    saved[id(t)] = t.numel() * t.element_size()
                    return t
                with FlopCounterMode(display=False) as fc, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    if label.startswith("audio-diffusion"):
                        net(x).backward()
                    elif label.startswith("diffusers"):
                        net(x, torch.randint(0, 1000, (B,))).sample.sum().backward()
                    else:
                        net(x, torch.zeros(B)).sum().backward()
            audio = B * (L if one_d else W * MEL_HOP) / SR
            rows.append(dict(net=label, what="target_flops", params_M=round(nparams(net) / 1e6, 2),
                             tflop_per_step=sig(fc.get_total_flops() / 1e12),
                             gflop_per_audio_s=sig(fc.get_total_flops() / 1e9 / audio),
                             saved_GB_fp32=sig(sum(saved.values()) / 1e9)))
        except Exception:
            rows.append(dict(net=label, what="target_flops", error=traceback.format_exc()[-400:]))
    peer_of = {"unet1d": "audio-diffusion", "unet2d": "diffusers"}
    for r in rows:
        peer = [q for q in rows if q["net"].startswith(peer_of.get(r["net"][:6], "?")) and "error" not in q]
        if peer and "error" not in r:
            r["flops_vs_peer"] = sig(r["tflop_per_step"] / peer[0]["tflop_per_step"])
            r["params_vs_peer"] = sig(r["params_M"] / peer[0]["params_M"])
            r["saved_vs_peer"] = sig(r["saved_GB_fp32"] / peer[0]["saved_GB_fp32"])
    return rows


# ----------------------------------------------------------------------------------------- main
def ratios(results):
    """Ours / peer for throughput, memory and sampling time (1-D vs UNetV0, 2-D vs UNet2DModel)."""
    get = lambda pre, what: [r for r in results if r["net"].startswith(pre) and r.get("what") == what
                             and "error" not in r]
    rows = []
    for ours_pre, peer_pre in (("unet1d", "audio-diffusion"), ("unet2d", "diffusers")):
        pt, ps = get(peer_pre, "train_step"), get(peer_pre, "sample")
        for t in get(ours_pre, "train_step"):
            row = dict(net=t["net"], vs=peer_pre, what="ratio")
            if pt:
                row["train_speedup"] = sig(t["audio_s_per_s"] / pt[0]["audio_s_per_s"])
                if t["mem_GB"] and pt[0]["mem_GB"]:
                    row["train_mem_fraction"] = sig(t["mem_GB"] / pt[0]["mem_GB"])
                    row["train_mem_fraction_incl_warmup"] = sig(t["mem_GB_incl_warmup"] / pt[0]["mem_GB_incl_warmup"])
            s = [r for r in get(ours_pre, "sample") if r["net"] == t["net"]]
            if ps and s:
                row["sample_speedup_per_nfe"] = sig(ps[0]["ms_per_nfe"] / s[0]["ms_per_nfe"])
            if len(row) > 3:
                rows.append(row)
    return rows


TABLES = {
    "train_step": ["params_M", "step_s", "audio_s_per_s", "tflops", "peak_fraction", "tflop_per_step", "mem_GB", "mem_GB_incl_warmup",
                   "finite"],
    "sample": ["nfe", "ms_per_nfe", "x_realtime", "mem_GB"],
    "ratio": ["vs", "train_speedup", "train_mem_fraction", "train_mem_fraction_incl_warmup", "sample_speedup_per_nfe"],
    "target_flops": ["params_M", "tflop_per_step", "gflop_per_audio_s", "saved_GB_fp32", "params_vs_peer",
                     "flops_vs_peer", "saved_vs_peer"],
}


def table(results):
    """One text table per kind of row (train_step, sample, ratio, target_flops), then the errors."""
    out = []
    for what, cols in TABLES.items():
        rows = [r for r in results if r.get("what") == what]
        if not rows:
            continue
        cols = ["net"] + [c for c in cols if any(c in r for r in rows)]
        cell = lambda r, c: "-" if r.get(c) is None else str(r[c])
        w = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in cols}
        out += [f"[{what}]", "  ".join(c.ljust(w[c]) for c in cols)]
        out += ["  ".join(cell(r, c).ljust(w[c]) for c in cols) for r in rows]
        out.append("")
    out += [f"{r['net']}: ERROR {r['error'].strip().splitlines()[-1]}" for r in results if "error" in r]
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default=None, help=f"comma list from {PRESETS} (default: all on GPU, small on CPU)")
    p.add_argument("--peers", default="adp,diffusers", help="comma list from adp,diffusers or 'none'")
    p.add_argument("--tiny", action="store_true", help="CPU proof of run: batch 1, 8,192 samples, 64x64 mel")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--length", type=int, default=None, help="waveform samples per item")
    p.add_argument("--mel", type=int, nargs=2, default=None, metavar=("N_MELS", "FRAMES"))
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--sample-iters", type=int, default=None)
    p.add_argument("--nfe", type=int, default=None, help="sampler steps for the peers' sampling calls")
    p.add_argument("--compile", action="store_true", help="torch.compile our nets")
    p.add_argument("--checkpointing", action="store_true", help="activation checkpointing in our nets")
    p.add_argument("--no-target-flops", action="store_true", help="skip the meta-device FLOP count at GPU shapes")
    p.add_argument("--out", type=Path, default=None, help="write all results as JSON here")
    args = p.parse_args(argv)

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = dev.type == "cuda"
    tiny = args.tiny or not gpu
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    d = dict(batch=1, length=8192, mel=(64, 64), iters=2, warmup=1, sample_iters=2, nfe=2) if tiny else \
        dict(batch=TARGET["batch"], length=TARGET["length"], mel=TARGET["mel"], iters=10, warmup=3,
             sample_iters=3, nfe=50)
    for k, v in d.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.mel = tuple(args.mel)
    names = args.presets.split(",") if args.presets else (PRESETS if not tiny else ["unet1d_small", "unet2d_small"])
    bad = [n for n in names if n not in PRESETS]
    if bad:
        p.error(f"unknown preset(s) {bad}; allowed: {PRESETS}")
    peers = [] if args.peers == "none" else args.peers.split(",")
    bad = [n for n in peers if n not in ("adp", "diffusers")]
    if bad:
        p.error(f"unknown peer(s) {bad}; allowed: adp, diffusers, none")

    env = dict(net="env", what="env", torch=torch.__version__, device=torch.cuda.get_device_name() if gpu else "cpu",
               batch=args.batch, length=args.length, mel=list(args.mel), compile=args.compile,
               checkpointing=args.checkpointing, threads=torch.get_num_threads())
    env["bf16_matmul_tflops"] = matmul_ceiling(dev)
    print(json.dumps(env), flush=True)
    results = []

    def record(rows):
        for r in rows:
            results.append(r)
            print(json.dumps(r), flush=True)

    for name in names:
        try:
            record(run_ours(name, args, dev))
        except Exception:
            record([dict(net=name, what="error", error=traceback.format_exc()[-800:])])
        reset_peak(dev)
    for peer, fn in (("adp", run_adp), ("diffusers", run_diffusers)):
        if peer in peers:
            try:
                record(fn(args, dev))
            except Exception:
                record([dict(net=peer, what="error", error=traceback.format_exc()[-800:])])
            reset_peak(dev)
    if env["bf16_matmul_tflops"]:   # the achieved fraction of the measured bf16 matrix rate
        for r in results:
            if r.get("what") == "train_step" and "tflops" in r:
                r["peak_fraction"] = sig(r["tflops"] / env["bf16_matmul_tflops"])
    record(ratios(results))
    if not args.no_target_flops:
        record(target_flops(names, peers))
    print("\n" + table(results))
    if args.out:
        args.out.write_text(json.dumps(dict(env=env, results=results), indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
