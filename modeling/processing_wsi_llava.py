"""`WsiLlavaProcessor`: tokenizer + conversation template + the `<image>` slide placeholder.

It turns conversations into model inputs the way WSI-LLaVA's training did (LLaVA-1.5 `preprocess_v1`
with `tokenizer_image_token`), except that the single `<image>` becomes `num_slide_tokens` placeholder
ids in `input_ids` (the model scatters the projected slide tokens into them):

- `processor(conversations)` -> input_ids / attention_mask / labels (right-padded batch) for training;
  labels are -100 everywhere except the assistant answers (each with its closing "</s>").
- `processor.encode_prompt(question, history)` -> a generation prompt ending in "ASSISTANT:".

Two templates, as WSI-LLaVA used them: `conversation_template` for training conversations (vicuna_v1,
`finetune_lora.sh --version v1`) and `generation_template` for generation prompts (llava_v1,
`wsi-vqa.sh --conv-mode llava_v1`); both are saved with the processor.

Text is tokenized in chunks around `<image>` exactly like LLaVA's `tokenizer_image_token` (each chunk
on its own, BOS kept only on the first), so token ids match the original code. It saves and loads
beside the model (`save_pretrained` / `AutoProcessor.from_pretrained`).

    processor = WsiLlavaProcessor.from_pretrained("path/to/checkpoint")
    batch = processor([[{"from": "human", "value": "<image>\\nGrade?"}, {"from": "gpt", "value": "G2."}]])
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import BatchFeature, ProcessorMixin

from modeling.conversation import (
    IMAGE_PLACEHOLDER,
    INFERENCE_TEMPLATE,
    TRAINING_TEMPLATE,
    get_template,
    messages_from_turns,
)
from modeling.errors import ModelError

IGNORE_INDEX = -100


class WsiLlavaProcessor(ProcessorMixin):
    """Args: tokenizer (with `image_token` in its vocabulary, see `add_image_token`), num_slide_tokens
    (placeholders per slide, 576), image_token ("<image>"), conversation_template (training conversations;
    a key of `modeling.conversation.TEMPLATES`, "vicuna_v1"), generation_template (generation prompts,
    "llava_v1")."""

    def __init__(self, tokenizer=None, num_slide_tokens: int = 576, image_token: str = IMAGE_PLACEHOLDER,
                 conversation_template: str = TRAINING_TEMPLATE, generation_template: str = INFERENCE_TEMPLATE,
                 chat_template=None, **kwargs):
        if not isinstance(num_slide_tokens, int) or num_slide_tokens <= 0:
            raise ModelError(f"WsiLlavaProcessor.num_slide_tokens must be a positive integer, got {num_slide_tokens!r}")
        self.num_slide_tokens = num_slide_tokens
        self.image_token = image_token
        try:
            self.template = get_template(conversation_template)
            get_template(generation_template)
        except ValueError as exc:
            raise ModelError(f"WsiLlavaProcessor: {exc}") from exc
        self.conversation_template = conversation_template
        self.generation_template = generation_template
        super().__init__(tokenizer, chat_template=chat_template)
        if image_token not in tokenizer.get_vocab():
            raise ModelError(f"The tokenizer has no {image_token!r} token; call "
                             "WsiLlavaProcessor.add_image_token(tokenizer) (and resize the model's embeddings) first.")
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        # LLaMA tokenizers: `legacy` decides whether text after a special token ("</s>USER: ...", every
        # turn after the first) gets the "▁" prefix. transformers 5 does not save it and reloads as
        # legacy=False, so record it for save_pretrained: a reloaded processor must give the same ids.
        if isinstance(getattr(tokenizer, "legacy", None), bool):
            tokenizer.init_kwargs["legacy"] = tokenizer.legacy

    @staticmethod
    def add_image_token(tokenizer, image_token: str = IMAGE_PLACEHOLDER) -> int:
        """Add `image_token` as a special token (no-op if present); returns its id."""
        if image_token not in tokenizer.get_vocab():
            tokenizer.add_tokens([image_token], special_tokens=True)
        return tokenizer.convert_tokens_to_ids(image_token)

    @property
    def pad_token_id(self) -> int:
        """LLaVA v1 pads with `<unk>`; otherwise the tokenizer's pad, else its EOS."""
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.unk_token_id, tok.eos_token_id):
            if candidate is not None:
                return candidate
        raise ModelError("The tokenizer has no pad, unk or eos token to pad batches with.")

    # -- tokenization ---------------------------------------------------------------------------------
    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Text with at most one `<image>` -> (ids with num_slide_tokens placeholders, char offsets)."""
        chunks = text.split(self.image_token)
        if len(chunks) > 2:
            raise ModelError(f"A conversation holds {len(chunks) - 1} {self.image_token!r} placeholders; "
                             "WSI-LLaVA takes exactly one slide per conversation.")
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        strip_bos = False
        position = 0
        for index, chunk in enumerate(chunks):
            if index > 0:
                ids += [self.image_token_id] * self.num_slide_tokens
                offsets += [(position, position + len(self.image_token))] * self.num_slide_tokens
                position += len(self.image_token)
            try:
                encoded = self.tokenizer(chunk, return_offsets_mapping=True)
            except NotImplementedError as exc:
                raise ModelError(f"{type(self.tokenizer).__name__} cannot return character offsets (needed to "
                                 "label the answers); load the tokenizer with its tokenizers backend "
                                 "(tokenizer.json / AutoTokenizer).") from exc
            chunk_ids, chunk_offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
            if index == 0:
                strip_bos = bool(chunk_ids) and chunk_ids[0] == self.tokenizer.bos_token_id
            elif strip_bos:
                chunk_ids, chunk_offsets = chunk_ids[1:], chunk_offsets[1:]
            ids += chunk_ids
            offsets += [(start + position, end + position) for start, end in chunk_offsets]
            position += len(chunk)
        return ids, offsets

    def encode_conversation(self, turns: Sequence[dict], max_length: int | None = None) -> dict[str, list[int]]:
        """One training conversation -> {"input_ids", "labels"} (labels -100 outside the answers).

        `turns`: LLaVA JSON (`from` human/gpt, `value`) or chat messages (`role`, `content`), ending with
        an answer. `max_length` counts the expanded sequence; truncating into the slide placeholders
        is an error.
        """
        try:
            messages = messages_from_turns(turns)
        except ValueError as exc:
            raise ModelError(f"Cannot encode conversation: {exc}") from exc
        if not messages or len(messages) % 2:
            raise ModelError(f"A training conversation must end with an assistant answer; got {len(messages)} turns.")
        text, spans = self.template.render(messages)
        ids, offsets = self.tokenize(text)
        labels = [token if any(end > s and start < e for s, e in spans) else IGNORE_INDEX
                  for token, (start, end) in zip(ids, offsets, strict=True)]
        labels = [IGNORE_INDEX if token == self.image_token_id else label
                  for token, label in zip(ids, labels, strict=True)]
        if max_length is not None and len(ids) > max_length:
            if ids[max_length:].count(self.image_token_id):
                raise ModelError(f"max_length={max_length} would cut into the {self.num_slide_tokens} slide "
                                 f"placeholders (conversation is {len(ids)} tokens); raise max_length.")
            ids, labels = ids[:max_length], labels[:max_length]
        return {"input_ids": ids, "labels": labels}

    def build_prompt(self, question: str, history: Sequence[tuple[str, str]] = (), with_slide: bool = True,
                     template: str | None = None) -> str:
        """The generation prompt: earlier (question, answer) turns, then `question`, ending "ASSISTANT:".

        `template` defaults to `generation_template` (llava_v1, as `wsi-vqa.sh`). With `with_slide`, the first
        question carries the slide placeholder: "<image>\\n" + the question as it is (unstripped), as
        WSI-LLaVA's `model_vqa.py` and LLaVA's `serve/cli.py` build it. A question that holds `<image>`
        itself is normalised like training data (`normalize_image_placeholder`).
        """
        questions = [q for q, _ in history] + [question]
        verbatim_first = with_slide and self.image_token not in questions[0]
        if verbatim_first:
            questions[0] = f"{self.image_token}\n{questions[0]}"
        turns: list[dict] = []
        for index, q in enumerate(questions):
            turns.append({"from": "human", "value": q})
            if index < len(history):
                turns.append({"from": "gpt", "value": history[index][1]})
        try:
            messages: list[str | None] = list(messages_from_turns(turns))
        except ValueError as exc:
            raise ModelError(f"Cannot build prompt: {exc}") from exc
        if verbatim_first:
            messages[0] = questions[0]
        try:
            chosen = get_template(template or self.generation_template)
        except ValueError as exc:
            raise ModelError(f"Cannot build prompt: {exc}") from exc
        return chosen.render(messages + [None])[0]

    def encode_prompt(self, question: str, history: Sequence[tuple[str, str]] = (),
                      with_slide: bool = True, template: str | None = None) -> BatchFeature:
        """`build_prompt` tokenized: input_ids / attention_mask of shape [1, L]."""
        ids, _ = self.tokenize(self.build_prompt(question, history, with_slide, template))
        return BatchFeature({"input_ids": torch.tensor([ids]),
                             "attention_mask": torch.ones(1, len(ids), dtype=torch.long)})

    # -- batching ------------------------------------------------------------------------------------
    def collate(self, encodings: Sequence[dict[str, list[int]]], padding_side: str = "right") -> BatchFeature:
        """Pad encoded conversations into tensors: input_ids (pad id), attention_mask (0), labels (-100)."""
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        width = max(len(e["input_ids"]) for e in encodings)
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for e in encodings:
            n, pad = len(e["input_ids"]), width - len(e["input_ids"])
            rows = {"input_ids": (e["input_ids"], self.pad_token_id), "attention_mask": ([1] * n, 0)}
            if "labels" in e:
                rows["labels"] = (e["labels"], IGNORE_INDEX)
            for key, (values, fill) in rows.items():
                padding = [fill] * pad
                batch[key].append(list(values) + padding if padding_side == "right" else padding + list(values))
        return BatchFeature({k: torch.tensor(v) for k, v in batch.items() if v})

    def __call__(self, conversations: Sequence[Sequence[dict]] | Sequence[dict], max_length: int | None = None,
                 **kwargs) -> BatchFeature:
        """Training conversations (one, or a list) -> a right-padded batch with labels."""
        if conversations and isinstance(conversations[0], dict):
            conversations = [conversations]
        return self.collate([self.encode_conversation(c, max_length) for c in conversations])

    def decode_answer(self, token_ids) -> str:
        """Generated ids (answer only) -> text, special tokens removed, stripped like LLaVA's eval
        (`batch_decode(..., skip_special_tokens=True)[0].strip()`). A LLaMA tokenizer decodes as the official
        slow (sentencepiece) one does, which differs from the fast one on invalid UTF-8 byte pieces."""
        from transformers import LlamaTokenizer

        if not isinstance(self.tokenizer, LlamaTokenizer):
            return self.tokenizer.decode(token_ids, skip_special_tokens=True).strip()
        from modeling.tokenizer_parity import sentencepiece_text

        ids = token_ids.tolist() if hasattr(token_ids, "tolist") else list(token_ids)
        return sentencepiece_text(self.tokenizer.convert_ids_to_tokens(ids, skip_special_tokens=True)).strip()


__all__ = ["WsiLlavaProcessor", "IGNORE_INDEX"]
