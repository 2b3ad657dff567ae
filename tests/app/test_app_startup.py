"""`python app.py` as a person starts it: offline, no GPU, default settings. The page is served at once;
the model that cannot be loaded is explained on the page, with the demo model offered."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gradio_client import Client

from tests.app.browser import free_port
from ui.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def offline_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSI_LLAVA_")}
    env.update(HF_HUB_OFFLINE="1", WSI_LLAVA_MODEL_CACHE=str(tmp_path / "models"), WSI_LLAVA_UPLOAD_DIR=str(
        tmp_path / "uploads"), CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    return env


def wait_for_page(url: str, process: subprocess.Popen, timeout_s: float = 90) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with {process.returncode}: {process.stdout.read()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no page at {url} after {timeout_s} s")


def test_the_app_starts_offline_and_explains_the_missing_model(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=offline_env(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", process)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        deadline = time.monotonic() + 60
        while "loading" in (banner := client.predict(api_name="/refresh_status")[0]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "`Lucas-yuc/WSI-LLaVA-7b` could not be loaded" in banner
        assert "not in the local cache and the Hub is unreachable" in banner and "untrained demo model" in banner
        assert "WSI-Bench examples unavailable" in client.predict(api_name="/refresh_status")[1]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())


def test_help_lists_every_variable_and_bad_values_exit_with_the_reason(tmp_path):
    shown = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                           env=offline_env(tmp_path), timeout=60)
    assert shown.returncode == 0 and all(setting.env in shown.stdout for setting in SETTINGS)
    refused = subprocess.run([sys.executable, "app.py", "--load-4bit", "maybe"], cwd=ROOT, capture_output=True,
                             text=True, env=offline_env(tmp_path), timeout=60)
    assert refused.returncode == 2 and "--load-4bit: 'maybe' is not valid" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_sigterm_cleans_up_like_ctrl_c_and_orphans_of_dead_processes_are_removed(tmp_path):
    """docker stop / systemd / Space restarts send SIGTERM: the temp upload folder must not outlive the app.
    Folders left by app processes that died anyway (SIGKILL) are removed at the next start."""
    import signal

    from ui.qa.upload_sandbox import UPLOAD_ROOT_PREFIX

    temp = tmp_path / "tmp"
    temp.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = temp / f"{UPLOAD_ROOT_PREFIX}{int(dead.stdout)}-abc123"
    (orphan / "session" / "slide").mkdir(parents=True)
    (orphan / "session" / "slide" / "big.svs").write_bytes(b"x" * 1000)
    env = offline_env(tmp_path)
    del env["WSI_LLAVA_UPLOAD_DIR"]                          # the default: a new folder in the temp dir
    env.update(TMPDIR=str(temp), WSI_LLAVA_PRELOAD="false", WSI_LLAVA_BENCHMARK="")
    port = free_port()
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", process)
        assert not orphan.exists()
        own = [p for p in temp.glob(f"{UPLOAD_ROOT_PREFIX}{process.pid}-*")]
        assert len(own) == 1 and own[0].is_dir()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not own[0].exists()
