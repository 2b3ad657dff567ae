"""Answering many questions at once: one padded batch, each row its own slide, equal to one-at-a-time.

`generate_batch(model, processor, requests, settings)` answers every `BatchRequest` (slide inputs + question +
seed) in ONE `generate()` call and returns, row by row, exactly what `SlideChatSession.generate_answer` returns
for that request alone (the generated ids and the answer), under the same `GenerationSettings`:

- The slide prefix once per slide: every prompt starts with the same ids up to its slide placeholders
  (system prompt, "USER: ", 576 `<image>`s), so, as `SlideChatSession` caches it per slide, that prefix is run
  once per DISTINCT slide of the batch (each slide's tokens computed alone: tile features of any length
  through the slide encoder, or released tokens, fitted to the projector's width) and its KV cache is given
  to every row of that slide. The rest of each prompt (the question) follows after padding in the middle:
  prefix, pad ... pad, question. So every prompt ends at column L, every answer starts at L, and the
  answer-only n-gram ban / repetition penalty (`modeling.inference.AnswerOnly`, prompt length L) see each
  row's own [BOS] + answer; position ids come from the attention mask (transformers' `generate`: cumsum - 1),
  so a row's tokens are positioned as they are alone.
- Sampling per row: transformers samples all rows from one global generator, so a batch would not equal a
  serial run. Here generation runs greedy on top of `PerRowSampler`, the last logits processor: it applies
  the sampling warpers `generate` would (temperature, top_k, top_p, in that order), then draws each row's
  token with `torch.multinomial` from that row's own `torch.Generator` seeded with the row's seed and
  returns one-hot scores. A serial run seeds the global generator with the same seed before each answer
  (`torch.manual_seed`), and `torch.multinomial` over one row draws the same numbers from either, so a
  batched sampled run equals the serial one with the same seeds (tested, with different prompt lengths and
  slide inputs in one batch).
- Stops per row: EOS, and the fork's stop words with each row's own official prompt length
  (`KeywordStop`); `_RowEnds` records where each row ended, and rows are cut there.

Beam search is not batched (`num_beams > 1` raises ModelError: answer one at a time).
On CPU in float32 the batched tokens equal the one-at-a-time ones (tested); in float16 on a GPU,
batched matrix products may round differently and an answer can drift after a near tie.

    requests = [BatchRequest(inputs_a, "What is the grade?", seed=0), BatchRequest(inputs_b, "Stage?", seed=0)]
    for result in generate_batch(model, processor, requests, GenerationSettings(seed=0)):
        print(result.answer)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor, StoppingCriteria, StoppingCriteriaList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from modeling.errors import ModelError
from modeling.generation_settings import GenerationSettings, finish_answer
from modeling.inference import (
    KeywordStop,
    check_prompt_fits,
    check_same_image_id,
    context_tokens,
    generate_kwargs,
    official_prompt_length,
    slide_prefix_end,
)
from modeling.slide_inputs import SlideInputs, check_compatible

# Sampling fields of a model's generation config that PerRowSampler does not apply: refused, never ignored.
_UNSUPPORTED_SAMPLING = ("top_h", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")


@dataclass
class BatchRequest:
    slide_inputs: SlideInputs
    question: str
    seed: int | None = None                   # None: settings.seed (None there too: drawn from torch's RNG)
    history: Sequence[tuple[str, str]] = ()   # earlier (question, answer) turns about the same slide


@dataclass
class BatchAnswer:
    token_ids: list[int]                      # the generated ids (incl. a final EOS), as generate_answer gives
    answer: str                               # decoded and finished (strip; the fork's trimming if set)
    seed: int | None = None                   # the seed its sampling used (None for greedy decoding)
    prompt_tokens: int = 0


@dataclass
class _Row:
    ids: list[int]
    official_length: int                      # the prompt's length with ONE image token (KeywordStop)
    slide_key: int
    seed: int | None = None


def sampling_warpers(model, settings: GenerationSettings) -> list[LogitsProcessor]:
    """The warpers `generate(do_sample=True)` applies after the logits processors, in its order: temperature,
    top_k (the model's generation config, else transformers' default 50), top_p. ModelError when the model's
    generation config sets a sampling option not restated here."""
    config = model.generation_config
    for name in _UNSUPPORTED_SAMPLING:
        value = getattr(config, name, None)
        if value is not None and value not in (0.0, 1.0):
            raise ModelError(f"The model's generation config sets {name}={value}, which batched sampling does not "
                             "apply; answer one at a time (batch size 1).")
    warpers: list[LogitsProcessor] = []
    if settings.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(settings.temperature))
    top_k = config.top_k if config.top_k is not None else GenerationConfig._get_default_generation_params()["top_k"]
    if top_k:
        warpers.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
    top_p = settings.top_p if settings.top_p is not None else config.top_p
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    return warpers


class PerRowSampler(LogitsProcessor):
    """Samples each row from its own generator; returns scores that are 0 at the drawn token, -inf elsewhere,
    so greedy decoding on top picks exactly the drawn token."""

    def __init__(self, warpers: Sequence[LogitsProcessor], seeds: Sequence[int]):
        self.warpers, self.seeds = list(warpers), list(seeds)
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:       # created on the logits' device: CUDA draws from a CUDA generator
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        warped = scores
        for warper in self.warpers:
            warped = warper(input_ids, warped)
        probs = torch.nn.functional.softmax(warped, dim=-1)                          # [B, V]
        drawn = torch.cat([torch.multinomial(probs[i:i + 1], num_samples=1, generator=generator)
                           for i, generator in enumerate(self.generators)])          # [B, 1]
        one_hot = torch.full_like(scores, float("-inf"))
        return one_hot.scatter_(1, drawn, 0.0)


class _RowEnds(StoppingCriteria):
    """Stops rows at the fork's stop words (each row with its own official prompt length) and records the
    sequence length at which each row ended (EOS, stop word); rows that never end run to max_new_tokens."""

    def __init__(self, eos_ids: set[int], keyword_stops: Sequence[KeywordStop] | None):
        self.eos_ids, self.keyword_stops = eos_ids, keyword_stops
        self.ends: dict[int, int] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        length = input_ids.shape[1]
        last = input_ids[:, -1].tolist()
        for row, token in enumerate(last):
            if row in self.ends:
                continue
            stopped = self.keyword_stops is not None and bool(self.keyword_stops[row](input_ids[row:row + 1], scores)[0])
            if token in self.eos_ids or stopped:
                self.ends[row] = length
        return torch.tensor([row in self.ends for row in range(len(last))], dtype=torch.bool,
                            device=input_ids.device)


def _eos_ids(model) -> set[int]:
    """The ids `generate` stops a row at (the generation config's), so rows end exactly where they end alone."""
    eos = model.generation_config.eos_token_id
    return set([eos] if isinstance(eos, int) else list(eos or []))


def _slide_tokens(model, inputs: SlideInputs, device) -> torch.Tensor:
    """One slide's tokens [1, S, slide_token_dim], computed alone by the model's own `encode_slide`."""
    with torch.inference_mode():
        return model.encode_slide(**inputs.model_kwargs(device))


def _rows(model, processor, requests: Sequence[BatchRequest], settings: GenerationSettings) -> list[_Row]:
    template = settings.conversation_template or processor.generation_template
    image_id = processor.image_token_id
    rows, keys = [], {}
    for request in requests:
        prompt = processor.build_prompt(request.question, request.history, template=template)
        ids, _ = processor.tokenize(prompt)
        check_prompt_fits(len(ids), settings.max_new_tokens, context_tokens(model.config), ids.count(image_id))
        key = keys.setdefault(id(request.slide_inputs), len(keys))
        seed = request.seed if request.seed is not None else settings.seed
        if seed is None and settings.do_sample:
            seed = int(torch.randint(0, 2 ** 62, ()).item())
        rows.append(_Row(ids, official_prompt_length(ids, image_id), key, seed if settings.do_sample else None))
    return rows


def _check(model, processor, requests: Sequence[BatchRequest], settings: GenerationSettings) -> None:
    if settings.num_beams > 1:
        raise ModelError(f"Batched generation does not do beam search (num_beams={settings.num_beams}); answer one "
                         "question at a time (batch size 1).")
    check_same_image_id(model, processor)
    for request in requests:
        check_compatible(request.slide_inputs, model.config)


def _slide_prefix(rows: list[_Row], image_id: int) -> list[int]:
    """The prompt up to the last slide placeholder: the same ids in every row (one template, the slide in the
    first question), so its KV cache is computed once per distinct slide."""
    first = rows[0].ids
    prefix = first[:slide_prefix_end(first, image_id)]
    for row in rows:
        if row.ids[:len(prefix)] != prefix or image_id in row.ids[len(prefix):]:
            raise ModelError("Batched prompts do not share their slide prefix (system prompt, slide placeholders); "
                             "answer them one at a time.")
    return prefix


def _prefix_cache(model, prefix: list[int], slides: list[torch.Tensor], rows: list[_Row], device):
    """The prefix run once per distinct slide ([S, P], no padding), then one cache row per request."""
    ids = torch.tensor([prefix] * len(slides), device=device)                        # [S, P]
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), slide_tokens=torch.cat(slides),
                    use_cache=True)
    out.cache.batch_select_indices(torch.tensor([row.slide_key for row in rows], device=device))   # [B, ...]
    return out.cache


def _middle_padded(rows: list[_Row], prefix_length: int, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L] ids and attention mask: the shared prefix, padding, then each row's own rest of the prompt, so
    every prompt ends at column L (answers start together) and positions (attention-mask cumsum) are the
    row's own."""
    width = max(len(row.ids) for row in rows)
    ids, mask = [], []
    for row in rows:
        pad, rest = width - len(row.ids), row.ids[prefix_length:]
        ids.append(row.ids[:prefix_length] + [pad_id] * pad + rest)
        mask.append([1] * prefix_length + [0] * pad + [1] * len(rest))
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


def _decoding(model, processor, rows: list[_Row], settings: GenerationSettings, length: int, lead: tuple) -> dict:
    """generate() arguments: the answer-only processors at prompt length L, per-row sampling and stops."""
    kwargs = generate_kwargs(settings, length, lead)
    if settings.do_sample:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("temperature", "top_p")} | {"do_sample": False}
        kwargs["logits_processor"] = list(kwargs.get("logits_processor", [])) + [
            PerRowSampler(sampling_warpers(model, settings), [row.seed for row in rows])]
    keyword_stops = None
    if settings.stop_words:
        keyword_stops = [KeywordStop(settings.stop_words, processor.tokenizer, length, row.official_length, lead)
                         for row in rows]
    kwargs["stopping_criteria"] = StoppingCriteriaList([_RowEnds(_eos_ids(model), keyword_stops)])
    return kwargs


def generate_batch(model, processor, requests: Sequence[BatchRequest],
                   settings: GenerationSettings | None = None) -> list[BatchAnswer]:
    """Answer every request in one padded `generate()`; row i equals request i answered alone."""
    settings = settings or GenerationSettings()
    if not requests:
        return []
    _check(model, processor, requests, settings)
    device = model.get_input_embeddings().weight.device
    rows = _rows(model, processor, requests, settings)
    slides: dict[int, torch.Tensor] = {}
    for request, row in zip(requests, rows):
        if row.slide_key not in slides:
            slides[row.slide_key] = _slide_tokens(model, request.slide_inputs, device)      # [1, S, D]
    prefix = _slide_prefix(rows, processor.image_token_id)
    cache = _prefix_cache(model, prefix, [slides[key] for key in sorted(slides)], rows, device)
    input_ids, attention_mask = _middle_padded(rows, len(prefix), processor.pad_token_id, device)   # [B, L]
    length = input_ids.shape[1]
    lead = () if processor.tokenizer.bos_token_id is None else (processor.tokenizer.bos_token_id,)
    kwargs = _decoding(model, processor, rows, settings, length, lead)
    ends = kwargs["stopping_criteria"][0]
    with torch.inference_mode():
        output = model.generate(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                                pad_token_id=processor.pad_token_id, **kwargs)
    answers = []
    for index, row in enumerate(rows):
        generated = output[index, length:ends.ends.get(index, output.shape[1])].tolist()
        text = finish_answer(settings, processor.decode_answer(generated))
        answers.append(BatchAnswer(generated, text, row.seed, len(row.ids)))
    return answers


__all__ = ["BatchRequest", "BatchAnswer", "generate_batch", "PerRowSampler", "sampling_warpers"]
