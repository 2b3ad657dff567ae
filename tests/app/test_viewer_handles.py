"""Viewer handles (ui/viewer/handles.py): a handle is seen only through its own session's token, until it
expires or the session ends; per-session limits and rate; where the browser library comes from."""

from __future__ import annotations

import pytest

from modeling.slide.errors import SlideError
from tests.helpers.synthetic_slides import write_aperio_slide, write_non_slide
from ui.viewer import settings as viewer_settings
from ui.viewer.handles import ViewerRegistry
from ui.viewer.overlays import Overlays, heatmap_overlay
from ui.viewer.ratelimit import TokenBucket
from ui.viewer.settings import OSD_CDN_SRI, OSD_CDN_URL, OSD_VERSION, ViewerSettings, sri_sha384


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    return write_aperio_slide(tmp_path_factory.mktemp("viewer") / "a.svs", width=2048, height=2048).path


def registry_with(clock=None, **settings) -> ViewerRegistry:
    return ViewerRegistry(ViewerSettings(**settings), clock=clock or Clock())


def test_a_handle_is_seen_only_through_its_own_sessions_token(slide_path):
    registry = registry_with()
    mine = registry.open("session-a", slide_path, name="biopsy.svs")
    theirs = registry.open("session-b", slide_path)
    assert registry.lookup(mine.session_token, mine.handle).name == "biopsy.svs"
    assert mine.session_token != theirs.session_token and mine.handle != theirs.handle
    assert registry.lookup(theirs.session_token, mine.handle) is None           # another session's handle
    assert registry.lookup(mine.session_token, "forged-handle") is None
    assert registry.lookup("forged-token", mine.handle) is None
    assert registry.lookup(mine.session_token + "x", mine.handle) is None
    assert str(slide_path) not in mine.url_base and mine.url_base.count("/") == 4
    assert registry.open("session-a", slide_path).session_token == mine.session_token   # one token per session


def test_handles_expire_when_unused_and_are_kept_alive_by_use(slide_path):
    clock = Clock()
    registry = registry_with(clock, handle_ttl_s=60)
    view = registry.open("s", slide_path)
    clock.now += 50
    assert registry.lookup(view.session_token, view.handle) is not None        # used: 60 s more
    clock.now += 50
    assert registry.lookup(view.session_token, view.handle) is not None
    clock.now += 61
    assert registry.lookup(view.session_token, view.handle) is None
    assert registry.stats()["handles"] == 0


def test_release_session_ends_every_handle_and_the_token(slide_path):
    registry = registry_with()
    first = registry.open("s", slide_path, slot="qa")
    second = registry.open("s", slide_path, slot="review")
    registry.release_session("s")
    assert registry.lookup(first.session_token, first.handle) is None
    assert registry.lookup(second.session_token, second.handle) is None
    again = registry.open("s", slide_path)
    assert again.session_token != first.session_token                          # old links stay dead
    registry.release_session("never-seen")                                      # harmless


def test_a_slot_holds_one_handle_and_a_session_a_bounded_number(slide_path):
    registry = registry_with(max_handles_per_session=2)
    first = registry.open("s", slide_path, slot="qa")
    replaced = registry.open("s", slide_path, slot="qa")
    assert registry.lookup(first.session_token, first.handle) is None
    other = registry.open("s", slide_path, slot="review")
    third = registry.open("s", slide_path, slot="extra")                       # the oldest (replaced) goes
    assert registry.lookup(replaced.session_token, replaced.handle) is None
    assert registry.lookup(other.session_token, other.handle) is not None
    assert registry.lookup(third.session_token, third.handle) is not None


def test_unreadable_slides_raise_and_leave_no_handle(tmp_path):
    registry = registry_with()
    with pytest.raises(SlideError):
        registry.open("s", write_non_slide(tmp_path / "notes.svs"))
    assert registry.stats()["handles"] == 0
    with pytest.raises(ValueError, match="session"):
        registry.open("", tmp_path / "notes.svs")


def test_overlays_change_within_the_session_only(slide_path):
    registry = registry_with()
    view = registry.open("s", slide_path, overlays=Overlays(tissue_lazy=True))
    assert view.overlays["tissue"]["available"] and not view.overlays["heatmap"]["available"]
    cells = [{"x": 0, "y": 0, "w": 512, "h": 512, "value": 1.0}]
    updated = registry.set_overlays("s", view.handle, heatmap=heatmap_overlay(cells))
    assert updated.overlays["heatmap"]["available"] and updated.version == view.version + 1
    with pytest.raises(KeyError):
        registry.set_overlays("someone-else", view.handle, heatmap=None)
    with pytest.raises(ValueError, match="unknown overlay"):
        registry.set_overlays("s", view.handle, arrows=[])
    entry = registry.lookup(view.session_token, view.handle)
    geojson, note = registry.tissue_geojson(entry)                              # found on the slide, once
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 3 and note == ""


def test_the_token_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(rate_per_s=10, burst=5, clock=clock)
    assert all(bucket.take()[0] for _ in range(5))
    allowed, retry_after = bucket.take()
    assert not allowed and retry_after == pytest.approx(0.1)
    clock.now += 0.25                                                           # 2.5 tokens back
    assert bucket.take()[0] and bucket.take()[0] and not bucket.take()[0]
    clock.now += 100
    assert sum(bucket.take()[0] for _ in range(10)) == 5                        # never more than the burst


def test_the_rate_limit_is_per_session(slide_path):
    clock = Clock()
    registry = registry_with(clock, rate_per_s=1, rate_burst=3)
    a, b = registry.open("a", slide_path), registry.open("b", slide_path)
    assert [registry.allow(a.session_token)[0] for _ in range(4)] == [True, True, True, False]
    assert registry.allow(b.session_token)[0]
    assert registry.allow(a.session_token)[1] == pytest.approx(1.0)


def test_the_script_comes_from_the_flag_then_npm_then_the_cdn(tmp_path, monkeypatch):
    local = tmp_path / "openseadragon.min.js"
    local.write_text("window.OpenSeadragon = function () {};")
    assert ViewerSettings(viewer_js=local).script_source().kind == "flag"
    monkeypatch.setattr(viewer_settings, "NPM_OSD_FILE", local)
    assert ViewerSettings().script_source().file == local
    monkeypatch.setattr(viewer_settings, "NPM_OSD_FILE", tmp_path / "missing.js")
    source = ViewerSettings().script_source()
    assert (source.kind, source.file, source.cdn_url, source.integrity) == ("cdn", None, OSD_CDN_URL, OSD_CDN_SRI)
    assert f"openseadragon@{OSD_VERSION}/" in OSD_CDN_URL
    with pytest.raises(ValueError, match="--viewer-js"):
        ViewerSettings(viewer_js=tmp_path / "nowhere.js")


def test_the_cdn_hash_is_the_npm_packages_file():
    if not viewer_settings.NPM_OSD_FILE.is_file():
        pytest.skip("openseadragon is not installed: `npm ci --prefix ui/viewer` (tests/run.sh does it)")
    assert sri_sha384(viewer_settings.NPM_OSD_FILE) == OSD_CDN_SRI
    package = viewer_settings.NPM_PREFIX / "node_modules" / "openseadragon"
    assert "Redistribution and use in source and binary forms" in (package / "LICENSE.txt").read_text()


def test_slides_are_found_under_the_slides_root_in_the_usual_layouts(tmp_path):
    from ui.viewer.slides_root import SlidesRoot

    root = tmp_path / "tcga"
    files = {"TCGA-AA-0001-01Z-00-DX1.5e1c.svs": "", "TCGA-BRCA/TCGA-AA-0002-01Z-00-DX1.9f2d.svs": "",
             "0b9c-uuid/TCGA-AA-0003-01Z-00-DX1.77aa.svs": "", "TCGA-AA-0004-01Z-00-DX1.svs": "",
             "TCGA-AA-0005-dicom/level-0.dcm": "", "TCGA-AA-0006-01Z-00-DX1.81bb.txt": ""}
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    index = SlidesRoot(root)
    assert index.find("TCGA-AA-0001-01Z-00-DX1.5e1c") == (root / "TCGA-AA-0001-01Z-00-DX1.5e1c.svs", "")
    assert index.find("TCGA-AA-0002-01Z-00-DX1.9f2d")[0] == root / "TCGA-BRCA" / "TCGA-AA-0002-01Z-00-DX1.9f2d.svs"
    assert index.find("TCGA-AA-0003-01Z-00-DX1")[0] == root / "0b9c-uuid" / "TCGA-AA-0003-01Z-00-DX1.77aa.svs"
    assert index.find("TCGA-AA-0004-01Z-00-DX1.4c4c")[0] == root / "TCGA-AA-0004-01Z-00-DX1.svs"
    assert index.find("TCGA-AA-0005-dicom")[0] == root / "TCGA-AA-0005-dicom"
    path, why = index.find("TCGA-AA-0006-01Z-00-DX1.81bb")
    assert path is None and "no file for slide TCGA-AA-0006" in why and str(tmp_path) not in why
    assert SlidesRoot(tmp_path / "missing").find("x")[0] is None
