"""App start-up: from `python app.py` to the first page, as a person on a fresh machine sees it. JSON on stdout.

Each repeat starts `python app.py --port P` in a new process (offline: HF_HUB_OFFLINE=1, no GPU, a fresh
upload folder; the model and examples settings are the defaults unless given) and measures, from the
moment the process is spawned:
- `listening_s`: the port accepts connections;
- `first_page_s`: `GET /` answers 200 with the app's HTML;
- `config_s`: `GET /config` answers 200 (the page layout the browser renders);
- `rendered_s` (with --browser): Chromium (Debian's, headless) shows the app's tabs;
- `model_final_s` and `model_state`: the background model load has finished (ready or failed: with the
  default published checkpoint offline, it fails fast and the page explains why).
Reported per repeat and as min / median / max.

Run: `python benchmarks/app_startup.py [--repeats 5] [--browser] [--model wsi-llava-tiny-random]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(condition, timeout_s: float, process: subprocess.Popen, step_s: float = 0.02) -> float:
    """Seconds (monotonic clock) at which `condition()` first held; raises on timeout or process exit."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}: {process.stdout.read()[-2000:]}")
        with contextlib.suppress(Exception):
            if condition():
                return time.monotonic()
        time.sleep(step_s)
    raise RuntimeError(f"timed out after {timeout_s} s")


def one_run(args, browser) -> dict:
    import httpx
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="app-startup-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WSI_LLAVA_")}
        env.update(HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", GRADIO_ANALYTICS_ENABLED="False",
                   WSI_LLAVA_UPLOAD_DIR=str(Path(tmp) / "uploads"), WSI_LLAVA_MODEL_CACHE=str(Path(tmp) / "models"))
        if args.model:
            env["WSI_LLAVA_MODEL"] = args.model
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            listening = until(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5).close() or True,
                              args.timeout_s, process)
            first_page = until(lambda: "gradio" in httpx.get(url + "/", timeout=5).text.lower(), args.timeout_s,
                               process)
            config = until(lambda: httpx.get(url + "/config", timeout=5).status_code == 200, args.timeout_s, process)
            run = {"listening_s": listening - started, "first_page_s": first_page - started,
                   "config_s": config - started}
            if browser is not None:
                page = browser.new_page()
                page.goto(url)
                page.get_by_role("tab", name="Slide Q&A").wait_for(timeout=args.timeout_s * 1000)
                run["rendered_s"] = time.monotonic() - started
                page.close()
            client = Client(url + "/", verbose=False)
            state = {}

            def model_final() -> bool:
                banner = client.predict(api_name="/refresh_status")[0]
                state["banner"] = banner
                return "loading" not in banner and "loads when" not in banner

            run["model_final_s"] = until(model_final, args.timeout_s, process, step_s=0.2) - started
            run["model_state"] = "failed" if "could not be loaded" in state["banner"] else "ready"
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in run.items()}


@contextlib.contextmanager
def maybe_browser(enabled: bool):
    if not enabled:
        yield None
        return
    from tests.app.browser import chromium_path, launch_chromium

    if chromium_path() is None:
        raise SystemExit("--browser needs Debian's Chromium at /usr/bin/chromium")
    with launch_chromium() as browser:
        yield browser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time the first render in Chromium")
    parser.add_argument("--model", help="WSI_LLAVA_MODEL for the app (default: the app's default)")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    args = parser.parse_args()
    with maybe_browser(args.browser) as browser:
        runs = [one_run(args, browser) for _ in range(args.repeats)]
    summary = {}
    for key in ("listening_s", "first_page_s", "config_s", "rendered_s", "model_final_s"):
        values = [run[key] for run in runs if key in run]
        if values:
            summary[key] = {"min": min(values), "median": round(statistics.median(values), 3), "max": max(values)}
    print(json.dumps({"benchmark": "app_startup", "model": args.model or "default (Lucas-yuc/WSI-LLaVA-7b)",
                      "offline": True, "python": platform.python_version(), "machine": platform.machine(),
                      "cpu_count": os.cpu_count(), "repeats": args.repeats, "summary": summary, "runs": runs},
                     indent=2))


if __name__ == "__main__":
    main()
