"""The automatic checks every generated or imported pair goes through, and the inline choice layout."""

import pytest

from curation.pair_checks import CheckSources, PairDraft, run_checks
from wsi_bench.records import render_question, split_choice_question

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


# -- findings on the released WSI-Bench files (texts copied from them) -------------------------------------

def test_options_differing_only_by_a_sign_are_distinct():
    """HPV+ / HPV- flagged 'not distinct' on 23 of 926 released Molecular_Subtyping_choice_train pairs."""
    hpv = PairDraft("molecular_subtyping_choice", "What is the molecular subtype in this cervical cancer?", "C",
                    options={"A": "HPV+", "B": "MSI", "C": "HPV-", "D": "EBV-associated"})
    assert results(hpv)["mcq"].status == "pass"
    receptors = PairDraft("molecular_subtyping_choice", "Which receptor profile fits best?", "B",
                          options={"A": "ER+/PR+", "B": "ER-/PR-", "C": "ER+/PR-", "D": "HER2+"})
    assert results(receptors)["mcq"].status == "pass"
    same = PairDraft("staging_choice", "What is the correct TNM staging?", "D",
                     options={"A": "T2 N0 M0", "B": "T1 N1 M0", "C": "T2 N1 M1", "D": "T2  N0 M0"})
    assert "A and D are not distinct" in results(same)["mcq"].detail


@pytest.mark.parametrize("text, stem, options", [
    ("Given a patient with a tumor invades submucosa (T4A), presence of metastasis can't be assessed (MX), and there "
     "are 4 to 6 lymph nodes involved (N2B), what is the TNM staging? A) T3 N1 MX B) T4A N2B MX C) T4B N2A M0 "
     "D) T2 N0 MX",
     "Given a patient with a tumor invades submucosa (T4A), presence of metastasis can't be assessed (MX), and there "
     "are 4 to 6 lymph nodes involved (N2B), what is the TNM staging?",
     {"A": "T3 N1 MX", "B": "T4A N2B MX", "C": "T4B N2A M0", "D": "T2 N0 MX"}),
    ("A patient has a tumor less than 5 cm, no distant metastasis, and micro-metastasis in one regional lymph node. "
     "What is the correct TNM staging? A. T1 N1 M0 B. T2 N0 M0 C. T2 N1 M0 D. T3 N1 M1",
     "A patient has a tumor less than 5 cm, no distant metastasis, and micro-metastasis in one regional lymph node. "
     "What is the correct TNM staging?",
     {"A": "T1 N1 M0", "B": "T2 N0 M0", "C": "T2 N1 M0", "D": "T3 N1 M1"}),
])
def test_released_choice_questions_split_into_their_stem_and_options(text, stem, options):
    assert split_choice_question(text) == (stem, options)
    draft = PairDraft("staging_choice", stem, "B", options=options)
    assert results(draft)["schema"].status == "pass"


@pytest.mark.parametrize("question, leaks", [
    # generic words for the lesion name no diagnosis (released Specific_Feature_Description questions)
    ("Are there nests and sheets of tumor cells present in the neoplasm?", False),
    ("Does the carcinoma infiltrate the adipose tissue adjacent to the stomach?", False),
    ("Do the carcinoma cells exhibit nuclear pleomorphism?", False),
    ("Is there evidence of microvascular proliferation within the neoplasm?", False),
    # the histological type itself
    ("Are there mucin-rich areas present within the endometrioid carcinoma?", True),
    ("Is there evidence of tubular formations within the adenocarcinoma?", True),
    ("Are cribriform structures observed in the DCIS component?", True),
    ("Are mitotic figures present within the glial neoplasm?", True),
    ("What is the observed pattern of tumor infiltration in these metastatic melanoma lymph nodes?", True),
])
def test_diagnosis_leak_means_the_diagnosis_not_a_generic_word(question, leaks):
    draft = PairDraft("specific_feature_description", question, "Yes, nests of atypical cells are present.")
    check = results(draft, sources=CheckSources())["diagnosis_leak"]
    assert (check.status == "fail") is leaks, check.detail
    if not leaks:
        assert check.data["generic_terms"]


@pytest.mark.parametrize("question, problem", [
    # released Prognosis_TF_question_train items (11 end in "Correct", 2 ask "good or poor?", all answered)
    ("Given the diagnosis of squamous cell carcinoma with TNM staging of T1B2MXNX, is the prognosis good?  Correct",
     "after the question mark"),
    ("Considering the diagnosis of poorly differentiated invasive ductal carcinoma, is the prognosis randomly good "
     "or poor?", "two alternatives"),
])
def test_ill_posed_yes_no_questions_are_flagged(question, problem):
    schema = results(PairDraft("prognosis_yes_no", question, "No"), sources=CheckSources())["schema"]
    assert schema.status == "fail" and problem in schema.detail
    fine = "Given the diagnosis of poorly differentiated adenocarcinoma, is the prognosis good?"
    assert results(PairDraft("prognosis_yes_no", fine, "No"), sources=CheckSources())["schema"].status == "pass"
