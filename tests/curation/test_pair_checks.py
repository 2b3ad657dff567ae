"""The automatic checks every generated or imported pair goes through, and the inline choice layout."""

import pytest

from curation.pair_checks import CheckSources, PairDraft, run_checks
from curation.pair_records import render_question, split_choice_question

REPORT = ("FINAL DIAGNOSIS: Invasive ductal carcinoma, Nottingham grade 2. The tumour forms nests with "
          "pleomorphic nuclei. Lymphovascular invasion is not identified. Pathologic stage pT2 N0.")
ENRICHMENT = "- Tubule formation in a desmoplastic stroma.\n- Comedo necrosis may be present."
SOURCES = CheckSources(cleaned=REPORT, enrichment=ENRICHMENT, diagnosis="Invasive ductal carcinoma")
OPTIONS = {"A": "Sheets of small round cells", "B": "Nests with pleomorphic nuclei", "C": "Papillary fronds",
           "D": "Mucin pools"}


def results(draft, sources=SOURCES, neighbours=()):
    return {r.name: r for r in run_checks(draft, sources, list(neighbours))}


def test_a_well_grounded_open_pair_passes_and_records_spans():
    draft = PairDraft("regional_structure_description", "What is the cellular morphology in this slide?",
                      "The tumour forms nests with pleomorphic nuclei.", evidence=["tumour forms nests with pleomorphic nuclei"])
    checks = results(draft)
    assert {n: r.status for n, r in checks.items()} == {"schema": "pass", "mcq": "skip", "grounded": "pass",
                                                       "diagnosis_leak": "pass", "near_duplicate": "pass"}
    [span] = checks["grounded"].data["spans"]
    assert span["source"] == "report" and REPORT[span["start"]:span["end"]] == "tumour forms nests with pleomorphic nuclei"
    assert checks["grounded"].data["grounded_in"] == "report"


def test_ungrounded_answer_fails_and_enrichment_only_answer_is_marked():
    invented = PairDraft("global_morphology_description", "Can you describe the whole slide image?",
                         "Extensive calcifications and mucinous lakes dominate.", evidence=["mucinous lakes"])
    failed = results(invented)["grounded"]
    assert failed.status == "fail" and "calcification" in failed.detail
    inferred = PairDraft("global_morphology_description", "Can you describe the whole slide image?",
                         "Tubule formation in a desmoplastic stroma.", evidence=["Tubule formation in a desmoplastic stroma"])
    check = results(inferred)["grounded"]
    assert check.status == "pass" and check.data["marked_uses_enrichment"] and check.data["grounded_in"] == "report+enrichment"


def test_inferred_answers_check_their_premises():
    draft = PairDraft("treatment_planning", "What is the plan for invasive ductal carcinoma, grade 2, stage pT2 N0?",
                      "1. Surgery. 2. Adjuvant endocrine therapy for five years.", evidence=["Pathologic stage pT2 N0"])
    assert results(draft)["grounded"].status == "pass"
    wrong_premise = PairDraft("treatment_planning", "What is the plan for metastatic melanoma with BRAF mutation?",
                              "Immunotherapy.", evidence=[])
    assert results(wrong_premise)["grounded"].status == "fail"


def test_multiple_choice_checks():
    good = PairDraft("diagnosis_choice", "Which pattern is present?", "B", options=OPTIONS,
                     evidence=["nests with pleomorphic nuclei"])
    assert all(r.status in ("pass", "skip") for r in results(good).values())
    repeated = PairDraft("diagnosis_choice", "Which pattern?", "E", options={**OPTIONS, "C": "nests with  pleomorphic nuclei"})
    mcq = results(repeated)["mcq"]
    assert mcq.status == "fail" and "exactly one letter" in mcq.detail and "B and C are not distinct" in mcq.detail
    missing = PairDraft("diagnosis_choice", "Which pattern? A) x B) y C) z D) w", "A", options={"A": "x", "B": "y"})
    schema = results(missing)["schema"]
    assert schema.status == "fail" and "options must be A, B, C and D" in schema.detail and "repeated" in schema.detail


def test_yes_no_and_schema():
    assert results(PairDraft("prognosis_yes_no", "Given stage pT2 N0, is the prognosis good?", "Yes",
                             evidence=["Pathologic stage pT2 N0"]))["schema"].status == "pass"
    bad = results(PairDraft("prognosis_yes_no", "Is it good?", "Probably"))["schema"]
    assert bad.status == "fail" and "'Yes' or 'No'" in bad.detail


@pytest.mark.parametrize("question, leaks", [
    ("How does the tissue architecture appear in this specimen of squamous cell carcinoma?", True),
    ("Describe the nests and pleomorphic nuclei seen in this slide.", False),
    ("What does this invasive ductal carcinoma show?", True),
])
def test_diagnosis_leak_in_morphology_questions(question, leaks):
    draft = PairDraft("regional_structure_description", question, "The tumour forms nests with pleomorphic nuclei.",
                      evidence=["tumour forms nests"])
    assert (results(draft)["diagnosis_leak"].status == "fail") is leaks
    typing = PairDraft("histological_typing", question, "Invasive ductal carcinoma.", evidence=["Invasive ductal"])
    assert results(typing)["diagnosis_leak"].status == "skip"          # diagnosis tasks may name it


def test_near_duplicates_within_slide_and_task():
    draft = PairDraft("grading", "What is the Nottingham grade of this tumour?", "Nottingham grade 2.",
                      evidence=["Nottingham grade 2"])
    earlier = [("uid-1", "What is the Nottingham grade of this tumor? || Nottingham grade 2.")]
    check = results(draft, neighbours=earlier)["near_duplicate"]
    assert check.status == "fail" and check.data["duplicate_of"] == "uid-1"
    assert results(draft, neighbours=[("u", "Which stage? || pT2 N0")])["near_duplicate"].status == "pass"


def test_imported_pairs_skip_grounding():
    draft = PairDraft("grading", "What is the FIGO grade?", "FIGO grade I.")
    assert results(draft, sources=CheckSources())["grounded"].status == "skip"


def test_choice_question_round_trip():
    text = render_question("Which stage?", {"A": "T1 N0 M0", "B": "T2 N0 M0", "C": "T3", "D": "T4 N1"})
    assert text == "Which stage? A) T1 N0 M0 B) T2 N0 M0 C) T3 D) T4 N1"
    assert split_choice_question(text) == ("Which stage?", {"A": "T1 N0 M0", "B": "T2 N0 M0", "C": "T3", "D": "T4 N1"})
    released = "What is the TNM staging?  A) T1 N0 M0 B) T2 N0 M0 C) T3 N1 M0 D) T4 N0 M1"
    assert split_choice_question(released)[1]["D"] == "T4 N0 M1"
    assert split_choice_question("What is the grade?") == ("What is the grade?", None)
