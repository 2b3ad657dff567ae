"""`evaluate predict --batch-size N` (N > 1): answer items N at a time, across slides, in one generate call.

`BatchedAnswers.add(path, items)` reads a slide's inputs once (a `ModelError` fails all its items, as the
one-at-a-time path does) and queues its questions (a question over `max_question_chars` fails its item, nothing
run); every `batch_size` queued questions are answered by
`modeling.batch_generation.generate_batch`, whose rows equal the one-at-a-time answers token for token
(greedy and sampled, each row seeded with the run's seed, as one-at-a-time seeds every answer). When a
batch fails with a `ModelError` (one bad question), its questions are answered one by one so the failure
lands on the item it belongs to. `finish()` answers what is left.

    answers = BatchedAnswers(loaded, config.generation, 16, write, fail)
    answers.add(path, slide_items); ...; answers.finish()
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from modeling.generation_settings import DEFAULT_MAX_QUESTION_CHARS, GenerationSettings


class BatchedAnswers:
    def __init__(self, loaded, settings: GenerationSettings, batch_size: int, write: Callable, fail: Callable,
                 max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS):
        self.loaded, self.settings, self.batch_size = loaded, settings, batch_size
        self.max_question_chars = max_question_chars
        self.write, self.fail = write, fail
        self.queue: list[tuple] = []               # (item, SlideInputs)

    def add(self, path: Path, items: Sequence) -> None:
        from modeling.errors import ModelError
        from modeling.generation_settings import check_question_length
        from modeling.model_inputs import slide_model_inputs
        from modeling.slide_inputs import check_compatible

        try:
            inputs = slide_model_inputs(path, self.loaded)
            check_compatible(inputs, self.loaded.model.config)
        except ModelError as exc:
            for item in items:
                self.fail(item, exc)
            return
        for item in items:
            try:
                check_question_length(item.question, self.max_question_chars)
            except ModelError as exc:
                self.fail(item, exc)
                continue
            self.queue.append((item, inputs))
            if len(self.queue) >= self.batch_size:
                self._run(self.queue[:self.batch_size])
                self.queue = self.queue[self.batch_size:]

    def finish(self) -> None:
        if self.queue:
            self._run(self.queue)
            self.queue = []

    def _run(self, queued: list[tuple]) -> None:
        from modeling.batch_generation import BatchRequest, generate_batch
        from modeling.errors import ModelError

        model, processor = self.loaded.model, self.loaded.processor
        requests = [BatchRequest(inputs, item.question) for item, inputs in queued]
        try:
            answers = generate_batch(model, processor, requests, self.settings)
        except ModelError as exc:
            if len(queued) == 1:
                self.fail(queued[0][0], exc)
                return
            for one in queued:                   # find the item the error belongs to
                self._run([one])
            return
        for (item, inputs), answer in zip(queued, answers, strict=True):
            self.write(item, answer.answer, inputs.slide_token_source(model.config))
