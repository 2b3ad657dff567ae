"""Fixtures of the curation tests: a review store in a temp folder, the scripted curation LLM on loopback."""

from __future__ import annotations

import pytest

from llm.client import LLMClient, LLMSettings
from curation.reports import report_from_row
from curation.store.review_store import ReviewStore
from tests.curation.llm_replies import CurationResponder, synthetic_report
from tests.helpers.openai_server import OpenAIStandIn

KEY_ENV = "CURATION_TEST_KEY"


@pytest.fixture
def llm_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-curation")
    return KEY_ENV


@pytest.fixture
def responder():
    return CurationResponder()


@pytest.fixture
def llm_server(responder):
    with OpenAIStandIn(responder=responder) as server:
        yield server


@pytest.fixture
def store(tmp_path):
    opened = ReviewStore.open(str(tmp_path / "store.sqlite"))
    yield opened
    opened.close()


def make_client(server, tmp_path=None, **overrides) -> LLMClient:
    settings = dict(base_url=server.url, model="stand-in", api_key_env=KEY_ENV, backoff_initial_s=0.01,
                    backoff_max_s=0.05, concurrency=4)
    if tmp_path is not None:
        settings["cache_path"] = str(tmp_path / "llm-cache.sqlite")
    settings.update(overrides)
    return LLMClient(LLMSettings(**settings))


def add_synthetic_reports(store, n: int, start: int = 0) -> None:
    store.add_reports([report_from_row(synthetic_report(i), f"synthetic:{i}") for i in range(start, start + n)])


def imported_pair(index: int, task: str = "grading", patient: str | None = None) -> dict:
    """A minimal store row for review tests (origin "imported")."""
    patient = patient or f"TCGA-AA-{index:04d}"
    return dict(uid=f"pair-{task}-{index}", origin="imported", slide_id=f"{patient}-01Z-00-DX1", patient_id=patient,
                image=f"TCGA-BRCA/{patient}-01Z-00-DX1.pt", task=task, capability="diagnosis", answer_format="open",
                question=f"What is the grade of tumour {index}?", options=None, answer=f"Grade {index % 3 + 1}.",
                record={"id": f"{patient}-{index}"}, generator_model="wsi-bench-release", prompt_version="Grading",
                checks=[])
