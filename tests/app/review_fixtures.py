"""A review store for the review tab's tests and benchmark, built by the real curation pipeline: synthetic
reports cleaned, enriched and turned into pairs by the scripted LLM on loopback (so pairs carry cleaned
text, removed segments, an inferred enrichment and grounding spans), a lead and annotators, their users
file (fast PBKDF2 for tests), a slide thumbnail, and a Gradio server with only the review tab (on a free
loopback port, through tests/app/browser.py).

    path = build_store(tmp / "store.sqlite", annotators=("ann", "bob"))
    users = write_users(tmp / "users.json", ("lead", "ann", "bob"))
    with review_server(path, users) as url: Client(url).predict("ann", PASSWORDS["ann"], api_name="/sign_in")
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from curation.cleaning import run_cleaning
from curation.enrichment import run_enrichment
from curation.generation import run_generation
from curation.store.review_store import ReviewStore
from curation.store.users import UsersFile
from tests.app.browser import serve_blocks
from tests.curation.conftest import KEY_ENV, add_synthetic_reports, make_client
from tests.curation.llm_replies import CurationResponder
from tests.helpers.openai_server import OpenAIStandIn

TEST_ITERATIONS = 1_000               # PBKDF2 rounds in test users files (the real default is 600 000)


def password_of(name: str) -> str:
    return f"{name}-secret-pw"


def build_store(path: str | Path, n_reports: int = 2, annotators: Sequence[str] = ("ann", "bob"),
                lead: str = "lead", blind: bool = True) -> Path:
    """A SQLite store with `n_reports` synthetic reports' pairs (21 per report), pending and unassigned."""
    path = Path(path)
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = "sk-test-review"
    store = ReviewStore.open(str(path))
    try:
        add_synthetic_reports(store, n_reports)
        with OpenAIStandIn(responder=CurationResponder()) as server:
            client = make_client(server)
            run_cleaning(store, client)
            run_enrichment(store, client)
            run_generation(store, client)
        store.add_annotator(lead, role="lead")
        for name in annotators:
            store.add_annotator(name, actor=lead)
        store.set_blind_mode(blind, actor=lead)
    finally:
        store.close()
        if previous is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = previous
    return path


def copy_store(source: str | Path, target: str | Path) -> Path:
    """A consistent copy of a SQLite store (the backup API, WAL included)."""
    with contextlib.closing(sqlite3.connect(str(source))) as src, \
            contextlib.closing(sqlite3.connect(str(target))) as dst:
        src.backup(dst)
    return Path(target)


def write_users(path: str | Path, names: Sequence[str]) -> Path:
    users = UsersFile.load(path, missing_ok=True)
    for name in names:
        users.set_password(name, password_of(name), replace=True, iterations=TEST_ITERATIONS)
    users.save()
    return Path(path)


def write_thumbnail(folder: str | Path, slide_id: str) -> Path:
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (320, 240), (246, 240, 246))
    ImageDraw.Draw(image).ellipse((60, 40, 260, 200), fill=(196, 120, 180), outline=(90, 30, 90), width=4)
    path = folder / f"{slide_id}.png"
    image.save(path)
    return path


@contextlib.contextmanager
def review_server(store_path: str | Path, users_file: str | Path | None, slides_root: str | Path | None = None,
                  **options) -> Iterator[str]:
    """A real Gradio server with the review tab only; yields its URL. With `slides_root`, the tab shows the
    pair's slide from there in the zoomable viewer (as app.py's --slides-root)."""
    import gradio as gr

    from ui.review.session import ReviewSettings
    from ui.review.tab import build_review_screen
    from ui.viewer import SlidesRoot, ViewerRegistry

    settings = ReviewSettings(str(store_path), str(users_file) if users_file else None, **options)
    viewer = ViewerRegistry() if slides_root is not None else None
    with gr.Blocks(title="review tab") as demo, gr.Tab("Curation review", elem_id="tab-curation-review"):
        screen = build_review_screen(settings, viewer, SlidesRoot(slides_root) if slides_root else None)
    demo.viewer_registry = viewer            # serve_blocks attaches the viewer's routes
    try:
        with serve_blocks(demo) as url:
            yield url
    finally:
        screen.handle.close()
