"""The tiny random demo model `wsi-llava-tiny-random`: the real architecture at toy size, built offline.

It has a LLaMA-style tokenizer (a sentencepiece BPE model trained in-process on a small built-in
pathology corpus, loaded through `LlamaTokenizer` like Vicuna's), a 2-layer LLaMA, a 1-layer LongNet
slide encoder, 576 slide tokens and a projector taking 1024-d tokens: it accepts released `.pt` slide
tokens as they are, and features of the offline `random-tiny` tile encoder (192-d), so
`wsi-llava ask SLIDE` runs end to end without any download.
Its weights are random: it exists for tests and demos and says so (`is_trained=False`).

    python -c "from modeling.demo_model import build_demo_checkpoint; build_demo_checkpoint('demo')"
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from modeling.conversation import LLAVA_V1, VICUNA_V1

DEMO_MODEL_NAME = "wsi-llava-tiny-random"

_CORPUS = [
    VICUNA_V1.system, LLAVA_V1.system,
    "USER: <image>\nWhat is the histological type of this tumor? ASSISTANT: Invasive ductal carcinoma.",
    "The slide shows invasive ductal carcinoma of the breast with moderate differentiation.",
    "Tumor cells are arranged in nests, cords and glands with pleomorphic nuclei and frequent mitoses.",
    "Lung adenocarcinoma, acinar predominant pattern, grade 2. Lymphovascular invasion is present.",
    "Clear cell renal cell carcinoma with alveolar architecture and delicate vasculature, Fuhrman grade 3.",
    "Glioblastoma with microvascular proliferation and pseudopalisading necrosis; IDH wild-type.",
    "Squamous cell carcinoma with keratin pearls and intercellular bridges infiltrating the stroma.",
    "The stage is pT2 N1 M0. Prognosis is intermediate; adjuvant chemotherapy is recommended.",
    "Answer with the option's letter from the given choices directly. A) Grade 1 B) Grade 2 C) Grade 3",
    "Describe the global morphology, the tissue architecture, cellular morphology and infiltration.",
    "Is the tumor well, moderately or poorly differentiated? Yes. No. The molecular subtype is luminal A.",
    "0123456789 %.,;:!?()[]-/'\" lymph node metastasis necrosis stroma epithelium nucleoli chromatin",
]


def train_tokenizer(out_dir: str | Path, vocab_size: int = 512, corpus: list[str] | None = None,
                    remove_extra_whitespaces: bool = False):
    """Train a BPE sentencepiece model into `out_dir/tokenizer.model`; return it as a LlamaTokenizer.

    Settings follow LLaMA's tokenizer.model: BPE, byte fallback, split digits, identity normalisation with
    the dummy prefix and WITHOUT removing extra whitespace (so "USER: " keeps its trailing "▁", as LLaMA's
    ids before the image do), whitespace-only pieces allowed, <unk>=0, <s>=1, </s>=2, BOS added.
    `remove_extra_whitespaces=True` (sentencepiece's own default, not LLaMA's) exists for tests.
    """
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter((corpus or _CORPUS) * 8), model_writer=model, vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, normalization_rule_name="identity", character_coverage=1.0,
        remove_extra_whitespaces=remove_extra_whitespaces, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False,
        num_threads=1, minloglevel=2)
    (out_dir / "tokenizer.model").write_bytes(model.getvalue())
    return LlamaTokenizer.from_pretrained(str(out_dir), add_bos_token=True, add_eos_token=False, legacy=False)


def tiny_text_config(vocab_size: int, **overrides) -> dict:
    """A 2-layer LLaMA config dict (hidden 64, 4 heads, 2 KV heads)."""
    config = dict(model_type="llama", vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                  tie_word_embeddings=False)
    return config | overrides


DEMO_TILE_ENCODER, DEMO_TILE_FEATURE_DIM = "random-tiny", 192


def tiny_slide_encoder_config(in_dim: int = DEMO_TILE_FEATURE_DIM, num_slide_tokens: int = 576, **overrides) -> dict:
    """A 1-layer LongNet slide encoder config dict (embed 32, 4 heads, two dilated branches)."""
    config = dict(in_dim=in_dim, embed_dim=32, depth=1, num_heads=4, segment_lengths=[64, 256],
                  dilated_ratios=[1, 2], num_slide_tokens=num_slide_tokens)
    return config | overrides


def build_demo(seed: int = 0):
    """(model, processor) of the demo: random weights (seeded), is_trained=False."""
    import torch

    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(tmp)
    image_token_index = WsiLlavaProcessor.add_image_token(tokenizer)
    config = WsiLlavaConfig(
        text_config=tiny_text_config(len(tokenizer)), slide_encoder_config=tiny_slide_encoder_config(),
        tile_encoder=DEMO_TILE_ENCODER, tile_feature_dim=DEMO_TILE_FEATURE_DIM, slide_token_dim=1024,
        image_token_index=image_token_index, language_model_source=None, slide_encoder_source=None, is_trained=False,
        display_name=f"{DEMO_MODEL_NAME} (random weights, untrained: for tests and demos only)")
    torch.manual_seed(seed)
    model = WsiLlavaForConditionalGeneration(config).eval()
    processor = WsiLlavaProcessor(tokenizer=tokenizer, num_slide_tokens=config.num_slide_tokens)
    return model, processor


def build_demo_checkpoint(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the demo model and its processor to `out_dir` (safetensors); returns the folder."""
    model, processor = build_demo(seed)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return Path(out_dir)
