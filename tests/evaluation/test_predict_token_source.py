"""`evaluate predict` rows say where the slide tokens came from: "released" (.pt) or the model's source."""

import json

from evaluation.cli import main
from tests.evaluation.fixtures import write_benchmark, write_released_tokens
from tests.helpers.tiny_models import (
    save_tiny_checkpoint,
    write_features_h5,
)


def test_every_prediction_row_records_its_slide_token_source(tmp_path, capsys):
    bench = write_benchmark(tmp_path / "bench")
    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt")
    features = write_released_tokens(tmp_path / "features", "TCGA-XX/S1")
    write_features_h5(features / "TCGA-XX" / "S2.h5", n_tiles=30, dim=16)
    out = tmp_path / "preds.jsonl"
    assert main(["predict", "--model", str(checkpoint), "--benchmark", str(bench), "--features-root", str(features),
                 "--out", str(out), "--max-new-tokens", "2", "--device", "cpu"]) == 3
    assert json.loads(capsys.readouterr().out)["n_answered"] == 6
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    sources = {(row["image"], row["slide_token_source"]) for row in rows}
    assert sources == {("TCGA-XX/S1.pt", "released"), ("TCGA-XX/S2.pt", "wsi-llava-readme")}


def test_slide_token_source_option_applies_to_features_and_is_recorded(tmp_path, capsys):
    bench = write_benchmark(tmp_path / "bench")
    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt")
    features = tmp_path / "features"
    (features / "TCGA-XX").mkdir(parents=True)
    write_features_h5(features / "TCGA-XX" / "S1.h5", n_tiles=30, dim=16)
    write_features_h5(features / "TCGA-XX" / "S2.h5", n_tiles=30, dim=16, seed=1)
    out = tmp_path / "preds.jsonl"
    argv = ["predict", "--model", str(checkpoint), "--benchmark", str(bench), "--features-root", str(features),
            "--out", str(out), "--max-new-tokens", "2", "--device", "cpu", "--slide-token-source",
            "prov-gigapath-pipeline"]
    assert main(argv) == 3                                     # fixture items without inputs
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {row["slide_token_source"] for row in rows} == {"prov-gigapath-pipeline"}
    assert {row["settings"]["slide_token_source"] for row in rows} == {"prov-gigapath-pipeline"}
    capsys.readouterr()
    argv[-1] = "wsi-llava-readme"           # another source into the same file is refused, nothing appended
    assert main(argv) == 1 and "already holds predictions" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == len(rows)
