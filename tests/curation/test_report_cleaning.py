"""Report input (JSONL, CSV, folder of .txt) and cleaning: the section parser, the LLM excerpts, no added text."""

import json

import pytest

from curation.cleaning import clean_from_excerpts, verify_no_added_text
from curation.prompts.cleaning import CleaningReply
from curation.report_sections import parse_sections
from curation.reports import ReportFormatError, read_reports, report_sha256
from curation.text_spans import SourceText

TCGA_LINES = """SURGICAL PATHOLOGY REPORT
Patient: XXXX   Accession: S-12-3456
CLINICAL HISTORY: Left breast mass.
FINAL DIAGNOSIS:
A. Left breast, lumpectomy:
- Invasive ductal carcinoma, Nottingham grade 2 (tubules 3, nuclei 2, mitoses 1).
- Tumor size 2.1 cm. Margins are free of tumor. Immunohistochemical stains show tumor cells positive for ER (95%).
- Lymphovascular invasion is not identified.
Electronically signed by: Dr. Smith 01/02/2012
MICROSCOPIC DESCRIPTION: Sections show nests of atypical ductal cells in desmoplastic stroma. HER2 is negative (1+).
GROSS DESCRIPTION: Received fresh is a 5.0 x 4.0 x 3.0 cm lumpectomy. Cassette summary: A1-A5.
"""

TCGA_INLINE = ("DIAGNOSIS: Kidney, nephrectomy: clear cell renal cell carcinoma, Fuhrman grade 3. "
               "COMMENT: The tumor cells have abundant clear cytoplasm. GROSS DESCRIPTION: A 7 cm golden-yellow mass. "
               "SPECIAL STAINS: CD10 is positive.")


def test_reports_from_jsonl_csv_and_txt_folder(tmp_path):
    (tmp_path / "r.jsonl").write_text(json.dumps({"slide_id": "TCGA-AA-0001-01Z-00-DX1.ab", "text": "Dx: x.",
                                                  "project": "TCGA-BRCA"}) + "\n\n"
                                      + json.dumps({"patient_filename": "TCGA-AA-0002.uuid", "report": "Dx: y."}) + "\n")
    (tmp_path / "r.csv").write_text('slide_id,text\nTCGA-AA-0003-01Z,"Line one,\nline two"\n')
    folder = tmp_path / "txt" / "TCGA-LUAD"
    folder.mkdir(parents=True)
    (folder / "TCGA-AA-0004-01Z.txt").write_text("Diagnosis: z.\r\n")
    reports = read_reports([tmp_path / "r.jsonl", tmp_path / "r.csv", tmp_path / "txt"])
    assert [r.slide_id for r in reports] == ["TCGA-AA-0001-01Z-00-DX1.ab", "TCGA-AA-0002.uuid", "TCGA-AA-0003-01Z",
                                            "TCGA-AA-0004-01Z"]
    assert reports[0].image == "TCGA-BRCA/TCGA-AA-0001-01Z-00-DX1.ab.pt" and reports[0].patient_id == "TCGA-AA-0001"
    assert reports[2].text == "Line one,\nline two" and reports[3].project == "TCGA-LUAD"
    assert reports[3].text == "Diagnosis: z.\n" and reports[3].sha256 == report_sha256("Diagnosis: z.\r\n")


def test_bad_report_rows_raise_naming_the_line_or_are_collected(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"slide_id": "S1", "text": "ok text"}) + "\n" + json.dumps({"slide_id": "S2"}) + "\n")
    with pytest.raises(ReportFormatError, match=r"bad.jsonl:2: no report text"):
        read_reports([path])
    problems = []
    assert [r.slide_id for r in read_reports([path], problems)] == ["S1"]
    assert len(problems) == 1 and "bad.jsonl:2" in problems[0]
    with pytest.raises(ReportFormatError, match="no such report file"):
        read_reports([tmp_path / "missing.csv"])


def test_section_parser_keeps_diagnosis_and_microscopy_and_removes_the_rest():
    cleaned = parse_sections(TCGA_LINES)
    assert cleaned.confident, cleaned.reason
    text = cleaned.text
    assert "Invasive ductal carcinoma, Nottingham grade 2" in text and "Margins are free of tumor." in text
    assert "Sections show nests of atypical ductal cells" in text
    for gone in ("Left breast mass", "Received fresh", "ER (95%)", "HER2", "Dr. Smith", "Accession"):
        assert gone not in text
    categories = {d["category"] for d in cleaned.removed_dicts()}
    assert {"clinical", "gross", "ihc", "admin"} <= categories
    assert "ER (95%)" in cleaned.removed_text("ihc") and "HER2 is negative" in cleaned.removed_text("ihc")
    assert verify_no_added_text(TCGA_LINES, text)["adds_nothing"]
    # every removed piece is exactly the original text at its offsets: a reviewer sees what was cut
    for piece in cleaned.removed_dicts():
        assert TCGA_LINES[piece["start"]:piece["end"]] == piece["text"]


def test_section_parser_finds_inline_upper_case_headers():
    cleaned = parse_sections(TCGA_INLINE)
    assert cleaned.confident
    assert "clear cell renal cell carcinoma, Fuhrman grade 3" in cleaned.text
    assert "abundant clear cytoplasm" in cleaned.text
    assert "golden-yellow" not in cleaned.text and "CD10" not in cleaned.text


@pytest.mark.parametrize("text, reason", [
    ("The tumour is an invasive lobular carcinoma with single files of cells.", "no section header"),
    ("GROSS DESCRIPTION: a 3 cm mass. CLINICAL HISTORY: none.", "no diagnosis, microscopic or synoptic"),
])
def test_unrecognised_layouts_go_to_the_llm_pass(text, reason):
    cleaned = parse_sections(text)
    assert not cleaned.confident and reason in cleaned.reason


def test_llm_excerpts_build_the_cleaned_text_from_the_report_only():
    report = ("Specimen received in formalin, 4 cm. The tumour is an invasive lobular carcinoma with single "
              "files of cells.  Nuclei are small, grade 2.\nER stain positive in 90%.")
    reply = CleaningReply(keep=["the tumour is an invasive lobular carcinoma with single files of cells.",
                                "Nuclei are  small, grade 2.",
                                "Metastatic deposits are present in 3 lymph nodes."],     # not in the report
                          removed=[("gross", "Specimen received in formalin, 4 cm."),
                                   ("ihc", "ER stain positive in 90%.")])
    cleaned = clean_from_excerpts(report, reply)
    assert cleaned.unmatched == ["Metastatic deposits are present in 3 lymph nodes."]
    assert "lymph nodes" not in cleaned.text and "Nuclei are small, grade 2." in cleaned.text
    assert cleaned.text.startswith("The tumour is")           # the report's own spelling, not the model's
    assert {d["category"] for d in cleaned.removed_dicts()} == {"gross", "ihc"}
    assert verify_no_added_text(report, cleaned.text)["adds_nothing"]


def test_verify_no_added_text_catches_paraphrase():
    check = verify_no_added_text("Invasive carcinoma, grade 2.", "Invasive carcinoma, grade 2.\nHigh-grade tumour.")
    assert not check["adds_nothing"] and check["lines_not_in_report"] == ["High-grade tumour."]


def test_source_text_maps_normalised_matches_back_to_offsets():
    source = SourceText("Tumour \u201cnests\u201d  with\nNECROSIS.")
    span = source.find('tumour "nests" with necrosis')
    assert span is not None and source.text[span.start:span.end] == "Tumour \u201cnests\u201d  with\nNECROSIS"
    assert source.find("tumour, nests with") is not None           # loose match ignores punctuation
    assert source.find("tumour nests without") is None


SYNOPTIC = """Surgical Pathology Report
Clinical Diagnosis & History: Right breast cancer.
DIAGNOSIS:
1. Right breast, lumpectomy: Infiltrating ductal carcinoma, Nottingham grade 3 of 3. Margins negative.
SYNOPTIC REPORT - BREAST
Procedure: Lumpectomy
Histologic Type: Infiltrating ductal carcinoma
Estrogen Receptor: Positive (95%)
Pathologic Staging (pTNM): pT2 pN0(sn)
Intraoperative Consultation: Frozen section: benign.
"""


def test_synoptic_fields_stay_and_receptor_lines_go():
    cleaned = parse_sections(SYNOPTIC)
    assert "Procedure: Lumpectomy" in cleaned.text and "pT2 pN0(sn)" in cleaned.text
    assert "Estrogen Receptor" not in cleaned.text and "Frozen section" not in cleaned.text
    removed = {d["category"]: d["text"] for d in cleaned.removed_dicts()}
    assert removed["clinical"].startswith("Clinical Diagnosis & History:")
    assert removed["ihc"] == "Estrogen Receptor: Positive (95%)" and "intraoperative" in removed


# -- realistic TCGA layouts (written for the review; typical of TCGA pathology report PDFs) -----------------

GROSS_WITH_NOTE = """SURGICAL PATHOLOGY REPORT
FINAL DIAGNOSIS:
A. LEFT BREAST, MODIFIED RADICAL MASTECTOMY:
- INVASIVE DUCTAL CARCINOMA, NOTTINGHAM GRADE 2.
GROSS DESCRIPTION:
A. Received fresh labeled "left breast" is an 850 gram mastectomy specimen with a 2.3 cm stellate mass.
Note: Cold ischemia time less than 1 hour; fixation time 24 hours.
Summary of sections: A1-A4 tumor.
MICROSCOPIC DESCRIPTION:
Sections show an infiltrating ductal carcinoma forming small nests and cords.
"""


def test_a_note_line_inside_the_gross_description_stays_removed():
    cleaned = parse_sections(GROSS_WITH_NOTE)
    assert cleaned.confident
    assert "Cold ischemia" not in cleaned.text and "Cold ischemia" in cleaned.removed_text("gross")
    assert "INVASIVE DUCTAL CARCINOMA" in cleaned.text and "small nests and cords" in cleaned.text


SYNOPSIS = """FINAL DIAGNOSIS:
Right breast, lumpectomy: invasive lobular carcinoma, Nottingham grade 2.

CASE SYNOPSIS:
SYNOPTIC - PRIMARY INVASIVE CARCINOMA OF BREAST
Histologic Type: Invasive lobular carcinoma, classic type
Ancillary Studies: ER positive (90%), PR positive (40%), HER2 negative (score 1+)
Tumor Size: 1.8 cm
Margins: Uninvolved by invasive carcinoma; closest margin 0.3 cm (superior)
Lymph Nodes: 0/3 (sentinel)
Pathologic Stage: pT1c pN0(sn)
"""


def test_an_ihc_field_inside_a_synoptic_block_removes_only_its_line():
    cleaned = parse_sections(SYNOPSIS)
    assert cleaned.confident
    for kept in ("Tumor Size: 1.8 cm", "Margins: Uninvolved", "Lymph Nodes: 0/3", "pT1c pN0(sn)",
                 "Histologic Type: Invasive lobular carcinoma"):
        assert kept in cleaned.text
    assert "ER positive" not in cleaned.text and "ER positive (90%)" in cleaned.removed_text("ihc")


def test_a_case_synopsis_after_the_gross_description_is_kept():
    text = ("GROSS DESCRIPTION:\nReceived in formalin is a 12 x 8 x 4 cm segment of colon.\nCASE SYNOPSIS:\n"
            "Histologic Type: Adenocarcinoma\nHistologic Grade: G2\nPathologic Stage: pT3 pN0\n")
    cleaned = parse_sections(text)
    assert cleaned.confident, cleaned.reason
    assert "Histologic Type: Adenocarcinoma" in cleaned.text and "Histologic Grade: G2" in cleaned.text
    assert "segment of colon" not in cleaned.text


@pytest.mark.parametrize("text, reason", [
    # the diagnosis written before the first header (common in TCGA reports) must not be cut silently
    ("COLON, SIGMOID, RESECTION: ADENOCARCINOMA, MODERATELY DIFFERENTIATED, INVADING THROUGH THE MUSCULARIS "
     "PROPRIA. TWO OF FIFTEEN LYMPH NODES POSITIVE FOR METASTATIC CARCINOMA (2/15).\nTUMOR SUMMARY:\n"
     "Histologic Type: Adenocarcinoma\nAJCC Stage: pT3 N1b\n", "before the first recognised header"),
    # gross and microscopy in one section cannot be separated by headers
    ("FINAL DIAGNOSIS:\nInvasive lobular carcinoma.\nGROSS AND MICROSCOPIC DESCRIPTION:\nThe specimen weighs 45 g. "
     "Sections show single files of discohesive cells.\n", "gross and microscopic"),
])
def test_layouts_the_section_parser_cannot_clean_go_to_the_llm_pass(text, reason):
    cleaned = parse_sections(text)
    assert not cleaned.confident and reason in cleaned.reason
    assert "weighs 45 g" not in cleaned.text
