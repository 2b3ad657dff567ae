"""`wsi-llava tile` / `wsi-llava features`: exit codes, summary.json, resume, sharding, atomic outputs."""

import json
import os
import shutil

import h5py
import pytest

from modeling.slide import batch
from modeling.slide.commands import features_main, tile_main
from tests.helpers import synthetic_slides as synth
from wsi_llava_cli import main as cli_main


def summary_of(out_dir) -> dict:
    return json.loads((out_dir / "summary.json").read_text())


def by_id(summary: dict) -> dict:
    return {entry["slide_id"]: entry for entry in summary["slides"]}


@pytest.fixture
def mixed_dir(tmp_path, small_slides):
    """Good slides plus one of every kind of bad input, and a non-slide file that is ignored."""
    folder = tmp_path / "mixed"
    shutil.copytree(small_slides, folder)
    synth.write_empty(folder / "empty.svs")
    synth.write_non_slide(folder / "notes.svs")
    synth.write_corrupt_tiff(folder / "corrupt.tif")
    synth.write_truncated_tiff(folder / "cut.svs", width=1024, height=1024)
    synth.write_aperio_slide(folder / "nompp.svs", width=1024, height=1024, mpp=None)
    synth.write_non_slide(folder / "README.txt")
    return folder


def test_tile_batch_with_skip_errors_reports_every_slide(mixed_dir, tmp_path, capsys):
    out = tmp_path / "tiles"
    code = cli_main(["tile", str(mixed_dir), "--out", str(out), "--skip-errors"])
    assert code == batch.EXIT_PARTIAL
    summary = summary_of(out)
    slides = by_id(summary)
    assert summary["command"] == "tile" and summary["counts"] == {"done": 3, "failed": 5, "skipped": 0}
    assert summary["ignored_inputs"] == [str(mixed_dir / "README.txt")]
    for good in ("alpha", "beta", "gamma"):
        entry = slides[good]
        assert entry["status"] == "done" and entry["num_tiles"] > 0 and entry["error"] is None
        assert set(entry["outputs"]) == {"coords", "geojson", "mask", "thumbnail"}
        assert all((out / path).is_file() for path in entry["outputs"].values())
        assert entry["seconds"] >= 0 and entry["path"].endswith(good + (".tif" if good == "gamma" else ".svs"))
    expected_errors = {"empty": "empty file", "notes": "not a whole-slide image", "corrupt": "corrupt TIFF",
                       "cut": "truncated TIFF", "nompp": "--mpp-csv"}
    for slide_id, text in expected_errors.items():
        assert slides[slide_id]["status"] == "failed" and text in slides[slide_id]["error"]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nompp failed" in err


def test_tile_without_skip_errors_stops_at_the_first_failure(mixed_dir, tmp_path, capsys):
    out = tmp_path / "tiles"
    assert tile_main([str(mixed_dir), "--out", str(out)]) == batch.EXIT_FAILED
    slides = by_id(summary_of(out))
    assert list(slides) == ["alpha", "beta", "corrupt"]             # sorted order; stopped at "corrupt"
    assert slides["corrupt"]["status"] == "failed"
    assert "use --skip-errors" in capsys.readouterr().err


def test_resume_skips_finished_slides_and_overwrite_redoes_them(small_slides, tmp_path):
    out = tmp_path / "tiles"
    assert tile_main([str(small_slides), "--out", str(out)]) == 0
    coords = out / "patches" / "alpha_patches.h5"
    first_mtime = coords.stat().st_mtime_ns
    first = by_id(summary_of(out))
    assert tile_main([str(small_slides), "--out", str(out)]) == 0
    second = by_id(summary_of(out))
    assert coords.stat().st_mtime_ns == first_mtime
    assert all(entry["status"] == "skipped" and entry["reason"] == "outputs already exist" for entry in second.values())
    assert second["alpha"]["num_tiles"] == first["alpha"]["num_tiles"]
    assert tile_main([str(small_slides / "alpha.svs"), "--out", str(out), "--overwrite"]) == 0
    assert coords.stat().st_mtime_ns != first_mtime and by_id(summary_of(out))["alpha"]["status"] == "done"


def test_existing_outputs_with_other_settings_are_not_silently_reused(small_slides, tmp_path):
    out = tmp_path / "tiles"
    assert tile_main([str(small_slides / "alpha.svs"), "--out", str(out)]) == 0
    assert tile_main([str(small_slides / "alpha.svs"), "--out", str(out), "--target-mpp", "1.0"]) == 1
    assert "other settings (target_mpp 0.5 vs 1.0" in by_id(summary_of(out))["alpha"]["error"]


def test_shards_split_the_slides_and_share_one_summary(small_slides, tmp_path, monkeypatch):
    out = tmp_path / "tiles"
    assert tile_main([str(small_slides), "--out", str(out), "--shard", "0/2"]) == 0
    assert set(by_id(summary_of(out))) == {"alpha", "gamma"}
    monkeypatch.setenv("WORLD_SIZE", "2")                            # as torchrun / accelerate launch set it
    monkeypatch.setenv("RANK", "1")
    assert tile_main([str(small_slides), "--out", str(out)]) == 0
    summary = summary_of(out)
    assert {e["slide_id"]: e["shard"] for e in summary["slides"]} == {"alpha": "0/2", "beta": "1/2", "gamma": "0/2"}
    assert summary["counts"]["done"] == 3 and len(summary["shards"]) == 2


def test_mpp_csv_rescues_a_slide_without_metadata(tmp_path):
    synthetic = synth.write_aperio_slide(tmp_path / "nompp.svs", width=2048, height=2048, mpp=None)
    csv_path = tmp_path / "mpp.csv"
    csv_path.write_text("slide,mpp\nnompp,0.5\n")
    out = tmp_path / "tiles"
    assert tile_main([str(synthetic.path), "--out", str(out), "--mpp-csv", str(csv_path)]) == 0
    with h5py.File(out / "patches" / "nompp_patches.h5") as handle:
        assert handle["coords"].attrs["mpp_source"] == "override:--mpp-csv"
        assert handle["coords"].attrs["level0_mpp"] == 0.5


@pytest.mark.parametrize("argv, message", [
    (["--shard", "2/2"], "need 0 <= i < n"),
    (["--shard", "x"], "expected i/n"),
    (["--mpp", "-3"], "outside"),
    (["--min-tissue-fraction", "2"], "min_tissue_fraction"),
])
def test_usage_errors_exit_2_without_a_traceback(small_slides, tmp_path, capsys, argv, message):
    assert tile_main([str(small_slides), "--out", str(tmp_path / "o"), *argv]) == batch.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_folder_without_slides_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "empty-folder").mkdir()
    assert tile_main([str(tmp_path / "empty-folder"), "--out", str(tmp_path / "o")]) == batch.EXIT_USAGE
    assert "no slides found" in capsys.readouterr().err


def test_a_missing_input_is_a_failed_slide(tmp_path):
    out = tmp_path / "o"
    assert tile_main([str(tmp_path / "ghost.svs"), "--out", str(out)]) == batch.EXIT_FAILED
    assert "no such file or directory" in by_id(summary_of(out))["ghost"]["error"]


def test_interrupted_write_leaves_no_partial_file_and_resume_finishes(small_slides, tmp_path, monkeypatch):
    from modeling.slide import coords_h5

    out = tmp_path / "tiles"
    real_set_attrs = coords_h5.set_attrs

    def interrupted(*args, **kwargs):                                   # Ctrl-C in the middle of the h5 write
        raise KeyboardInterrupt

    monkeypatch.setattr(coords_h5, "set_attrs", interrupted)
    assert tile_main([str(small_slides / "alpha.svs"), "--out", str(out)]) == batch.EXIT_INTERRUPTED
    assert not (out / "patches" / "alpha_patches.h5").exists()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    monkeypatch.setattr(coords_h5, "set_attrs", real_set_attrs)
    assert tile_main([str(small_slides / "alpha.svs"), "--out", str(out)]) == 0
    assert by_id(summary_of(out))["alpha"]["status"] == "done"


def test_features_from_tile_outputs_then_resume(small_slides, tmp_path):
    tiles, feats = tmp_path / "tiles", tmp_path / "features"
    assert tile_main([str(small_slides), "--out", str(tiles)]) == 0
    argv = [str(small_slides), "--out", str(feats), "--encoder", "random-tiny", "--coords", str(tiles),
            "--workers", "0", "--batch-size", "16"]
    assert features_main(argv) == 0
    summary = summary_of(feats)
    assert summary["command"] == "features" and summary["settings"]["encoder_trained"] is False
    tile_counts = {e["slide_id"]: e["num_tiles"] for e in summary_of(tiles)["slides"]}
    for entry in summary["slides"]:
        assert entry["status"] == "done" and entry["num_tiles"] == tile_counts[entry["slide_id"]]
        with h5py.File(feats / entry["outputs"]["features"]) as handle:
            assert handle["features"].shape == (entry["num_tiles"], 192)
            assert handle.attrs["encoder"] == "random-tiny"
    mtime = (feats / "alpha.h5").stat().st_mtime_ns
    assert features_main(argv) == 0
    assert {e["status"] for e in summary_of(feats)["slides"]} == {"skipped"}
    assert (feats / "alpha.h5").stat().st_mtime_ns == mtime


def test_features_refuse_an_output_folder_of_another_command(small_slides, tmp_path, capsys):
    out = tmp_path / "o"
    assert tile_main([str(small_slides / "alpha.svs"), "--out", str(out)]) == 0
    code = features_main([str(small_slides / "alpha.svs"), "--out", str(out), "--encoder", "random-tiny"])
    assert code == batch.EXIT_USAGE and "holds the outputs of `wsi-llava tile`" in capsys.readouterr().err


def test_features_without_coords_file_for_a_slide_fail_clearly(small_slides, tmp_path):
    out = tmp_path / "f"
    code = features_main([str(small_slides / "alpha.svs"), "--out", str(out), "--encoder", "random-tiny",
                          "--coords", str(tmp_path / "nothing-here"), "--workers", "0"])
    assert code == batch.EXIT_FAILED
    assert "no coordinates file for slide 'alpha'" in by_id(summary_of(out))["alpha"]["error"]


def test_features_with_a_gated_encoder_fail_before_any_slide(small_slides, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    code = features_main([str(small_slides / "alpha.svs"), "--out", str(tmp_path / "f"), "--encoder",
                          "prov-gigapath"])
    err = capsys.readouterr().err
    assert code == batch.EXIT_FAILED and "HF_TOKEN" in err and "Traceback" not in err


def test_help_lists_the_documented_options(capsys):
    for main, options in ((tile_main, ["--target-mpp", "--tile-size", "--mpp-csv", "--skip-errors", "--shard"]),
                          (features_main, ["--encoder", "--coords", "--batch-size", "--workers", "--skip-errors"])):
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert all(option in text for option in options)


def test_the_summary_is_rewritten_atomically(small_slides, tmp_path):
    out = tmp_path / "tiles"
    assert tile_main([str(small_slides / "beta.svs"), "--out", str(out)]) == 0
    assert not [name for name in os.listdir(out) if ".tmp-" in name]
    assert (out / ".summary-parts" / "tile-shard-0-of-1.json").is_file()


def test_an_interrupted_rerun_keeps_the_earlier_record(small_slides, tmp_path, monkeypatch):
    from modeling.slide import tiling

    out = tmp_path / "tiles"
    assert tile_main([str(small_slides), "--out", str(out)]) == 0
    before = by_id(summary_of(out))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tiling, "tile_slide", interrupted)
    assert tile_main([str(small_slides), "--out", str(out), "--overwrite"]) == batch.EXIT_INTERRUPTED
    after = by_id(summary_of(out))
    assert {k: v["status"] for k, v in after.items()} == {k: v["status"] for k, v in before.items()}
    assert all((out / "patches" / f"{slide_id}_patches.h5").is_file() for slide_id in before)


def test_features_refuse_to_reuse_outputs_made_with_other_settings(small_slides, tmp_path):
    out = tmp_path / "f"
    argv = [str(small_slides / "beta.svs"), "--out", str(out), "--encoder", "random-tiny", "--workers", "0"]
    assert features_main(argv) == 0
    assert features_main([*argv, "--target-mpp", "1.0"]) == batch.EXIT_FAILED
    assert "other settings (target_mpp 0.5 vs 1.0" in by_id(summary_of(out))["beta"]["error"]


def test_an_output_folder_inside_the_input_folder_is_not_read_as_input(small_slides, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(small_slides, folder)
    (folder / "nested").mkdir()
    shutil.copy(small_slides / "alpha.svs", folder / "nested" / "delta.svs")
    out = folder / "tiles"
    assert tile_main([str(folder), "--out", str(out), "--recursive"]) == 0
    assert tile_main([str(folder), "--out", str(out), "--recursive"]) == 0      # thumbnails are not slides
    assert set(by_id(summary_of(out))) == {"alpha", "beta", "gamma", "delta"}


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--device", "cuda:3"], "no CUDA device") if not __import__("torch").cuda.is_available() else
    (["--workers", "-1"], "--workers >= 0"),
])
def test_features_usage_errors(small_slides, tmp_path, capsys, argv, message):
    code = features_main([str(small_slides / "alpha.svs"), "--out", str(tmp_path / "f"), "--encoder", "random-tiny",
                          *argv])
    assert code == batch.EXIT_USAGE and message in capsys.readouterr().err


def slurm_env(task_id, count, low, high, step="1"):
    return {"SLURM_ARRAY_TASK_ID": str(task_id), "SLURM_ARRAY_TASK_COUNT": str(count),
            "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_MAX": str(high), "SLURM_ARRAY_TASK_STEP": step}


def test_the_batch_commands_take_their_shard_from_a_slurm_array(small_slides, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "tiles"
    for task_id in (1, 2):                                               # --array=1-2
        for name, value in slurm_env(task_id, 2, 1, 2).items():
            monkeypatch.setenv(name, value)
        assert tile_main([str(small_slides), "--out", str(out)]) == 0
    summary = summary_of(out)
    assert {e["slide_id"]: e["shard"] for e in summary["slides"]} == {"alpha": "0/2", "beta": "1/2", "gamma": "0/2"}
    assert summary["settings"]["shard_source"] == "SLURM array"


@pytest.mark.parametrize("command", ["tile", "features"])
def test_a_slurm_array_with_gaps_is_a_usage_error(small_slides, tmp_path, monkeypatch, capsys, command):
    for name, value in slurm_env(3, 4, 1, 7).items():                   # --array=1,3,5,7
        monkeypatch.setenv(name, value)
    argv = [str(small_slides), "--out", str(tmp_path / "o")] + (["--encoder", "random-tiny"] if command == "features"
                                                                 else [])
    assert (tile_main if command == "tile" else features_main)(argv) == batch.EXIT_USAGE
    err = capsys.readouterr().err
    assert "not one range MIN-MAX:STEP" in err and "--shard i/n" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()                                 # refused before anything was written


def test_outputs_record_the_installed_version():
    from importlib import metadata

    from modeling.slide.provenance import PACKAGE_NAME, software_version

    try:
        installed = metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:
        pytest.skip("the project is not installed here")
    assert software_version() == f"{PACKAGE_NAME} {installed}"


@pytest.mark.parametrize("preset, expected", [(None, "1"), ("3", "3")])
def test_tile_starts_no_blas_threads_unless_asked(small_slides, tmp_path, preset, expected):
    """numpy is not loaded until the tile command has capped OpenBLAS at one thread (a user's value wins)."""
    import subprocess
    import sys

    code = ("import os, sys; from modeling.slide.commands import tile_main; assert 'numpy' not in sys.modules; "
            f"code = tile_main([{str(small_slides / 'alpha.svs')!r}, '--out', {str(tmp_path / 'o')!r}]); "
            "print(os.environ['OPENBLAS_NUM_THREADS'], code)")
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    if preset:
        env["OPENBLAS_NUM_THREADS"] = preset
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [expected, "0"]
