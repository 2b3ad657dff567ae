"""Slide-encoder forward time and peak memory vs. number of tiles: dilated (LongNet) vs. dense attention.

A small LongNet slide encoder (default 2 layers, 128-d, 4 heads, 1536-d tile features, Prov-GigaPath's
segment lengths and dilation ratios) runs one inference forward per (mode, tiles), each in a fresh
subprocess so measurements do not mix. Modes:
- dilated: Prov-GigaPath's 5 branches, fused attention kernel ("auto").
- dense: one segment covering the sequence, no dilation, full score matrix materialised ("naive"):
  textbook attention, memory quadratic in tiles.
- dense_fused: the same single segment through the fused kernel: memory linear, time quadratic.
Time is the median of up to --repeats forwards (while under 10 s). Peak memory is the forward's
increase of the process's peak RSS (Linux VmHWM, reset just before the forward) on CPU, or of
torch.cuda.max_memory_allocated on CUDA. Dense runs are skipped (and say why) when
their estimated memory or time exceeds --dense-max-gib / --dense-max-seconds. Prints JSON on stdout.

Run: `python benchmarks/slide_encoder_memory.py [--tiles 1024 4096 16384 65536] [--device cpu]`
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("dilated", "dense", "dense_fused")


def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def run_one(args: argparse.Namespace) -> dict:
    """One forward in this process; returns seconds and peak MiB."""
    import torch

    sys.path.insert(0, str(ROOT))
    from modeling.slide_encoder import LongNetSlideEncoder, SlideEncoderConfig

    torch.manual_seed(0)
    dense = args.mode != "dilated"
    config = SlideEncoderConfig(
        in_dim=args.in_dim, embed_dim=args.embed_dim, depth=args.depth, num_heads=args.num_heads,
        num_slide_tokens=576,
        **({"segment_lengths": (1 << 30,), "dilated_ratios": (1,)} if dense else {}),
        attention_backend="naive" if args.mode == "dense" else "auto")
    device = torch.device(args.device)
    model = LongNetSlideEncoder(config).to(device).eval()
    side = int(args.tiles**0.5) + 1
    cells = torch.randperm(side * side)[: args.tiles]
    coords = torch.stack([cells // side, cells % side], dim=-1).unsqueeze(0).float() * 256  # [1, N, 2]
    features = torch.randn(1, args.tiles, args.in_dim)  # [1, N, in_dim]
    features, coords = features.to(device), coords.to(device)
    with torch.inference_mode():
        model(features[:, :64], coords[:, :64])  # warm-up (kernels, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = _status_kib("VmRSS") * 1024
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        times = []
        while len(times) < args.repeats and sum(times) < 10.0:  # repeat short runs, report the median
            start = time.perf_counter()
            out = model(features, coords)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _status_kib("VmHWM") * 1024
    assert out.shape == (1, 576, args.embed_dim) and bool(torch.isfinite(out).all())
    return {"seconds": round(sorted(times)[len(times) // 2], 3), "runs": len(times),
            "peak_mib": round((peak - base) / 2**20, 1)}


def dense_skip_reason(args, tiles: int, previous: dict | None) -> str | None:
    tokens = tiles + 1
    if args.mode_for_estimate == "dense":
        gib = 2 * args.num_heads * tokens**2 * 4 / 2**30  # scores + probabilities, float32
        if gib > args.dense_max_gib:
            return f"estimated {gib:.1f} GiB of attention scores > --dense-max-gib {args.dense_max_gib}"
    if previous and "seconds" in previous:
        estimate = previous["seconds"] * (tiles / previous["tiles"]) ** 2
        if estimate > args.dense_max_seconds:
            return f"estimated {estimate:.0f} s (quadratic from {previous['tiles']} tiles) > --dense-max-seconds"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--in-dim", type=int, default=1536)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="forwards per point while under 10 s")
    parser.add_argument("--dense-max-gib", type=float, default=6.0)
    parser.add_argument("--dense-max-seconds", type=float, default=180.0)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "TILES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        args.mode, args.tiles = args.one[0], int(args.one[1])
        print(json.dumps(run_one(args)))
        return

    import torch

    common = ["--device", args.device, "--in-dim", str(args.in_dim), "--embed-dim", str(args.embed_dim),
              "--depth", str(args.depth), "--num-heads", str(args.num_heads), "--repeats", str(args.repeats)]
    results = []
    for mode in args.modes:
        previous = None
        for tiles in sorted(args.tiles):
            row = {"mode": mode, "tiles": tiles}
            args.mode_for_estimate = mode
            reason = dense_skip_reason(args, tiles, previous) if mode != "dilated" else None
            if reason:
                row["skipped"] = reason
            else:
                proc = subprocess.run([sys.executable, __file__, "--one", mode, str(tiles), *common],
                                      capture_output=True, text=True, cwd=ROOT, check=False)
                if proc.returncode:
                    row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                else:
                    row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
                    previous = row
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)  # progress

    growth = {}
    for mode in args.modes:
        done = [r for r in results if r["mode"] == mode and "peak_mib" in r]
        growth[mode] = [{"tiles": f"{a['tiles']}->{b['tiles']}",
                         "memory_x": round(b["peak_mib"] / max(a["peak_mib"], 1e-9), 2),
                         "time_x": round(b["seconds"] / max(a["seconds"], 1e-9), 2)}
                        for a, b in itertools.pairwise(done)]
    print(json.dumps({
        "benchmark": "slide_encoder_memory",
        "config": {"in_dim": args.in_dim, "embed_dim": args.embed_dim, "depth": args.depth,
                   "num_heads": args.num_heads, "dilated": "Prov-GigaPath segments/ratios"},
        "device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "results": results, "growth_per_step": growth,
    }, indent=2))


if __name__ == "__main__":
    main()
