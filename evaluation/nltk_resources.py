"""NLTK tokenization and WordNet, offline: what the NLU metrics and the offline judge tokenize with.

- Words: the official NLP_Metric.py uses `nltk.word_tokenize` (Punkt sentences, then the Treebank word
  tokenizer), which needs the `punkt_tab` model that no PyPI or Debian package ships. When that model is
  installed (`nltk.data.find("tokenizers/punkt_tab/english/")`) we call `nltk.word_tokenize` itself.
  Otherwise we run the same two steps with an UNTRAINED `PunktSentenceTokenizer` given a short list of
  English abbreviations (`FALLBACK_ABBREVIATIONS`) and NLTK's Treebank word tokenizer: identical tokens
  except where the trained model knows an abbreviation or collocation the list lacks (a period that the
  trained model keeps attached, e.g. "Fig." mid-sentence). `tokenizer_name()` says which ran; the
  summary records it.
- WordNet (METEOR's synonym stage): no PyPI package ships it. When NLTK cannot find it but Debian's
  `wordnet-base` + `wordnet-sense-index` are installed (/usr/share/wordnet), `wordnet_reader()` copies
  data.*, index.* and *.exc into `<root>/corpora/wordnet/` with a generated `lexnames` file and puts
  `<root>` on `nltk.data.path` (NLTK only reads corpora under its data roots). `<root>` is
  $WSI_LLAVA_NLTK_DATA, else ~/.cache/wsi-llava/nltk_data. Without WordNet it returns None and METEOR
  runs with exact + stem matching only (the summary says which).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
from pathlib import Path

WORDNET_SOURCE_DIRS = (Path("/usr/share/wordnet"),)
NLTK_DATA_ENV = "WSI_LLAVA_NLTK_DATA"
FALLBACK_ABBREVIATIONS = frozenset({
    "e.g", "i.e", "vs", "approx", "fig", "figs", "dr", "mr", "mrs", "ms", "prof", "cf", "al", "ca", "incl",
    "resp",
})
# WordNet 3.0 lexicographer files in their numbered order, and the part-of-speech number of each prefix.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_wordnet_lock = threading.Lock()


def _has(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
        return True
    except LookupError:
        return False


@functools.lru_cache(maxsize=1)
def _tokenizers():
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    if _has("tokenizers/punkt_tab/english/"):
        from nltk.tokenize import sent_tokenize

        return "nltk.word_tokenize (punkt_tab english)", sent_tokenize, NLTKWordTokenizer()
    params = PunktParameters()
    params.abbrev_types = set(FALLBACK_ABBREVIATIONS)
    punkt = PunktSentenceTokenizer(params)
    return ("untrained Punkt + abbreviation list, then NLTK Treebank words (punkt_tab not installed)",
            punkt.tokenize, NLTKWordTokenizer())


def tokenizer_name() -> str:
    return _tokenizers()[0]


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (Punkt), also split at line breaks; fragments without letters (list numbers
    such as "2.") are joined to the sentence that follows them."""
    _, sentences_of, _ = _tokenizers()
    pieces = [s.strip() for line in text.splitlines() for s in sentences_of(line) if s.strip()]
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        if not any(ch.isalpha() for ch in piece):
            carry = f"{carry} {piece}".strip()
            continue
        merged.append(f"{carry} {piece}".strip() if carry else piece)
        carry = ""
    if carry:
        merged.append(carry)
    return merged


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`, or its documented offline equivalent (see the module docstring)."""
    _, sentences_of, words = _tokenizers()
    return [token for sentence in sentences_of(text) for token in words.tokenize(sentence)]


def nltk_data_root() -> Path:
    configured = os.environ.get(NLTK_DATA_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "wsi-llava" / "nltk_data"


def install_debian_wordnet(source: Path, root: Path) -> Path:
    """Lay Debian's WordNet files out as an NLTK corpus under `root` (written to a temp dir, renamed)."""
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for pattern in ("data.*", "index.*", "*.exc"):
            for path in source.glob(pattern):
                shutil.copy2(path, staging / path.name)
        lines = [f"{i:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}" for i, name in enumerate(_LEXNAMES)]
        (staging / "lexnames").write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "lexnames").is_file():   # not another process that won the race
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


@functools.lru_cache(maxsize=1)
def wordnet_reader():
    """NLTK's WordNet reader, loaded and checked, or None when no WordNet is available."""
    import nltk

    with _wordnet_lock:
        if not _has("corpora/wordnet"):
            source = next((d for d in WORDNET_SOURCE_DIRS if (d / "data.noun").is_file()), None)
            if source is None:
                return None
            root = nltk_data_root()
            try:
                install_debian_wordnet(source, root)
            except OSError:
                return None
            if str(root) not in nltk.data.path:
                nltk.data.path.append(str(root))
        from nltk.corpus import wordnet

        try:
            wordnet.ensure_loaded()
            wordnet.synsets("tumor")
        except (LookupError, OSError, ValueError):
            return None
        return wordnet
