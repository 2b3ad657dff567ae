"""Answering questions about one slide: streamed generation and multi-turn chat with a cached slide prefix.

`SlideChatSession` runs the system prompt + "USER: " + the 576 slide tokens through the model once and
keeps that KV cache; every turn copies it and generates from the full conversation prompt, so turn 2+
never recomputes the slide. The prompt is tokenized in chunks split at `<image>`
(`WsiLlavaProcessor.tokenize`), so the slide prefix's token ids are identical in every turn and the
result equals a from-scratch `generate` on the same prompt (tested with greedy decoding).

Before any model work on a question, the prompt (template, question, slide tokens, earlier turns) plus
`max_new_tokens` is checked against the language model's context (`context_tokens`: its
`max_position_embeddings`, 4,096 for Vicuna-7B v1.5); a turn that would not fit is a ModelError naming both
numbers and the ways out (a shorter question, fewer new tokens, a new conversation).

The settings and their defaults live in `modeling.generation_settings` (official: WSI-LLaVA's
`model_vqa.py`). The official code generates from `inputs_embeds` with transformers 4.37.2, which starts
the output with a lone BOS: its n-gram ban, repetition penalty and the fork's stop words see [BOS] + the
answer, never the prompt. `AnswerOnly` and `KeywordStop` reproduce exactly that view.

    session = SlideChatSession(model, processor, load_slide_inputs("slide.pt"))
    for piece in session.stream("What is the histological type?"):
        print(piece, end="", flush=True)
    session.ask("And the grade?")          # turn 2 reuses the slide's KV cache
"""

from __future__ import annotations

import copy
import threading
from dataclasses import replace
from typing import Iterator

import torch
from transformers import (LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList,
                          TextIteratorStreamer)
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

from modeling.errors import ModelError
from modeling.generation_settings import GenerationSettings, finish_answer
from modeling.slide_inputs import SlideInputs, check_compatible

__all__ = ["GenerationSettings", "SlideChatSession", "stream_answer", "generate_kwargs", "AnswerOnly",
           "AnswerNoRepeatNGram", "KeywordStop", "context_tokens", "check_prompt_fits", "check_same_image_id",
           "slide_prefix_end", "official_prompt_length"]


def check_same_image_id(model, processor) -> None:
    """ModelError unless processor and model agree on the `<image>` placeholder id."""
    if processor.image_token_id != model.config.image_token_index:
        raise ModelError(f"Processor and model disagree on the `<image>` id ({processor.image_token_id} vs "
                         f"{model.config.image_token_index}); load both from the same checkpoint.")


def slide_prefix_end(prompt_ids: list[int], image_id: int) -> int:
    """Where the prompt's slide prefix ends: just after its last slide placeholder (its KV cache is reused)."""
    return max(i for i, token in enumerate(prompt_ids) if token == image_id) + 1


def official_prompt_length(prompt_ids: list[int], image_id: int) -> int:
    """The prompt's length as the official code counts it: one image token where ours holds the placeholders."""
    return len(prompt_ids) - prompt_ids.count(image_id) + 1


def context_tokens(model_config) -> int | None:
    """The language model's context in tokens (text config `max_position_embeddings`); None when it has none."""
    text_config = getattr(model_config, "text_config", model_config)
    value = getattr(text_config, "max_position_embeddings", None)
    return int(value) if value else None


def check_prompt_fits(prompt_tokens: int, max_new_tokens: int, context: int | None, num_slide_tokens: int) -> None:
    """ModelError when a prompt of `prompt_tokens` plus up to `max_new_tokens` would not fit in `context`."""
    needed = prompt_tokens + max_new_tokens
    if context is None or needed <= context:
        return
    room = context - prompt_tokens
    fewer = (f"allow at most {room:,} new tokens (max new tokens), " if room > 0 else "")
    raise ModelError(f"This question needs {needed:,} tokens, over the model's context of {context:,}: the prompt is "
                     f"{prompt_tokens:,} tokens (the question, the {num_slide_tokens} slide tokens and the conversation "
                     f"so far) and up to {max_new_tokens:,} new tokens are allowed. Ask a shorter question, {fewer}or "
                     "start a new conversation. Nothing was run.")


def generate_kwargs(settings: GenerationSettings, prompt_length: int, lead_ids: tuple[int, ...] = ()) -> dict:
    """`generate()` arguments for `settings`; the n-gram ban and the repetition penalty see `lead_ids`
    (the official [BOS]) + the tokens after `prompt_length`."""
    kwargs: dict = {"max_new_tokens": settings.max_new_tokens, "num_beams": settings.num_beams,
                    "do_sample": settings.do_sample}
    if settings.do_sample:
        kwargs["temperature"] = settings.temperature
        if settings.top_p is not None:
            kwargs["top_p"] = settings.top_p
    processors = LogitsProcessorList()
    if settings.repetition_penalty is not None and settings.repetition_penalty != 1.0:
        processors.append(AnswerOnly(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty), prompt_length,
                                     lead_ids))
    if settings.no_repeat_ngram_size:
        processors.append(AnswerNoRepeatNGram(settings.no_repeat_ngram_size, prompt_length, lead_ids))
    if processors:
        kwargs["logits_processor"] = processors
    return kwargs


class AnswerOnly(LogitsProcessor):
    """Runs `inner` on `lead_ids` + the generated answer (the tokens after `prompt_length`): what a logits
    processor sees when generation starts from `inputs_embeds` like the official code ([BOS] + answer)."""

    def __init__(self, inner: LogitsProcessor, prompt_length: int, lead_ids: tuple[int, ...] = ()):
        self.inner = inner
        self.prompt_length = prompt_length
        self.lead_ids = tuple(lead_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        answer = input_ids[:, self.prompt_length:]                                    # [B, T]
        if self.lead_ids:
            lead = torch.tensor(self.lead_ids, dtype=answer.dtype, device=answer.device).expand(answer.shape[0], -1)
            answer = torch.cat([lead, answer], dim=1)                                 # [B, len(lead) + T]
        return self.inner(answer, scores)


class AnswerNoRepeatNGram(AnswerOnly):
    """`no_repeat_ngram_size` applied to `lead_ids` + the generated answer (tokens after `prompt_length`)."""

    def __init__(self, ngram_size: int, prompt_length: int, lead_ids: tuple[int, ...] = ()):
        super().__init__(NoRepeatNGramLogitsProcessor(ngram_size), prompt_length, lead_ids)


class KeywordStop(StoppingCriteria):
    """The fork's `KeywordsStoppingCriteria` (model_vqa.py@8714afc), restated for our prompt layout.

    The fork sees `output_ids` = [BOS] + answer and a `start_len` = the length of ITS prompt ids (one image
    token where we have `num_slide_tokens`). It stops when the output ends with a keyword's ids (BOS
    stripped), or when a keyword occurs in the decoded `output[-offset:]`, offset = min(len(output) -
    start_len, longest keyword ids): negative while the output is shorter than its prompt, so that slice is
    empty up to half the prompt's length and then grows from index start_len - len(output), as there."""

    def __init__(self, keywords, tokenizer, prompt_length: int, official_prompt_length: int,
                 lead_ids: tuple[int, ...] = ()):
        self.keywords = list(keywords)
        self.tokenizer = tokenizer
        self.keyword_ids = []
        for keyword in self.keywords:
            ids = list(tokenizer(keyword).input_ids)
            if len(ids) > 1 and ids[0] == tokenizer.bos_token_id:
                ids = ids[1:]
            self.keyword_ids.append(ids)
        self.max_keyword_len = max((len(ids) for ids in self.keyword_ids), default=0)
        self.prompt_length, self.start_len, self.lead_ids = prompt_length, official_prompt_length, list(lead_ids)

    def _stops(self, output: list[int]) -> bool:
        if any(output[-len(ids):] == ids for ids in self.keyword_ids if ids):
            return True
        offset = min(len(output) - self.start_len, self.max_keyword_len)
        text = self.tokenizer.decode(output[-offset:], skip_special_tokens=True)
        return any(keyword in text for keyword in self.keywords)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        rows = [self._stops(self.lead_ids + row[self.prompt_length:].tolist()) for row in input_ids]
        return torch.tensor(rows, dtype=torch.bool, device=input_ids.device)


class SlideChatSession:
    """A conversation about one slide; keeps the slide prefix's KV cache across turns.

    The one place every caller (ask, evaluate predict, the app) hands slide inputs to the model, so the
    inputs' compatibility with the model is checked here, once. `history` holds the (question, answer)
    turns so far. Not thread-safe: one question at a time.
    """

    def __init__(self, model, processor, slide_inputs: SlideInputs, settings: GenerationSettings | None = None):
        check_compatible(slide_inputs, model.config)
        check_same_image_id(model, processor)
        self.model, self.processor, self.slide_inputs = model, processor, slide_inputs
        self.settings = settings or GenerationSettings()
        self.history: list[tuple[str, str]] = []
        self._prefix_ids: list[int] | None = None
        self._prefix_cache = None

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def template_name(self, settings: GenerationSettings | None = None) -> str:
        """The prompt template these settings use: theirs, else the processor's generation template."""
        return (settings or self.settings).conversation_template or self.processor.generation_template

    @property
    def lead_ids(self) -> tuple[int, ...]:
        """What the official generate's output starts with: the BOS (transformers 4.37.2, inputs_embeds)."""
        bos = self.processor.tokenizer.bos_token_id
        return () if bos is None else (bos,)

    def prepare(self, settings: GenerationSettings | None = None) -> None:
        """Encode the slide and run the prompt prefix now (the first question would do it lazily): the
        prefix ids do not depend on the question, since `WsiLlavaProcessor.tokenize` splits at `<image>`."""
        self._ensure_prefix(self._prompt_ids("", settings))

    def _prompt_ids(self, question: str, settings: GenerationSettings | None = None) -> list[int]:
        prompt = self.processor.build_prompt(question, self.history, template=self.template_name(settings))
        ids, _ = self.processor.tokenize(prompt)
        return ids

    def _checked_prompt_ids(self, question: str, settings: GenerationSettings) -> list[int]:
        prompt_ids = self._prompt_ids(question, settings)
        check_prompt_fits(len(prompt_ids), settings.max_new_tokens, context_tokens(self.model.config),
                          prompt_ids.count(self.processor.image_token_id))
        return prompt_ids

    def check_fits(self, question: str, settings: GenerationSettings | None = None) -> None:
        """ModelError (both numbers, what to do) when this turn would not fit the model's context; runs nothing.
        Every answer checks it anyway; callers use it to refuse before they print or schedule anything."""
        self._checked_prompt_ids(question, settings or self.settings)

    def _ensure_prefix(self, prompt_ids: list[int]) -> None:
        """Run the prompt up to the last slide placeholder once and keep its KV cache (again only when the
        prefix changed: another prompt template)."""
        end = slide_prefix_end(prompt_ids, self.processor.image_token_id)
        if self._prefix_cache is not None and prompt_ids[:end] == self._prefix_ids:
            return
        prefix = torch.tensor([prompt_ids[:end]], device=self.device)
        with torch.inference_mode():
            out = self.model(input_ids=prefix, attention_mask=torch.ones_like(prefix), use_cache=True,
                             **self.slide_inputs.model_kwargs(self.device))
        self._prefix_ids, self._prefix_cache = prompt_ids[:end], out.cache

    def _generate_kwargs(self, question: str, streamer=None, settings: GenerationSettings | None = None) -> dict:
        settings = settings or self.settings
        prompt_ids = self._checked_prompt_ids(question, settings)
        self._ensure_prefix(prompt_ids)
        input_ids = torch.tensor([prompt_ids], device=self.device)
        cache = copy.deepcopy(self._prefix_cache)
        if settings.num_beams > 1:      # generate expands the prompt to the beams, but not a given cache
            cache.batch_repeat_interleave(settings.num_beams)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), cache=cache, streamer=streamer,
                      pad_token_id=self.processor.pad_token_id,
                      **generate_kwargs(settings, len(prompt_ids), self.lead_ids))
        criteria = StoppingCriteriaList()
        if settings.stop_words:
            # the official prompt holds one image token where ours holds num_slide_tokens placeholders
            official_length = official_prompt_length(prompt_ids, self.processor.image_token_id)
            criteria.append(KeywordStop(settings.stop_words, self.processor.tokenizer, len(prompt_ids),
                                        official_length, self.lead_ids))
        kwargs["stopping_criteria"] = criteria
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        return kwargs

    def _answer(self, output: torch.Tensor, prompt_length: int, settings: GenerationSettings | None) -> str:
        decoded = self.processor.decode_answer(output[0, prompt_length:])
        return finish_answer(settings or self.settings, decoded)

    def generate_answer(self, question: str, settings: GenerationSettings | None = None) -> tuple[list[int], str]:
        """Answer `question` (blocking), append the turn to `history`; returns (generated ids, answer)."""
        kwargs = self._generate_kwargs(question, settings=settings)
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        prompt_length = kwargs["input_ids"].shape[1]
        answer = self._answer(output, prompt_length, settings)
        self.history.append((question, answer))
        return output[0, prompt_length:].tolist(), answer

    def ask(self, question: str, settings: GenerationSettings | None = None) -> str:
        """Answer `question` (blocking) and append the turn to `history`."""
        return self.generate_answer(question, settings)[1]

    def stream(self, question: str, settings: GenerationSettings | None = None) -> Iterator[str]:
        """Yield the answer's text as it is generated; the full answer joins `history` at the end (trimmed
        when the settings trim answers: the streamed pieces are the raw text).

        Closing the iterator early (the reader stopped) stops the generation at its next token; the
        unfinished answer does not join `history`."""
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generate_kwargs(question, streamer=streamer, settings=settings)
        cancelled = threading.Event()
        kwargs.setdefault("stopping_criteria", StoppingCriteriaList()).append(_StopWhenSet(cancelled))
        failure: list[BaseException] = []
        result: list[torch.Tensor] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    result.append(self.model.generate(**kwargs))
            except BaseException as exc:  # re-raised in the consumer below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, name="wsi-llava-generate", daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            cancelled.set()          # a no-op when generation already ended; otherwise it stops now
            thread.join()
        if failure:
            raise failure[0]
        self.history.append((question, self._answer(result[0], kwargs["input_ids"].shape[1], settings)))


class _StopWhenSet(StoppingCriteria):
    """Stops every sequence once `event` is set (checked after each generated token)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def stream_answer(model, processor, slide_inputs: SlideInputs, question: str,
                  history: list[tuple[str, str]] | tuple = (), settings: GenerationSettings | None = None,
                  **overrides) -> Iterator[str]:
    """Stream one answer about a slide (optionally after earlier turns); `overrides` adjust the settings,
    e.g. `stream_answer(..., temperature=0.0, max_new_tokens=64)`."""
    settings = replace(settings or GenerationSettings(), **overrides)
    session = SlideChatSession(model, processor, slide_inputs, settings)
    session.history = list(history)
    yield from session.stream(question)
