"""Viewer tile serving for a 100,000 x 100,000 px slide: first view time and tile latency with 4 concurrent
viewers on a real server over HTTP. JSON on stdout.

The slide is an Aperio-style JPEG TIFF (levels 1/4/16/64/256, 0.25 um/px, a few tissue blobs) written once
with pre-encoded tiles (tests/helpers/synthetic_slides.py: `write_large_sparse_aperio`) into --workdir
(default: $TMPDIR/wsi-llava-bench) and reused. A child process serves it: a Gradio app with the viewer's
routes (`ui.viewer.attach_viewer`), one handle per viewer session, the default ViewerSettings (rate limit
included), pinned to --server-cores CPUs. Each viewer is a thread with 6 connections (what a browser opens
per host) that does what OpenSeadragon does: the descriptor, then the tiles of a 1200 x 600 px viewport at
the level it needs and the two coarser levels, for the whole slide ("first view"), then zooms in step by
step (x2) towards its own tissue blob down to full resolution and pans at a few levels, pausing --think-s
between moves (an animation). Tiles are not cached between viewers' regions: each viewer looks at a
different blob, so most tiles are read from the file (cold).

Reported: handle opening (server side), first view per viewer (descriptor + first viewport, cold), tile
latency p50/p95/p99/max over all tile requests, requests answered 429, the server's tile cache stats, the
median time to make one cold tile per Deep Zoom level in-process (no HTTP, one thread), and the machine's
load average (other work on the same cores inflates every latency: read it beside the numbers).
Targets (issue 12): first view under 2 s, p95 under 100 ms on 2 CPU cores with 4 concurrent viewers.

Run: `python benchmarks/viewer_tiles.py [--size 100000 --viewers 4 --steps 7 --think-s 0.3 --workdir DIR]`
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIEW_W, VIEW_H = 1200, 600          # css px of the viewer's stage
CONNECTIONS = 6                     # per viewer, as a browser per host
TILE = 254


def serve(slide: Path, viewers: int) -> None:
    """Child: the app with the viewer's routes and one handle per viewer; one JSON line, then wait."""
    import gradio as gr

    from tests.app.browser import free_port
    from ui.viewer import ViewerRegistry, attach_viewer

    registry = ViewerRegistry()
    with gr.Blocks() as demo:
        gr.Markdown("viewer benchmark")
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    attach_viewer(demo, registry)
    views, open_s = [], []
    for index in range(viewers):
        started = time.perf_counter()
        view = registry.open(f"bench-session-{index}", slide)
        open_s.append(round(time.perf_counter() - started, 4))
        views.append({"base": view.url_base, "width": view.width, "height": view.height})
    print(json.dumps({"url": demo.local_url, "views": views, "open_s": open_s}), flush=True)
    sys.stdin.read()                                   # until the parent is done
    print(json.dumps({"cache": registry.cache.stats()}), flush=True)
    demo.close()


def viewport_tiles(width: int, height: int, cx: float, cy: float, ds: float) -> list[tuple[int, int, int]]:
    """(level, col, row) OpenSeadragon asks for at centre (cx, cy) level-0 px and ds level-0 px per screen px:
    the level that gives at least one image px per screen px, and the two coarser ones."""
    max_level = math.ceil(math.log2(max(width, height)))
    need = max(0, min(max_level, max_level - math.floor(math.log2(max(ds, 1e-9)))))
    tiles = []
    for level in range(max(0, need - 2), need + 1):
        scale = 2 ** (max_level - level)                       # level-0 px per px of this level
        cols, rows = math.ceil(width / scale / TILE), math.ceil(height / scale / TILE)
        x0, x1 = (cx - VIEW_W / 2 * ds) / scale, (cx + VIEW_W / 2 * ds) / scale
        y0, y1 = (cy - VIEW_H / 2 * ds) / scale, (cy + VIEW_H / 2 * ds) / scale
        for row in range(max(0, int(y0 // TILE)), min(rows, int(y1 // TILE) + 1)):
            for col in range(max(0, int(x0 // TILE)), min(cols, int(x1 // TILE) + 1)):
                tiles.append((level, col, row))
    return tiles


def moves(width: int, height: int, target: tuple[float, float], steps: int) -> list[tuple[float, float, float]]:
    """(cx, cy, ds) per viewport: the whole slide, zooming x2 towards `target`, then pans at three levels."""
    home_ds = max(width / VIEW_W, height / VIEW_H)
    out = [(width / 2, height / 2, home_ds)]
    ds = home_ds
    for step in range(1, 64):
        ds = home_ds / 2 ** step
        fraction = min(1.0, step / 3)
        out.append((width / 2 + (target[0] - width / 2) * fraction, height / 2 + (target[1] - height / 2) * fraction,
                    max(ds, 0.5)))
        if ds <= 0.5:
            break
    for factor in (4.0, 1.0, 0.5)[: max(0, steps)]:
        for dx, dy in ((0.6, 0), (0, 0.6), (-0.6, 0)):
            out.append((target[0] + dx * VIEW_W * factor, target[1] + dy * VIEW_H * factor, factor))
    return out


def run_viewer(client, view: dict, target, args, latencies: list, statuses: dict, lock) -> dict:
    width, height = view["width"], view["height"]
    pool = ThreadPoolExecutor(CONNECTIONS)

    def fetch(tile):
        level, col, row = tile
        started = time.perf_counter()
        response = client.get(f"{view['base']}slide_files/{level}/{col}_{row}.jpeg")
        elapsed = time.perf_counter() - started
        with lock:
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                latencies.append(elapsed)
        return response.status_code

    seen: set = set()
    first_view_s = None
    started = time.perf_counter()
    assert client.get(f"{view['base']}slide.dzi").status_code == 200
    for index, (cx, cy, ds) in enumerate(moves(width, height, target, args.steps)):
        wanted = [t for t in viewport_tiles(width, height, cx, cy, ds) if t not in seen]
        seen.update(wanted)
        list(pool.map(fetch, wanted))
        if index == 0:
            first_view_s = time.perf_counter() - started
        time.sleep(args.think_s)
    pool.shutdown()
    return {"first_view_s": round(first_view_s, 3), "tiles": len(seen)}


def service_times(path: Path, levels: int = 10, per_level: int = 12) -> dict[int, float]:
    """Median ms to make one cold tile in this process, one thread (no HTTP), for the finest `levels` levels."""
    from ui.viewer.cache import TileCache
    from ui.viewer.settings import ViewerSettings
    from ui.viewer.tiles import TileSource

    source = TileSource(path, ViewerSettings(), TileCache(1 << 20))
    out = {}
    for level in range(source.level_count - levels, source.level_count):
        cols, rows = source.level_tiles[level]
        times = []
        addresses = {((cols // 2 + i) % cols, (rows // 2 + i // 4) % rows) for i in range(per_level)}
        for col, row in sorted(addresses):                     # distinct tiles: every one is made, not cached
            started = time.perf_counter()
            source.tile(level, col, row)
            times.append(1000 * (time.perf_counter() - started))
        out[level] = round(statistics.median(times), 1)
    source.close()
    return out


def next_json(child) -> dict | None:
    """The child's next JSON line on stdout (libraries may print other lines first)."""
    for line in child.stdout:
        if line.startswith("{"):
            return json.loads(line)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="slide width = height in level-0 px")
    parser.add_argument("--mpp", type=float, default=0.25)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="levels at which each viewer pans (0-3)")
    parser.add_argument("--think-s", type=float, default=0.3, help="pause between moves (an animation)")
    parser.add_argument("--server-cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "wsi-llava-bench")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.viewers)

    import httpx

    from tests.helpers.synthetic_slides import write_large_sparse_aperio

    path = args.workdir / f"synthetic-{args.size}px-{args.mpp:g}mpp-viewer-v1.svs"
    generation_s = None
    if not path.is_file():
        args.workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_large_sparse_aperio(path, args.size, args.size, mpp=args.mpp, downsamples=(1, 4, 16, 64, 256))
        generation_s = round(time.perf_counter() - started, 1)
    from tests.helpers.synthetic_slides import default_blobs

    blobs = default_blobs(args.size, args.size, 0, 5)
    load_before = os.getloadavg()
    cores = sorted(os.sched_getaffinity(0))[: args.server_cores] if hasattr(os, "sched_getaffinity") else None
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(path), "--viewers", str(args.viewers)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        if cores:
            os.sched_setaffinity(child.pid, set(cores))
        ready = next_json(child)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        results = [None] * args.viewers
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)

        def viewer(index):
            with httpx.Client(base_url=ready["url"].rstrip("/") + "/", limits=limits, timeout=60) as client:
                blob = blobs[index % len(blobs)]
                results[index] = run_viewer(client, ready["views"][index], (blob.cx, blob.cy), args, latencies,
                                            statuses, lock)

        started = time.perf_counter()
        threads = [threading.Thread(target=viewer, args=(i,)) for i in range(args.viewers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall_s = time.perf_counter() - started
        child.stdin.close()
        cache = (next_json(child) or {}).get("cache")
    finally:
        if child.poll() is None:
            child.terminate()
        child.wait(timeout=30)
    load_after = os.getloadavg()
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1) if ordered else None

    first = [r["first_view_s"] for r in results]
    print(json.dumps({
        "benchmark": "viewer_tiles", "slide_px": [args.size, args.size], "mpp": args.mpp,
        "slide_generation_s": generation_s, "viewers": args.viewers, "connections_per_viewer": CONNECTIONS,
        "think_s": args.think_s, "server_cores": cores, "machine_cores": os.cpu_count(),
        "handle_open_s": ready["open_s"],
        "first_view_s": {"per_viewer": first, "max": max(first), "median": statistics.median(first)},
        "tile_latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": pct(100), "count": len(ordered)},
        "tiles_per_viewer": [r["tiles"] for r in results], "status_counts": statuses,
        "wall_s": round(wall_s, 2), "tiles_per_s": round(len(ordered) / wall_s, 1), "server_tile_cache": cache,
        "targets": {"first_view_s": 2.0, "p95_ms": 100.0},
        "tile_service_ms_by_level": service_times(path),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "python": platform.python_version(), "note": "clients run on the same machine as the server",
    }, indent=2))


if __name__ == "__main__":
    main()
