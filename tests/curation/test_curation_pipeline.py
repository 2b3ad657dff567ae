"""Clean -> enrich -> generate against a real OpenAI-compatible server on loopback, through the real SDK:
happy path, malformed JSON, wrong schema, 429, timeouts, cache hits, dry run."""

import json

import pytest
from sqlalchemy import select

from curation.cleaning import run_cleaning
from curation.enrichment import run_enrichment
from curation.generation import run_generation
from curation.prompts import vqa
from curation.reports import report_from_row
from curation.store.schema import EnrichmentRow, GenerationJob, PairRow
from wsi_bench.tasks import TASKS
from tests.curation.conftest import add_synthetic_reports, make_client
from tests.curation.llm_replies import FREE_TEXT_REPORT
from tests.helpers.openai_server import Reply

PAIRS_PER_REPORT = sum(rule.max_pairs for rule in vqa.TASK_RULES.values())


def pairs(store):
    with store.db.read() as s:
        return list(s.scalars(select(PairRow).order_by(PairRow.id)))


def jobs(store):
    with store.db.read() as s:
        return list(s.scalars(select(GenerationJob).order_by(GenerationJob.id)))


def test_happy_path_clean_enrich_generate(store, llm_server, responder, llm_key, tmp_path):
    add_synthetic_reports(store, 2)
    store.add_reports([report_from_row({"slide_id": "TCGA-ZZ-0001-01Z-00-DX1", "text": FREE_TEXT_REPORT,
                                        "project": "TCGA-BRCA"}, "free.jsonl:1")])
    client = make_client(llm_server, tmp_path)
    cleaned = run_cleaning(store, client)
    assert cleaned.counts == {"ok": 3} and responder.calls == {"clean": 1}     # only the free text needs the LLM
    free = next(c for c in store.cleanings() if c.method == "llm")
    assert "invasive lobular carcinoma" in free.cleaned_text and "serially sectioned" not in free.cleaned_text
    assert free.checks["adds_nothing"] and any("serially sectioned" in d["text"] for d in free.removed)
    assert run_enrichment(store, client).counts == {"ok": 3}
    summary = run_generation(store, client)
    assert summary.counts == {"ok": 3 * len(TASKS)} and summary.failed == 0
    stored = pairs(store)
    assert len(stored) == 3 * PAIRS_PER_REPORT
    assert {p.task for p in stored} == {spec.task for spec in TASKS}
    reports = {r.id: r for r in store.reports()}
    for pair in stored:
        assert pair.source_report_sha256 == reports[pair.report_id].text_sha256
        assert (pair.generator_model, pair.prompt_version, pair.origin) == ("stand-in", vqa.PROMPT_VERSION, "generated")
        assert pair.created_at is not None and pair.status == "pending" and pair.enrichment_id is not None
        human, gpt = pair.record["conversations"]
        assert human["from"] == "human" and human["value"].startswith("<image>\n") and gpt["value"] == pair.answer
        assert pair.record["image"] == reports[pair.report_id].image
        assert [c["name"] for c in pair.checks] == ["schema", "mcq", "grounded", "diagnosis_leak", "near_duplicate"]
    choice = next(p for p in stored if p.task == "staging_choice")
    assert choice.record["conversations"][0]["value"].endswith(f"D) {choice.options['D']}") and choice.answer == "B"
    assert all(p.inferred_answer for p in stored if p.task in ("prognosis", "treatment_planning", "prognosis_yes_no"))
    leaks = [p for p in stored if "diagnosis_leak" in p.checks_failed]
    assert leaks and all(p.task == "morphology_choice" for p in leaks)   # the scripted MCQ quotes the diagnosis
    request = next(r for r in llm_server.requests if "TASK: Grading." in r["messages"][0]["content"])
    assert request["response_format"]["type"] == "json_schema" and request["seed"] == 0
    assert "INFERRED MORPHOLOGY" in request["messages"][1]["content"]
    molecular = next(r for r in llm_server.requests if "TASK: Molecular subtyping." in r["messages"][0]["content"])
    assert "CLINICAL CONTEXT" in molecular["messages"][1]["content"]      # the IHC text removed by cleaning
    with store.db.read() as s:
        enrichment = s.scalars(select(EnrichmentRow)).first()
    assert enrichment.text not in free.cleaned_text                        # stored apart, never merged


@pytest.fixture
def one_job_store(store, llm_server, llm_key, tmp_path):
    add_synthetic_reports(store, 1)
    run_cleaning(store, None)
    return store


def test_malformed_json_is_retried(one_job_store, llm_server, tmp_path):
    llm_server.queue("this is { not json")
    client = make_client(llm_server, tmp_path)
    summary = run_generation(one_job_store, client, tasks=["grading"])
    assert summary.counts == {"ok": 1} and client.stats.invalid_replies == 1 and llm_server.request_count == 2


def test_wrong_schema_is_recorded_as_failed_then_retried_on_rerun(one_job_store, llm_server, responder, tmp_path):
    llm_server.responder = lambda request: json.dumps({"questions": ["not the schema"]})
    summary = run_generation(one_job_store, make_client(llm_server, tmp_path, max_attempts=2), tasks=["grading"])
    assert summary.counts == {"failed": 1} and "invalid reply" in summary.items[0]["error"]
    [job] = jobs(one_job_store)
    assert job.status == "failed" and "invalid reply" in job.note and pairs(one_job_store) == []
    llm_server.responder = responder
    rerun = run_generation(one_job_store, make_client(llm_server, tmp_path), tasks=["grading"])
    assert rerun.counts == {"ok": 1}
    [job] = jobs(one_job_store)
    assert job.status == "ok" and len(pairs(one_job_store)) == 1


def test_rate_limited_then_success(one_job_store, llm_server, tmp_path):
    llm_server.queue(Reply(status=429, headers={"Retry-After": "0"}))
    client = make_client(llm_server, tmp_path)
    assert run_generation(one_job_store, client, tasks=["staging"]).counts == {"ok": 1}
    assert client.stats.retries == 1 and llm_server.request_count == 2


def test_timeout_then_success(one_job_store, llm_server, responder, tmp_path):
    llm_server.queue(Reply(content="{}", delay_s=1.2))
    client = make_client(llm_server, tmp_path, timeout_s=0.3)
    assert run_generation(one_job_store, client, tasks=["prognosis_yes_no"]).counts == {"ok": 1}
    assert client.stats.retries == 1 and len(pairs(one_job_store)) == 1


def test_cache_hits_make_zero_requests_and_reruns_add_nothing(store, llm_server, llm_key, tmp_path):
    add_synthetic_reports(store, 2)
    run_cleaning(store, None)
    first = run_generation(store, make_client(llm_server, tmp_path), tasks=["grading", "morphology_choice"])
    sent = llm_server.request_count
    assert first.counts == {"ok": 4} and sent == 4
    again = run_generation(store, make_client(llm_server, tmp_path), tasks=["grading", "morphology_choice"])
    assert again.counts == {"already_done": 4} and llm_server.request_count == sent
    from curation.store.review_store import ReviewStore
    fresh = ReviewStore.open(str(tmp_path / "fresh.sqlite"))              # same reports, same cache file
    add_synthetic_reports(fresh, 2)
    run_cleaning(fresh, None)
    client = make_client(llm_server, tmp_path)
    rebuilt = run_generation(fresh, client, tasks=["grading", "morphology_choice"])
    assert rebuilt.counts == {"ok": 4} and all(item["cached"] for item in rebuilt.items)
    assert llm_server.request_count == sent and client.stats.cache_hits == 4 and client.stats.requests_sent == 0
    assert sorted((p.slide_id, p.question, p.answer) for p in pairs(fresh)) == \
        sorted((p.slide_id, p.question, p.answer) for p in pairs(store))


def test_dry_run_estimates_and_sends_nothing(store, llm_server, tmp_path, monkeypatch):
    monkeypatch.delenv("CURATION_TEST_KEY", raising=False)                   # no key needed for an estimate
    add_synthetic_reports(store, 2)
    store.add_reports([report_from_row({"slide_id": "S-free", "text": FREE_TEXT_REPORT}, "free")])
    client = make_client(llm_server, tmp_path, price_input_per_1m_usd=2.5, price_output_per_1m_usd=10.0)
    clean = run_cleaning(store, client, dry_run=True)
    assert clean.estimate["n_requests"] == 1 and store.cleanings() == []
    forced = run_cleaning(store, None, method="sections")       # the free text has no section to keep
    assert forced.counts == {"ok": 2, "failed": 1}
    estimate = run_generation(store, client, dry_run=True).estimate
    assert estimate["n_requests"] == 2 * len(TASKS) and estimate["cost_usd"] > 0
    assert llm_server.request_count == 0 and jobs(store) == []
