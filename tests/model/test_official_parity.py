"""`benchmarks/official_parity.py`: how it reads scripts/wsi-vqa.sh and compares, and (opt-in) the whole check
against WSI-LLaVA's official code, where that code and a Python with its pins are available:

    WSI_LLAVA_OFFICIAL_SRC=~/src/WSI-LLaVA WSI_LLAVA_OFFICIAL_PYTHON=~/venvs/llava/bin/python \\
        python -m pytest tests/model/test_official_parity.py         # ~2 CPU-minutes
"""

import os

import pytest

from benchmarks.official_parity import compare, main, wsi_vqa_settings

SCRIPT = """export PYTHONPATH=./WSI_LLaVA
# python ./WSI_LLaVA/llava/eval/model_vqa.py --conv-mode vicuna_v1
./env/bin/python ./WSI_LLaVA/llava/eval/model_vqa.py \\
    --model-path "" \\
    --image-folder  \\
    --question-file .jsonl \\
    --conv-mode llava_v1 \\
    --temperature 0.2 \\
    # --top_p 0.9 \\
    # --num_beams 4
"""


def test_the_settings_of_wsi_vqa_sh_are_read_without_its_blank_paths_or_comments(tmp_path):
    script = tmp_path / "wsi-vqa.sh"
    script.write_text(SCRIPT)
    assert wsi_vqa_settings(script) == ["--conv-mode", "llava_v1", "--temperature", "0.2"]


def _turn(**overrides):
    return {"prompt": "p", "input_ids": [1, 5, 9, 9, 9, 6], "first_step_logits": [0.5, 1.0, 2.0, 0.0],
            "greedy_ids": [7, 2], "greedy_text": "x"} | overrides


def test_compare_collapses_the_placeholders_and_drops_the_official_bos():
    ours = {"items": [{"id": "a", "turns": [_turn()]}], "image_token_id": 9, "bos": 1}
    theirs = {"vocab_size": 3, "items": [{"id": "a", "turns": [_turn(input_ids=[1, 5, -200, 6], greedy_ids=[1, 7, 2],
                                                                  first_step_logits=[0.5, 1.0, 2.00005])]}]}
    result = compare(ours, theirs)
    assert result["ok"] and result["logits_max_abs_diff"] == pytest.approx(5e-5, abs=1e-6)
    theirs["items"][0]["turns"][0]["first_step_logits"] = [0.5, 1.0, 2.001]
    assert not compare(ours, theirs)["ok"]


@pytest.mark.skipif(not (os.environ.get("WSI_LLAVA_OFFICIAL_SRC") and os.environ.get("WSI_LLAVA_OFFICIAL_PYTHON")),
                    reason="needs the official code: set WSI_LLAVA_OFFICIAL_SRC and WSI_LLAVA_OFFICIAL_PYTHON")
def test_our_defaults_reproduce_the_official_inference(capsys):
    assert main(["--official-src", os.environ["WSI_LLAVA_OFFICIAL_SRC"],
                 "--official-python", os.environ["WSI_LLAVA_OFFICIAL_PYTHON"]]) == 0, capsys.readouterr().out
