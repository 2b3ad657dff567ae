"""Closed-ended answer extraction: tables of predictions and the answer each must give."""

import pytest

from evaluation.answer_extraction import (
    extract_answer,
    extract_choice,
    extract_yes_no,
    parse_options,
)

QUESTION = ("Based on the observed features, what is the histological classification? A) Squamous cell "
            "carcinoma B) Adenocarcinoma C) Neuroendocrine tumor D) Small cell carcinoma")
OPTIONS = parse_options(QUESTION)

CHOICE_TABLE = [
    # bare letters and bracketed letters
    ("B", "B", "letter_only"), ("b", "B", "letter_only"), ("(c).", "C", "letter_only"), ("B.", "B", "letter_only"),
    ("(B)", "B", "letter_only"),
    ("B)", "B", "letter_only"), ("[B]", "B", "letter_only"), (" B \n", "B", "letter_only"),
    ('B "', "B", "letter_only"), ("A", "A", "letter_only"),
    # a marked letter followed by the option text
    ("B) Adenocarcinoma", "B", "letter_lead"), ("(B) Adenocarcinoma", "B", "letter_lead"),
    ("B. Adenocarcinoma", "B", "letter_lead"), ("D: Small cell carcinoma", "D", "letter_lead"),
    # answer phrases
    ("The answer is B.", "B", "answer_phrase"), ("Answer: (B)", "B", "answer_phrase"),
    ("The correct option is C because of the nests.", "C", "answer_phrase"),
    ("I would choose D", "D", "answer_phrase"), ("Option B", "B", "answer_phrase"),
    ("The answer is a squamous cell carcinoma.", "A", "option_text"),       # "a" is an article, then text
    # the option's text instead of its letter
    ("Adenocarcinoma", "B", "option_text"), ("The tumor is an adenocarcinoma.", "B", "option_text"),
    ("small cell carcinoma", "D", "option_text"), ("Neuroendocrine tumor.", "C", "option_text"),
    # a lone letter somewhere
    ("I think B is right", "B", "lone_letter"), ("A tumor best matching B", "B", "lone_letter"),
    # nothing readable
    ("carcinoma", None, None), ("", None, None), ("B or C", None, None), ("A tumor is present.", None, None),
]


@pytest.mark.parametrize("prediction, answer, rule", CHOICE_TABLE)
def test_choice_extraction_table(prediction, answer, rule):
    extraction = extract_choice(prediction, OPTIONS)
    assert (extraction.answer, extraction.rule) == (answer, rule)


YES_NO_TABLE = [
    ("Yes", "Yes", "yes_no_lead"), ("yes.", "Yes", "yes_no_lead"), ("YES, it is good", "Yes", "yes_no_lead"),
    ("No", "No", "yes_no_lead"), ("No, the prognosis is poor.", "No", "yes_no_lead"),
    ("Correct.", "Yes", "yes_no_lead"), ("Nope", "No", "yes_no_lead"),
    ("The answer is no.", "No", "answer_phrase"), ("I believe the answer is Yes", "Yes", "answer_phrase"),
    ("The prognosis is good.", "Yes", "polarity_terms"), ("The prognosis is favourable", "Yes", "polarity_terms"),
    ("The prognosis is poor.", "No", "polarity_terms"), ("Prognosis is not good.", "No", "polarity_terms"),
    ("The outlook is unfavorable", "No", "polarity_terms"),
    ("maybe", None, None), ("", None, None), ("Good margins but poor differentiation", None, None),
]


@pytest.mark.parametrize("prediction, answer, rule", YES_NO_TABLE)
def test_yes_no_extraction_table(prediction, answer, rule):
    extraction = extract_yes_no(prediction)
    assert (extraction.answer, extraction.rule) == (answer, rule)


@pytest.mark.parametrize("question, expected", [
    (QUESTION, {"A": "Squamous cell carcinoma", "B": "Adenocarcinoma", "C": "Neuroendocrine tumor",
                "D": "Small cell carcinoma"}),
    ("What is the TNM staging?  A) T1 N0 M0 B) T2 N0 M0 C) T3 N1 M0 D) T4 N0 M1",
     {"A": "T1 N0 M0", "B": "T2 N0 M0", "C": "T3 N1 M0", "D": "T4 N0 M1"}),
    ("What is the correct TNM staging? A. T1 N1 M0 B. T2 N0 M0 C. T2 N1 M0 D. T3 N1 M1",
     {"A": "T1 N1 M0", "B": "T2 N0 M0", "C": "T2 N1 M0", "D": "T3 N1 M1"}),
    ("How do the nuclei look? A) Uniform, no pleomorphism. B) Small and bland. C) Pleomorphic (moderate). "
     "D) Absent.", {"A": "Uniform, no pleomorphism.", "B": "Small and bland.", "C": "Pleomorphic (moderate).",
                    "D": "Absent."}),
    ("Is the prognosis good?", {}),
])
def test_inline_options_are_parsed(question, expected):
    assert parse_options(question) == expected


def test_option_contained_in_a_longer_matching_option_does_not_count():
    options = {"A": "IDH-mutant, 1p/19q-codeleted", "B": "IDH-mutant", "C": "IDHwt", "D": "BRAF-mutant"}
    assert extract_choice("IDH-mutant, 1p/19q-codeleted", options).answer == "A"
    assert extract_choice("It is IDH-mutant.", options).answer == "B"
    assert extract_answer("choice", "IDHwt", "Q? A) IDHmut B) IDHwt C) x D) y").answer == "B"
    with pytest.raises(ValueError):
        extract_answer("open", "text")
