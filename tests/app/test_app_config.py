"""`python app.py` settings: flags over environment variables over defaults, errors that name the setting,
nothing secret among them, and one documented table for every setting."""

from __future__ import annotations

import pytest

from ui.config import SETTINGS, AppConfigError, load_config, markdown_table


def test_defaults_start_locally_with_the_published_model_and_the_offline_judge():
    config = load_config([], environ={})
    assert (config.host, config.port, config.share) == ("127.0.0.1", 7860, False)
    assert config.model == "Lucas-yuc/WSI-LLaVA-7b" and config.load_4bit == "auto" and config.preload
    assert config.features_root == "Lucas-yuc/WSIBench-pt" and config.judge == "offline"
    assert config.max_upload_bytes == 4096 * 1024 * 1024 and config.allowed_roots == ()


def test_flags_win_over_environment_variables_which_win_over_defaults(tmp_path):
    environ = {"WSI_LLAVA_PORT": "7000", "GRADIO_SERVER_NAME": "0.0.0.0", "WSI_LLAVA_SHARE": "yes",
               "WSI_LLAVA_MAX_UPLOAD_MB": "0.5", "WSI_LLAVA_ALLOWED_ROOTS": str(tmp_path),
               "WSI_LLAVA_TILE_WORKERS": "auto", "WSI_LLAVA_SLIDE_ENCODER": "none", "WSI_LLAVA_BENCHMARK": ""}
    config = load_config(["--port", "7001", "--share", "false"], environ=environ)
    assert (config.host, config.port, config.share) == ("0.0.0.0", 7001, False)
    assert config.max_upload_bytes == 512 * 1024 and config.allowed_roots == (tmp_path,)
    assert config.tile_workers is None and config.slide_encoder is None and not config.examples_enabled
    assert load_config(["--share"], environ={}).share is True


@pytest.mark.parametrize("argv, environ, message", [
    (["--port", "http"], {}, "--port: 'http' is not valid"),
    ([], {"WSI_LLAVA_LOAD_4BIT": "sometimes"}, "WSI_LLAVA_LOAD_4BIT: 'sometimes' is not valid .*auto, always, never"),
    ([], {"WSI_LLAVA_MAX_UPLOAD_MB": "-1"}, "WSI_LLAVA_MAX_UPLOAD_MB: '-1' is not valid .*positive"),
    (["--judge", "openai"], {}, "--judge openai needs --judge-model"),
    (["--judge-api-key-env", "sk-abc123"], {}, "must be the NAME of an environment variable"),
    (["--allowed-roots", "/no/such/folder"], {}, "/no/such/folder is not a folder"),
    (["--viewer-js", "/no/such/openseadragon.min.js"], {}, "--viewer-js / WSI_LLAVA_VIEWER_JS: .* is not a file"),
    ([], {"WSI_LLAVA_SLIDES_ROOT": "/no/such/slides"}, "--slides-root / WSI_LLAVA_SLIDES_ROOT: /no/such/slides is not "
                                                       "a folder"),
])
def test_bad_values_name_the_flag_or_variable(argv, environ, message):
    with pytest.raises(AppConfigError, match=message):
        load_config(argv, environ=environ)


def test_shown_settings_hide_store_passwords_and_hold_no_secret():
    config = load_config(["--review-store", "postgresql+psycopg://lead:hunter2@db:5432/reviews"],
                         environ={"HF_TOKEN": "hf_secret", "OPENAI_API_KEY": "sk-secret"})
    shown = dict(config.public_items())
    assert shown["WSI_LLAVA_REVIEW_STORE"] == "postgresql+psycopg://lead:***@db:5432/reviews"
    assert "hunter2" not in str(shown) and "secret" not in str(shown) and "HF_TOKEN" not in shown


def test_every_setting_has_a_flag_a_variable_and_a_row_in_the_documentation():
    table = markdown_table()
    assert len({s.env for s in SETTINGS}) == len({s.flag for s in SETTINGS}) == len(SETTINGS)
    for setting in SETTINGS:
        assert setting.env.startswith("WSI_LLAVA_") and f"`{setting.env}`" in table and f"`{setting.flag}`" in table


def test_the_viewer_settings_reach_the_apps_one_viewer_registry(tmp_path):
    from app import viewer_services

    script = tmp_path / "openseadragon.min.js"
    script.write_text("window.OpenSeadragon = function () {};")
    assert load_config([], environ={}).viewer_js is None and load_config([], environ={}).slides_root is None
    config = load_config(["--viewer-js", str(script), "--slides-root", str(tmp_path), "--session-ttl-min", "30"],
                         environ={})
    services = viewer_services(config)
    settings = services["viewer"].settings
    assert settings.viewer_js == script and settings.handle_ttl_s == 30 * 60
    assert settings.script_source().kind == "flag" and services["slides_root"].root == tmp_path
    assert viewer_services(load_config([], environ={}))["slides_root"] is None
