"""Import of released WSI-Bench files (both formats) into the review store, checks included."""

import json

from curation.bench_import import import_bench

SLIDE = "TCGA-DD-AADW-01Z-00-DX1.3E9241DE"
CHOICE = ("A patient's tumour is less than 2 cm with no nodal spread. What would be the TNM staging? "
          "A) T2 N1 M0 B) T1 N0 M0 C) T2 N0 M1 D) T3 N1 M0")


def llava(record_id, question, answer, slide=SLIDE):
    return {"id": record_id, "image": f"TCGA-LIHC/{slide}.pt",
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


def write_fixtures(folder):
    folder.mkdir()
    (folder / "Staging_choice_test.json").write_text(json.dumps([
        llava(f"{SLIDE}-1", CHOICE, "B"),
        llava(f"{SLIDE}-2", CHOICE.replace("T2 N1 M0", "T4 N1 M0"), 'B "'),       # a released oddity
        {"id": "broken", "image": "x.pt", "conversations": [{"from": "human", "value": "only one turn"}]},
    ]))
    rows = [{"question_id": 1, "image": f"TCGA-BRCA/{SLIDE}.pt", "metadata": "Caption", "T-answer": "Nests of cells.",
             "question": "Describe this invasive ductal carcinoma slide."},
            {"question_id": 2, "image": f"TCGA-BRCA/{SLIDE}.pt", "metadata": "Grade", "T-answer": "Grade 2.",
             "question": "What is the grade?"}]
    (folder / "WSI-Bench-test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_import_both_formats_with_checks_and_no_duplicates(store, tmp_path):
    write_fixtures(tmp_path / "bench")
    summary = import_bench(store, [str(tmp_path / "bench")])
    assert summary.counts == {"failed": 1, "ok": 2} and "record 2" in summary.items[0]["error"]
    stats = store.stats()
    assert stats["pairs"] == 4 and stats["by_origin"] == {"imported": 4}
    assert stats["by_task"]["staging_choice"]["pending"] == 2
    assert stats["checks_failed"] == {"mcq": 1, "near_duplicate": 1, "diagnosis_leak": 1}
    store.add_annotator("lead", role="lead")
    views = [store.get_pair(item.pair_id, "lead") for item in store.queue("lead", limit=10)]
    first = next(v for v in views if v.provenance["source_question_id"] == f"{SLIDE}-1")
    assert first.options == {"A": "T2 N1 M0", "B": "T1 N0 M0", "C": "T2 N0 M1", "D": "T3 N1 M0"} and first.answer == "B"
    assert first.rendered_question == CHOICE and first.report_text is None and first.origin == "imported"
    odd = next(v for v in views if v.answer == 'B "')
    assert odd.checks_failed == ["mcq", "near_duplicate"]
    again = import_bench(store, [str(tmp_path / "bench")])
    assert store.count_pairs() == 4 and sum(i.get("already_stored", 0) for i in again.items) == 4


def test_imported_regional_aspects_survive_export(store, tmp_path):
    """Official rows of metadata tissue / cellular / infiltration are one task; the export must write each
    back under its own metadata value, not all as the task's first one."""
    from curation.export import export_dataset

    folder = tmp_path / "bench"
    folder.mkdir()
    rows = [{"question_id": f"{aspect}_{SLIDE}-1_1", "image": f"TCGA-BRCA/{SLIDE}.pt", "metadata": aspect,
             "T-answer": f"The {aspect} shows nests of cells.", "question": f"What about the {aspect} here?"}
            for aspect in ("tissue", "cellular", "infiltration")]
    (folder / "WSI-Bench-test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_bench(store, [str(folder)])
    store.add_annotator("lead", role="lead")
    for item in store.queue("lead", limit=10):
        store.submit_review(item.pair_id, "lead", "accepted", item.version)
    out = export_dataset(store, tmp_path / "export", "lead")["path"]
    exported = [json.loads(line) for f in sorted((out / "jsonl").glob("*.jsonl"))
                for line in f.read_text().splitlines()]
    assert sorted(r["metadata"] for r in exported) == ["cellular", "infiltration", "tissue"]
    assert all(r["metadata"] in r["question_id"] for r in exported)
