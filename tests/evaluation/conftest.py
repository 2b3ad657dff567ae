"""Evaluation tests: WordNet (when Debian's files exist) is laid out in a per-session folder, not in $HOME."""

import os
import tempfile

os.environ.setdefault("WSI_LLAVA_NLTK_DATA", os.path.join(tempfile.mkdtemp(prefix="wsi-llava-nltk-"), "nltk_data"))
