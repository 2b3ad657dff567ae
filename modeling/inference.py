"""Answering questions about one slide: streamed generation and multi-turn chat with a cached slide prefix.

`SlideChatSession` runs the system prompt + "USER: " + the 576 slide tokens through the model once and
keeps that KV cache; every turn copies it and generates from the full conversation prompt, so turn 2+
never recomputes the slide. The prompt is tokenized in chunks split at `<image>`
(`WsiLlavaProcessor.tokenize`), so the slide prefix's token ids are identical in every turn and the
result equals a from-scratch `generate` on the same prompt (tested with greedy decoding).

Defaults follow WSI-LLaVA's official inference (`model_vqa.py`): sampling at temperature 0.2,
num_beams 1, no_repeat_ngram_size 3, at most 1024 new tokens. The official code generates from
`inputs_embeds`, so its n-gram ban (and a repetition penalty, when one is set) sees only the answer
being generated, never the prompt; `AnswerOnly` reproduces that.

    session = SlideChatSession(model, processor, load_slide_inputs("slide.pt"))
    for piece in session.stream("What is the histological type?"):
        print(piece, end="", flush=True)
    session.ask("And the grade?")          # turn 2 reuses the slide's KV cache
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, replace
from typing import Iterator

import torch
from transformers import (LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList,
                          TextIteratorStreamer)
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

from modeling.errors import ModelError
from modeling.slide_inputs import SlideInputs, check_compatible


@dataclass(frozen=True)
class GenerationSettings:
    """Official WSI-LLaVA inference defaults; temperature 0 means greedy decoding."""

    temperature: float = 0.2
    top_p: float | None = None
    num_beams: int = 1
    no_repeat_ngram_size: int = 3        # over the answer only, as in the official inputs_embeds generation
    max_new_tokens: int = 1024           # model_vqa.py's limit
    repetition_penalty: float | None = None   # over the answer only, likewise
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ModelError(f"GenerationSettings.temperature must be >= 0, got {self.temperature}")
        if self.max_new_tokens <= 0:
            raise ModelError(f"GenerationSettings.max_new_tokens must be positive, got {self.max_new_tokens}")
        if self.no_repeat_ngram_size < 0 or self.num_beams < 1:
            raise ModelError("GenerationSettings: no_repeat_ngram_size must be >= 0 and num_beams >= 1")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ModelError(f"GenerationSettings.repetition_penalty must be > 0, got {self.repetition_penalty}")

    @classmethod
    def greedy(cls, **overrides) -> "GenerationSettings":
        return cls(temperature=0.0, **overrides)

    def generate_kwargs(self, prompt_length: int) -> dict:
        kwargs: dict = {"max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams,
                        "do_sample": self.temperature > 0}
        if self.temperature > 0:
            kwargs["temperature"] = self.temperature
            if self.top_p is not None:
                kwargs["top_p"] = self.top_p
        processors = LogitsProcessorList()
        if self.repetition_penalty is not None and self.repetition_penalty != 1.0:
            processors.append(AnswerOnly(RepetitionPenaltyLogitsProcessor(self.repetition_penalty), prompt_length))
        if self.no_repeat_ngram_size:
            processors.append(AnswerNoRepeatNGram(self.no_repeat_ngram_size, prompt_length))
        if processors:
            kwargs["logits_processor"] = processors
        return kwargs


class AnswerOnly(LogitsProcessor):
    """Runs `inner` on the generated answer only (the tokens after `prompt_length`), as a logits
    processor sees it when generation starts from `inputs_embeds` like the official code."""

    def __init__(self, inner: LogitsProcessor, prompt_length: int):
        self.inner = inner
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.inner(input_ids[:, self.prompt_length:], scores)


class AnswerNoRepeatNGram(AnswerOnly):
    """`no_repeat_ngram_size` applied to the generated answer only (tokens after `prompt_length`)."""

    def __init__(self, ngram_size: int, prompt_length: int):
        super().__init__(NoRepeatNGramLogitsProcessor(ngram_size), prompt_length)


class SlideChatSession:
    """A conversation about one slide; keeps the slide prefix's KV cache across turns.

    `history` holds the (question, answer) turns so far. Not thread-safe: one question at a time.
    """

    def __init__(self, model, processor, slide_inputs: SlideInputs, settings: GenerationSettings | None = None):
        check_compatible(slide_inputs, model.config)
        if processor.image_token_id != model.config.image_token_index:
            raise ModelError(f"Processor and model disagree on the `<image>` id ({processor.image_token_id} vs "
                             f"{model.config.image_token_index}); load both from the same checkpoint.")
        self.model, self.processor, self.slide_inputs = model, processor, slide_inputs
        self.settings = settings or GenerationSettings()
        self.history: list[tuple[str, str]] = []
        self._prefix_ids: list[int] | None = None
        self._prefix_cache = None

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def prepare(self) -> None:
        """Encode the slide and run the prompt prefix now (the first question would do it lazily): the
        prefix ids do not depend on the question, since `WsiLlavaProcessor.tokenize` splits at `<image>`."""
        self._ensure_prefix(self._prompt_ids(""))

    def _prompt_ids(self, question: str) -> list[int]:
        ids, _ = self.processor.tokenize(self.processor.build_prompt(question, self.history))
        return ids

    def _ensure_prefix(self, prompt_ids: list[int]) -> None:
        """Run the prompt up to the last slide placeholder once and keep its KV cache."""
        if self._prefix_cache is not None:
            # WsiLlavaProcessor.tokenize splits at `<image>`, so the prefix ids are the same in every turn
            assert prompt_ids[: len(self._prefix_ids)] == self._prefix_ids, "slide prefix changed between turns"
            return
        image_id = self.processor.image_token_id
        end = max(i for i, token in enumerate(prompt_ids) if token == image_id) + 1
        prefix = torch.tensor([prompt_ids[:end]], device=self.device)
        with torch.inference_mode():
            out = self.model(input_ids=prefix, attention_mask=torch.ones_like(prefix), use_cache=True,
                             **self.slide_inputs.model_kwargs(self.device))
        self._prefix_ids, self._prefix_cache = prompt_ids[:end], out.cache

    def _generate_kwargs(self, question: str, streamer=None, settings: GenerationSettings | None = None) -> dict:
        settings = settings or self.settings
        prompt_ids = self._prompt_ids(question)
        self._ensure_prefix(prompt_ids)
        input_ids = torch.tensor([prompt_ids], device=self.device)
        cache = copy.deepcopy(self._prefix_cache)
        if settings.num_beams > 1:      # generate expands the prompt to the beams, but not a given cache
            cache.batch_repeat_interleave(settings.num_beams)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), cache=cache, streamer=streamer,
                      pad_token_id=self.processor.pad_token_id, **settings.generate_kwargs(len(prompt_ids)))
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        return kwargs

    def ask(self, question: str, settings: GenerationSettings | None = None) -> str:
        """Answer `question` (blocking) and append the turn to `history`."""
        kwargs = self._generate_kwargs(question, settings=settings)
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        answer = self.processor.decode_answer(output[0, kwargs["input_ids"].shape[1]:])
        self.history.append((question, answer))
        return answer

    def stream(self, question: str, settings: GenerationSettings | None = None) -> Iterator[str]:
        """Yield the answer's text as it is generated; the full answer joins `history` at the end.

        Closing the iterator early (the reader stopped) stops the generation at its next token; the
        unfinished answer does not join `history`."""
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generate_kwargs(question, streamer=streamer, settings=settings)
        cancelled = threading.Event()
        kwargs["stopping_criteria"] = StoppingCriteriaList([_StopWhenSet(cancelled)])
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
        answer = self.processor.decode_answer(result[0][0, kwargs["input_ids"].shape[1]:])
        self.history.append((question, answer))


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
