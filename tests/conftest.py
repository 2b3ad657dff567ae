"""Suite-wide test set-up: hermetic, offline environment for every test (and every xdist worker).

Environment variables are set here, at import time, before any test module imports
huggingface_hub/transformers/gradio (several of them read their settings once, at import).
"""

import os
import tempfile

_SESSION_TMP = tempfile.mkdtemp(prefix="wsi-llava-tests-")

os.environ["HF_HOME"] = os.path.join(_SESSION_TMP, "hf-home")      # no user cache, no stale files
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.pop("OPENAI_API_KEY", None)                             # tests never spend real money

# --- Loopback Hugging Face Hub stand-in: one server per test process, started before anything imports
# huggingface_hub (which reads HF_ENDPOINT once, at import). Tests reach it through the `hub` fixture.
import pytest  # noqa: E402

from tests.helpers.hub_server import HubStandIn  # noqa: E402  (stdlib only: imports no HF library)

HUB = HubStandIn().start()
os.environ["HF_ENDPOINT"] = HUB.url
os.environ["HF_TOKEN"] = "hf_test"                                 # the stand-in's user "tester"
os.environ.pop("HF_HUB_OFFLINE", None)                             # the stand-in is "online", on loopback


@pytest.fixture
def hub() -> HubStandIn:
    """The process's Hub stand-in, emptied before the test: `hub.url`, `hub.state` (repos, `upload`,
    `files`, `grant`), `hub.requests`. The user behind HF_TOKEN=hf_test is "tester"."""
    HUB.reset()
    yield HUB
    HUB.reset()
