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
