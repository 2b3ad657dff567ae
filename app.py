"""WSI-LLaVA studio: the Gradio app. Run `python app.py` (http://127.0.0.1:7860); `python app.py --help`
lists every flag with its environment variable (`ui/config.py` holds the table).

The tabs are composed in `tabs()` below, one line each. Nothing slow happens before the page is served:
the model loads in a background thread (its status is shown on the Slide Q&A tab), the WSI-Bench
examples are listed in another, and heavy libraries (torch, transformers) are imported where used.

    python app.py --port 7861 --model wsi-llava-tiny-random --benchmark WSI-Bench/ --features-root WSIBench-pt/
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
from typing import Callable

from ui.config import AppConfig, AppConfigError, load_config

log = logging.getLogger("wsi_llava.app")

APP_CSS = """
#qa-model-banner { border-left: 4px solid var(--color-accent); padding-left: 10px; }
#qa-model-banner p { margin: 4px 0; }
#qa-turn-status { min-height: 2.5em; }
#review-message { min-height: 2em; }
#metrics-status { min-height: 2em; }
"""
GRADIO_CACHE_MAX_AGE_S = 3600       # Gradio's own upload cache: checked and cleaned hourly


def build_services(config: AppConfig):
    """The Slide Q&A services. Their background work (model loading, example and server-slide listing)
    starts with `start_background(services)`."""
    from llm.client import LLMSettings
    from ui.qa.examples import ExampleCatalog
    from evaluation.judge_types import JudgeConfig
    from ui.qa.live_scoring import LiveScorer
    from ui.qa.background import BackgroundTask
    from ui.qa.model_manager import ModelManager, ModelSpec
    from ui.qa.sessions import SlideSessions
    from ui.qa.upload_sandbox import UploadSandbox, remove_orphaned_upload_roots
    from ui.errors import register_secret_env
    from ui.qa.services import QaServices, list_server_slides

    register_secret_env(config.judge_api_key_env)
    for folder in remove_orphaned_upload_roots():
        log.info("removed %s, left behind by an app process that is gone", folder)
    upload_root = config.upload_root()
    sandbox = UploadSandbox(upload_root, config.max_upload_bytes, incoming_roots=[gradio_upload_folder()],
                            quota_bytes=config.upload_quota_bytes, max_ratio=config.max_zip_ratio)
    sandbox.discard_older_than(config.session_ttl_min * 60)     # left behind by an earlier process
    models = ModelManager(ModelSpec(config.model, revision=config.model_revision, load_4bit=config.load_4bit,
                                    device=config.device, convert_dir=config.model_cache,
                                    slide_encoder=config.slide_encoder))
    catalog = examples = None
    if config.examples_enabled:
        catalog = ExampleCatalog(config.benchmark, config.features_root, split=config.benchmark_split,
                                 max_slides=config.max_examples)
        examples = BackgroundTask("examples", catalog.load)
    server_listing = None
    if config.allowed_roots:
        server_listing = BackgroundTask("server slides", lambda report: list_server_slides(config.allowed_roots,
                                                                                            report))
    if config.judge == "openai":
        judge = JudgeConfig("openai", workers=1, llm=LLMSettings(
            base_url=config.judge_base_url, model=config.judge_model, api_key_env=config.judge_api_key_env,
            cache_path=config.judge_cache))
    else:
        judge = JudgeConfig("offline", embedding_model=config.judge_model)
    return QaServices(config=config, models=models, sessions=SlideSessions(sandbox, config.session_ttl_min * 60),
                      sandbox=sandbox, scorer=LiveScorer(judge), catalog=catalog, examples=examples,
                      server_listing=server_listing, **viewer_services(config))


def viewer_services(config: AppConfig) -> dict:
    """The app's one slide-viewer registry (both tabs show slides through it; `main` attaches its routes to
    the server) and the --slides-root index of WSI-Bench slide files."""
    from pathlib import Path

    from ui.viewer import SlidesRoot, ViewerRegistry, ViewerSettings

    settings = ViewerSettings(viewer_js=Path(config.viewer_js).expanduser() if config.viewer_js else None,
                              handle_ttl_s=config.session_ttl_min * 60)
    return {"viewer": ViewerRegistry(settings),
            "slides_root": SlidesRoot(config.slides_root) if config.slides_root else None}


def start_background(services) -> None:
    """Start loading the model (unless preloading is off) and listing examples and server slides. When one of
    them is on the Hub and the Hub cannot be reached, Hub access is switched off first (a few seconds at most),
    so they fail at once with "offline?" rather than after a minute of connection retries."""
    from common.hub import settle_hub_access

    config = services.config
    settle_hub_access([config.model, *([config.benchmark, config.features_root] if config.examples_enabled else [])])
    if services.config.preload:
        services.models.start()
    for task in (services.examples, services.server_listing):
        if task is not None:
            task.start()


def gradio_upload_folder() -> str:
    """Where Gradio stores uploads before a handler sees them (GRADIO_TEMP_DIR or <tmp>/gradio)."""
    from gradio.utils import get_upload_folder

    return get_upload_folder()


def tabs(config: AppConfig, services) -> list[tuple[str, Callable[[], Callable | None]]]:
    """(title, builder) per tab, in order. A builder draws its tab inside `gr.Tab(title)` and may return a
    handler for `demo.unload` (per-session clean-up)."""
    from ui.metrics.tab import build_metrics_tab
    from ui.qa.tab import build_qa_tab
    from ui.review.tab import build_review_tab

    results = config.results_dir if config.results_dir.is_dir() else None
    return [
        ("Slide Q&A", lambda: build_qa_tab(services)),
        ("Curation review", lambda: build_review_tab(config.review_store, config.users_file, viewer=services.viewer,
                                                     slides_root=services.slides_root)),
        ("Metrics", lambda: build_metrics_tab(results)),
    ]


def build_app(config: AppConfig, services=None, start: bool = True):
    """The Blocks app; `services` default to `build_services(config)`. With `start`, their background work
    starts now; `main` starts it once the server listens, so it never delays the first page. After
    `demo.launch(...)`, `ui.viewer.attach_viewer(demo)` adds the slide viewer's routes to the server."""
    import gradio as gr

    services = services or build_services(config)
    if start:
        start_background(services)
    with gr.Blocks(title="WSI-LLaVA studio", delete_cache=(GRADIO_CACHE_MAX_AGE_S, GRADIO_CACHE_MAX_AGE_S)) as demo:
        gr.Markdown("# WSI-LLaVA studio\nAsk WSI-LLaVA about whole-slide images, review WSI-Bench VQA pairs and "
                    "compare evaluation runs with the paper. Not for clinical use.")
        unload_handlers = []
        with gr.Tabs():
            for title, build in tabs(config, services):
                with gr.Tab(title, elem_id="tab-" + title.lower().replace(" ", "-").replace("&", "")):
                    handler = build()
                if handler is not None:
                    unload_handlers.append(handler)
        for handler in unload_handlers:
            demo.unload(handler)
    demo.services = services
    demo.viewer_registry = services.viewer          # attach_viewer(demo), after launch, serves its routes
    return demo


def launch_kwargs(config: AppConfig) -> dict:
    return {"server_name": config.host, "server_port": config.port, "share": config.share,
            "max_file_size": config.max_upload_bytes, "css": APP_CSS, "show_error": True}


def _stop_on_sigterm(signum, frame) -> None:
    """SIGTERM ends the app like Ctrl-C: Gradio closes the server, `main` deletes the uploads."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(argv)                    # --help and bad values end here, before any heavy import
    except AppConfigError as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    from ui.errors import install_log_redaction, redact

    install_log_redaction()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        demo = build_app(config, start=False)
    except Exception as exc:  # a configuration the libraries refuse (bad judge settings, unwritable folders)
        print(f"app.py: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)       # docker stop, systemd, Space restarts: clean up too
    try:
        demo.launch(prevent_thread_lock=True, **launch_kwargs(config))
        from ui.viewer import attach_viewer
        attach_viewer(demo)                           # the slide viewer's tile routes on the app's own server
        start_background(demo.services)
        demo.block_thread()                           # returns on Ctrl-C / SIGTERM, the server closed
    except KeyboardInterrupt:                         # stopped while still starting up
        demo.close()
    finally:
        demo.services.sessions.close_all()
        if not config.upload_dir:                     # the temp folder made for this process
            shutil.rmtree(demo.services.sandbox.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
