"""WSI-Bench examples for the Slide Q&A tab: benchmark slides whose released slide tokens (or features
h5) are available, each with its WSI-Bench questions and reference answers.

Features come from a local folder or a Hub dataset (`Lucas-yuc/WSIBench-pt`: one `.pt` per slide,
stored as the benchmark's `image` path, e.g. `TCGA-BRCA/<slide>.pt`). A slide's file is looked up
like `evaluate predict` does (`modeling.slide_inputs.slide_input_candidates`); a candidate outside the
features root is never read.

    catalog = ExampleCatalog(benchmark="WSI-Bench/", features="WSIBench-pt/", split="test", max_slides=100)
    examples = catalog.load()                   # slides with features, sorted; EvaluationError with the reason
    catalog.report                              # items read, slides, slides without features, problems
    path = catalog.features_file(catalog.get(examples[0].slide_id))   # downloaded first for a Hub dataset
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from common.hub import hub_reason, hub_unreachable, looks_like_hub_id
from evaluation.errors import EvaluationError
from wsi_bench.errors import BenchError
from wsi_bench.files import BenchItem, read_benchmark
from wsi_bench.tasks import TASKS, resolve_task

_TASK_ORDER = {spec.task: index for index, spec in enumerate(TASKS)}


@dataclass
class SlideExample:
    slide_id: str
    image: str                   # the benchmark's image path, e.g. "TCGA-BRCA/<slide>.pt"
    features_ref: str            # the features file: relative to the local root, or a path in the Hub dataset
    items: list[BenchItem]       # its WSI-Bench questions, in task-table order

    @property
    def label(self) -> str:
        project = PurePosixPath(self.image).parent.name
        count = len(self.items)
        return f"{self.slide_id}{f' ({project})' if project else ''} · {count} question{'' if count == 1 else 's'}"

    def question_label(self, index: int) -> str:
        item = self.items[index]
        question = item.question if len(item.question) <= 90 else item.question[:87] + "..."
        return f"{resolve_task(item.task).title}: {question}"


@dataclass
class CatalogReport:
    benchmark: str
    features: str
    n_items: int = 0
    n_slides: int = 0
    n_with_features: int = 0
    n_shown: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.n_shown} example slides ({self.n_with_features} of {self.n_slides} benchmark slides have "
                f"features; {self.n_items} questions read)")
        return text + (f"; {len(self.problems)} records skipped" if self.problems else "")


class ExampleCatalog:
    def __init__(self, benchmark: str, features: str, split: str | None = "test", max_slides: int = 100,
                 revision: str | None = None):
        if max_slides < 1:
            raise EvaluationError(f"max_slides must be >= 1, got {max_slides}.")
        self.benchmark, self.features, self.split = benchmark, features, split
        self.max_slides, self.revision = max_slides, revision
        self.on_hub = looks_like_hub_id(features)
        self.report = CatalogReport(benchmark, features)
        self._examples: dict[str, SlideExample] = {}

    # -- listing -----------------------------------------------------------------------------------
    def load(self, report=lambda phase: None) -> list[SlideExample]:
        report(f"reading WSI-Bench questions from {self.benchmark}")
        problems: list[str] = []
        try:
            items = read_benchmark(self.benchmark, split=self.split, problems=problems)
        except Exception as exc:
            if looks_like_hub_id(self.benchmark) and (hub_unreachable(exc) or not isinstance(exc, BenchError)):
                raise EvaluationError(f"WSI-Bench examples: cannot download the questions of the Hub dataset "
                                      f"{self.benchmark}: {hub_reason(exc)}. Without network access, point "
                                      "--benchmark (WSI_LLAVA_BENCHMARK) at a local folder of WSI-Bench files "
                                      "and --features-root (WSI_LLAVA_FEATURES_ROOT) at the slide tokens.") from exc
            if isinstance(exc, BenchError):
                raise EvaluationError(f"WSI-Bench examples: {exc}") from exc
            raise
        by_image: dict[str, list[BenchItem]] = {}
        for item in items:
            by_image.setdefault(item.image, []).append(item)
        report(f"finding slide features in {self.features}")
        find = self._hub_finder() if self.on_hub else self._local_finder()
        examples = []
        for image in sorted(by_image, key=lambda i: PurePosixPath(i).name):
            ref = find(image)
            if ref is not None:
                slide_items = sorted(by_image[image], key=lambda i: (_TASK_ORDER.get(i.task, 99), i.question_id))
                examples.append(SlideExample(slide_items[0].slide_id, image, ref, slide_items))
        self.report = CatalogReport(self.benchmark, self.features, len(items), len(by_image), len(examples),
                                    min(len(examples), self.max_slides), problems)
        if not examples:
            raise EvaluationError(f"WSI-Bench examples: none of the {len(by_image)} slides of {self.benchmark} "
                                  f"has a slide-token (.pt) or features (.h5) file in {self.features}.")
        self._examples = {example.slide_id: example for example in examples[: self.max_slides]}
        return list(self._examples.values())

    def _local_finder(self):
        from modeling.slide_inputs import (
            slide_input_candidates,  # imports torch: not at app start-up
        )

        root = Path(self.features)
        if not root.is_dir():
            raise EvaluationError(f"WSI-Bench examples: the features root {root} is not a folder (nor a Hub dataset "
                                  "id owner/name).")
        resolved_root = root.resolve()

        def find(image: str) -> str | None:
            for candidate in slide_input_candidates(root, image):
                path = candidate.resolve()
                if path.is_relative_to(resolved_root) and path.is_file():
                    return str(path.relative_to(resolved_root))
            return None
        return find

    def _hub_finder(self):
        from huggingface_hub import HfApi

        from modeling.slide_inputs import slide_input_candidates

        try:
            files = set(HfApi().list_repo_files(self.features, repo_type="dataset", revision=self.revision))
        except Exception as exc:   # offline, not found, gated, HTTP errors: all mean "cannot list it"
            raise EvaluationError(f"WSI-Bench examples: cannot list the Hub dataset {self.features} "
                                  f"({hub_reason(exc)}). Without network access, point --features-root "
                                  "(WSI_LLAVA_FEATURES_ROOT) at a local folder of slide tokens instead.") from exc

        def find(image: str) -> str | None:
            for candidate in slide_input_candidates(Path(""), image):
                name = candidate.as_posix()
                if ".." not in candidate.parts and not candidate.is_absolute() and name in files:
                    return name
            return None
        return find

    # -- one example ---------------------------------------------------------------------------------
    def get(self, slide_id: str) -> SlideExample:
        example = self._examples.get(slide_id)
        if example is None:
            raise EvaluationError(f"{slide_id!r} is not one of the listed WSI-Bench examples.")
        return example

    def features_file(self, example: SlideExample) -> Path:
        """The local path of the example's features (downloaded from the Hub dataset when needed)."""
        if not self.on_hub:
            root = Path(self.features).resolve()
            path = (root / example.features_ref).resolve()
            if not path.is_relative_to(root):
                raise EvaluationError(f"{example.features_ref!r} is outside the features root; not opened.")
            return path
        from common.hub import HubError, hub_download

        try:
            return Path(hub_download(self.features, example.features_ref, revision=self.revision,
                                     repo_type="dataset"))
        except HubError as exc:
            raise EvaluationError(f"WSI-Bench example {example.slide_id}: {exc}") from exc
