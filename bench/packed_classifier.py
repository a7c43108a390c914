"""Packed EfficientNets (classifier.packed) against ordinary ones stepped one after another.

    .venv/bin/python bench/packed_classifier.py [--steps 3] [--ks 3,5,10,15] [--threads 1,2] [--channels 3,1]

One training step = forward, cross-entropy, backward and AdamW, on 64 random images of 28 px
(values do not change the speed). Per thread count and channel count it times: one ordinary
EfficientNet-b0 (the plain reference), K ordinary models stepped one after another, and one
packed model of K members. Ratios `packed_vs_sequential` (< 1: packing pays) survive a loaded
machine better than the seconds. Then CPU bf16 autocast for the packed K=10: seconds per step
and how far its logits are from float32 after one forward.

Each configuration runs twice, in child processes: once with glibc's default allocator settings
and once with `mmap` switched off (`M_MMAP_MAX=0`), because glibc maps and unmaps every block
over 32 MB afresh, and the packed model's activations pass that size from about K=5 on: each
such tensor then costs page faults on every step. The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from classifier.packed import build_member, member_losses, pack, pack_inputs  # noqa: E402

BATCH, SIZE, CLASSES = 64, 28, 7
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (glibc malloc.h)


def keep_blocks_on_the_heap() -> None:
    """glibc: serve every allocation from the heap and keep freed memory, so big tensors stop costing page faults."""
    libc = ctypes.CDLL("libc.so.6")
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)):
        raise RuntimeError("mallopt refused")


def seconds_per_step(step, steps: int) -> float:
    """Median seconds of `steps` calls of `step`, after one warm-up call."""
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def ordinary_step(models, channels: int):
    """A step function training `models` one after another, each on its own batch."""
    optimizers = [torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=0.05) for m in models]
    xs = [torch.randn(BATCH, channels, SIZE, SIZE).contiguous(memory_format=torch.channels_last) for _ in models]
    ys = [torch.randint(0, CLASSES, (BATCH,)) for _ in models]

    def step():
        for model, optimizer, x, y in zip(models, optimizers, xs, ys):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return step


def packed_step(packed, channels: int, bf16: bool = False):
    """A step function training the packed model, each member on its own batch."""
    optimizer = torch.optim.AdamW(packed.parameters(), lr=2e-3, weight_decay=0.05)
    x = pack_inputs([torch.randn(BATCH, channels, SIZE, SIZE) for _ in range(packed.members)])
    y = torch.randint(0, CLASSES, (BATCH, packed.members))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = packed(x)
        loss = member_losses(logits.float(), y).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def build_pack(k: int, channels: int):
    built = [build_member(seed, CLASSES, channels, SIZE) for seed in range(k)]
    return pack([m for m, _ in built], [g for _, g in built])


def measure(ks: list[int], threads: list[int], channels: list[int], steps: int) -> dict:
    """Seconds per step of every configuration, in this process."""
    figures = {}
    for t in threads:
        torch.set_num_threads(t)
        for c in channels:
            ordinary = seconds_per_step(ordinary_step([build_member(0, CLASSES, c, SIZE)[0].train()], c), steps)
            row = {"ordinary_s": round(ordinary, 4), "sequential_s": {}, "packed_s": {}, "packed_vs_sequential": {},
                   "packed_per_member_vs_ordinary": {}}
            for k in ks:
                models = [build_member(seed, CLASSES, c, SIZE)[0].train() for seed in range(k)]
                sequential = seconds_per_step(ordinary_step(models, c), steps)
                packed = seconds_per_step(packed_step(build_pack(k, c).train(), c), steps)
                row["sequential_s"][k] = round(sequential, 4)
                row["packed_s"][k] = round(packed, 4)
                row["packed_vs_sequential"][k] = round(packed / sequential, 3)
                row["packed_per_member_vs_ordinary"][k] = round(packed / (k * ordinary), 3)
                print(f"threads {t} channels {c} K={k}: ordinary {ordinary:.3f} s, {k} one after another "
                      f"{sequential:.3f} s, packed {packed:.3f} s", file=sys.stderr, flush=True)
            figures[f"threads_{t}_channels_{c}"] = row
    return figures


def bf16_figures(k: int, steps: int) -> dict:
    """Packed K members at 2 threads, 3 channels: float32 vs bf16 autocast seconds per step, and logit agreement."""
    torch.set_num_threads(2)
    packed = build_pack(k, 3).train()
    float32 = seconds_per_step(packed_step(copy.deepcopy(packed), 3), steps)
    bf16 = seconds_per_step(packed_step(copy.deepcopy(packed), 3, bf16=True), steps)
    packed.dropout_rate = packed.drop_connect_rate = 0.0  # the same network both ways: no random masks
    x = pack_inputs([torch.randn(BATCH, 3, SIZE, SIZE) for _ in range(k)])
    with torch.no_grad():
        exact = copy.deepcopy(packed)(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = copy.deepcopy(packed)(x).float()
    return {"members": k, "threads": 2, "float32_s": round(float32, 4), "bf16_s": round(bf16, 4),
            "bf16_vs_float32": round(bf16 / float32, 3),
            "max_logit_difference": round((low - exact).abs().max().item(), 5),
            "max_abs_logit": round(exact.abs().max().item(), 5),
            "argmax_agreement": round((low.argmax(-1) == exact.argmax(-1)).float().mean().item(), 4)}


def child(args) -> None:
    if args.heap:
        keep_blocks_on_the_heap()
    figures = {"grid": measure(args.ks, args.threads, args.channels, args.steps)}
    if args.bf16:
        figures["bf16"] = bf16_figures(args.bf16, args.steps)
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration (median reported)")
    parser.add_argument("--ks", default="3,5,10,15", help="member counts K")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--channels", default="3,1")
    parser.add_argument("--bf16", type=int, default=10, help="members of the bf16 comparison; 0 = skip")
    parser.add_argument("--allocators", default="default,heap", help="glibc allocator settings to run: default, heap")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--heap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.ks, args.threads, args.channels = ([int(v) for v in s.split(",")] for s in (args.ks, args.threads,
                                                                                         args.channels))
        return child(args)

    figures = {"batch": BATCH, "image_size": SIZE, "variant": "efficientnet-b0", "steps": args.steps,
               "torch": torch.__version__, "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    for allocator in args.allocators.split(","):
        command = [sys.executable, __file__, "--child", "--steps", str(args.steps), "--ks", args.ks,
                   "--threads", args.threads, "--channels", args.channels, "--bf16", str(args.bf16)]
        result = subprocess.run(command + (["--heap"] if allocator == "heap" else []), stdout=subprocess.PIPE,
                                text=True, check=True)
        figures[f"malloc_{allocator}"] = json.loads(result.stdout.strip().splitlines()[-1])
        figures[f"loadavg_after_{allocator}"] = os.getloadavg()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
