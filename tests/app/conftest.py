"""App test fixtures: real browsers, in-process apps, and the Slide Q&A test data.

Browser (any tab's end-to-end test):
- `chromium`: one Playwright Browser on Debian's Chromium per test process; tests skip, with the reason,
  when /usr/bin/chromium is missing (tests/run.sh installs it).
- `app_page(url)`: a fresh browser context and page on the app (tests.app.browser.AppPage); a screenshot of
  a failing test's page lands in test-artifacts/failed-<test>.png.
- `serve(demo)`: the app on a free loopback port for the test (tests.app.browser.serve_blocks).

Slide Q&A data: `qa_data` (a synthetic Aperio slide, a tiny WSI-Bench with released-style slide tokens,
a server slide folder, a --slides-root holding example S1's slide file but not S2's) and `qa_config(qa_data, *flags)` -> AppConfig read from flags only (the test
process's environment cannot leak in).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.app.browser import AppPage, chromium_path, launch_chromium, serve_blocks

os.environ.setdefault("WSI_LLAVA_NLTK_DATA", os.path.join(tempfile.mkdtemp(prefix="wsi-llava-nltk-"), "nltk_data"))
os.environ["GRADIO_HEARTBEAT_INTERVAL"] = "1"          # a closed tab ends its session within ~1 s
# Gradio's upload cache, per test process: uploads live at <cache>/<content hash>/<name>, and an app deletes
# the files it cached when its server closes, so two xdist workers uploading the same synthetic slide into
# one shared /tmp/gradio would delete each other's uploads.
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="wsi-llava-gradio-")


# -- browser ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium():
    if chromium_path() is None:
        pytest.skip("Debian's Chromium (/usr/bin/chromium) is not installed; `bash tests/run.sh` installs it "
                    "(apt-get install chromium)")
    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def app_page(chromium, request):
    contexts = []

    def open_page(url: str) -> AppPage:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        return AppPage(context.new_page(), url).open()

    yield open_page
    failed = getattr(request.node, "rep_call", None)
    for index, context in enumerate(contexts):
        if failed is not None and failed.failed and context.pages:
            AppPage(context.pages[0], "").screenshot(f"failed-{request.node.name}-{index}")
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def serve():
    """`with serve(demo, **launch_kwargs) as url:` the app on a free loopback port."""
    return serve_blocks


# -- Slide Q&A data --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QaData:
    slide: Path                # synthetic Aperio slide, 2048 px square at 0.5 um/px (22 tiles)
    large_slide: Path          # 4096 px square (about 90 tiles): slow enough to watch progress
    benchmark: Path            # tests.evaluation.fixtures' tiny WSI-Bench (both released formats)
    features: Path             # released-style slide tokens for S1 and S2 (TCGA-XX/S1.pt, TCGA-XX/S2.pt)
    server_slides: Path        # an allowed root with one slide in it
    outside: Path              # a folder outside every root
    slides_root: Path          # --slides-root: TCGA-XX/S1.svs (the WSI-Bench example S1's slide); none for S2


@pytest.fixture(scope="session")
def qa_data(tmp_path_factory) -> QaData:
    from tests.evaluation.fixtures import write_benchmark
    from tests.helpers.synthetic_slides import write_aperio_slide
    from tests.helpers.tiny_models import write_slide_tokens_pt

    root = tmp_path_factory.mktemp("qa-data")
    slides = root / "uploads-from-user"
    slides.mkdir()
    slide = write_aperio_slide(slides / "breast-biopsy.svs", width=2048, height=2048, mpp=0.5).path
    large = write_aperio_slide(slides / "large-resection.svs", width=4096, height=4096, mpp=0.5, seed=3).path
    features = root / "features"
    for number in (1, 2):
        (features / "TCGA-XX").mkdir(parents=True, exist_ok=True)
        write_slide_tokens_pt(features / "TCGA-XX" / f"S{number}.pt", seed=number)
    server = root / "server-slides"
    server.mkdir()
    write_aperio_slide(server / "on-server.svs", width=2048, height=2048, mpp=0.5, seed=5)
    outside = root / "outside"
    outside.mkdir()
    write_aperio_slide(outside / "secret.svs", width=2048, height=2048, mpp=0.5, seed=6)
    slides_root = root / "wsi-bench-slides"
    (slides_root / "TCGA-XX").mkdir(parents=True)
    write_aperio_slide(slides_root / "TCGA-XX" / "S1.svs", width=2048, height=2048, mpp=0.5, seed=7)
    return QaData(slide, large, write_benchmark(root / "bench"), features, server, outside, slides_root)


def qa_config(data: QaData, *flags: str):
    """An AppConfig for tests: the tiny demo model, the test WSI-Bench, no DataLoader workers; `flags` win."""
    from ui.config import load_config

    defaults = ["--model", "wsi-llava-tiny-random", "--benchmark", str(data.benchmark), "--benchmark-split", "",
                "--features-root", str(data.features), "--allowed-roots", str(data.server_slides),
                "--slides-root", str(data.slides_root),
                "--tile-workers", "0", "--max-new-tokens", "24", "--results-dir", str(data.outside / "no-results")]
    return load_config(defaults + list(flags), environ={})
