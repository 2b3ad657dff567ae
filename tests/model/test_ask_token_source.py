"""`wsi-llava ask --slide-token-source`: the slide-encoder hidden state pooled into the slide tokens, shown."""

from modeling.ask import main
from tests.helpers.tiny_models import save_tiny_checkpoint, write_features_h5, write_slide_tokens_pt

FAST = ["--max-new-tokens", "4", "--seed", "0", "--temperature", "0"]


def test_ask_names_the_slide_token_source_and_takes_another(tmp_path, capsys):
    checkpoint = save_tiny_checkpoint(tmp_path / "ckpt", tile_feature_dim=192, encoder_overrides={"depth": 12})
    h5 = write_features_h5(tmp_path / "slide.h5", n_tiles=40, dim=192)
    assert main([str(h5), "-q", "Grade?", "--model", str(checkpoint), *FAST]) == 0
    assert "; slide tokens: wsi-llava-readme" in capsys.readouterr().out
    assert main([str(h5), "-q", "Grade?", "--model", str(checkpoint), "--slide-token-source", "trident", *FAST]) == 0
    assert "; slide tokens: trident" in capsys.readouterr().out


def test_a_token_source_for_precomputed_tokens_is_an_error(tmp_path, capsys):
    pt = write_slide_tokens_pt(tmp_path / "s.pt")
    assert main([str(pt), "-q", "Grade?", *FAST]) == 0
    assert "; slide tokens: released" in capsys.readouterr().out
    assert main([str(pt), "-q", "Grade?", "--slide-token-source", "trident", *FAST]) == 1
    err = capsys.readouterr().err
    assert "holds precomputed slide tokens (released)" in err and "Traceback" not in err
