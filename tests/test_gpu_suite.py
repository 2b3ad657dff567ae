"""`benchmarks/gpu_suite.py --tiny`: every section of the GPU suite runs its code path on the CPU and reports
the figures the full run reports, so the suite cannot rot before the day a GPU runs it."""

import json

from benchmarks.gpu_suite import CUDA_TESTS, SECTIONS, main


def test_tiny_gpu_suite_runs_every_section(tmp_path, capsys):
    document = main(["--tiny", "--workdir", str(tmp_path)])
    assert json.loads(capsys.readouterr().out) == document            # one JSON document on stdout
    sections = document["sections"]
    assert list(sections) == list(SECTIONS)
    failed = {name: section for name, section in sections.items() if section["status"] != "ok"}
    assert not failed and document["all_ok"]
    tiles = sections["tile_encoder"]
    assert tiles["gflops_per_tile"] > 0 and tiles["tiles_per_s_encoder_alone"] > 0 and tiles["tiles_per_s_pipeline"] > 0
    assert tiles["mfu"] is None and tiles["peak_source"] == "not a CUDA device"       # no peak for a CPU
    slide = sections["slide_encoder"]
    assert [run["tiles"] for run in slide["runs"]] == [100, 320, 640] and slide["attention_backend"] != "naive"
    for name in ("language_model_fp16", "language_model_nf4"):
        figures = sections[name]
        assert figures["prompt_tokens"] > 576 and figures["decode_tokens_per_s"] > 0
        assert figures["ttft_turn1_s"] > 0 and figures["turn2_over_turn1"] > 0
    assert sections["language_model_nf4"]["linear_layers_4bit"] == 14             # 2 layers x 7 Linear, lm_head kept
    predict = sections["evaluate_predict"]
    assert set(predict["items_per_s"]) == {"one_at_a_time", "batch_1", "batch_4"}
    assert set(predict["equal_to_one_at_a_time"].values()) == {1.0}               # float32: token for token
    tests = sections["cuda_tests"]
    assert len(tests["collected"]) == 2 and all(t.startswith(CUDA_TESTS[0]) for t in tests["collected"])
