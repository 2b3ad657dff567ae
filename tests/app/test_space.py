"""The Space: its card, its requirements, the ZeroGPU shim, and `wsi-llava deploy-space` via the Hub stand-in."""

import re
from pathlib import Path

import yaml
from huggingface_hub import HfApi

from ui.space_deploy import deploy_space, main as deploy_main
from ui.zerogpu import ON_ZEROGPU, gpu

ROOT = Path(__file__).resolve().parents[2]


def card_front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "the Space README must start with YAML front matter"
    return yaml.safe_load(match.group(1))


def pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = [line.split("==", 1) for line in lines if line and not line.startswith(("#", "-e"))]
    return {name.split("[")[0]: version for name, version in pairs}           # extras: gradio[oauth] -> gradio


def test_space_card_has_the_fields_the_hub_reads():
    card = card_front_matter((ROOT / "spaces" / "README.md").read_text())
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py" and card["hf_oauth"] is True
    assert str(card["python_version"]) == "3.11" and card["suggested_hardware"].startswith("zero-")
    assert card["sdk_version"] == pins(ROOT / "requirements.txt")["gradio"]
    assert "prov-gigapath/prov-gigapath" in card["models"] and "Lucas-yuc/WSIBench-pt" in card["datasets"]


def test_space_requirements_equal_the_project_pins_without_gradio():
    project = pins(ROOT / "requirements.txt")
    project.pop("gradio")
    assert pins(ROOT / "spaces" / "requirements.txt") == project


def test_spaces_folder_does_not_shadow_huggingface_spaces_package():
    assert not (ROOT / "spaces" / "__init__.py").exists()
    assert not ON_ZEROGPU                                 # no ZeroGPU package here: a no-op

    @gpu(duration=60)
    def double(x):
        return 2 * x

    assert double(3) == 6 and gpu(double) is double


def test_deploy_space_uploads_app_packages_card_and_requirements(hub, capsys):
    assert deploy_main(["my-org/studio", "--dry-run"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"README.md", "requirements.txt", "app.py", "modeling/__init__.py"} <= set(listed)
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in listed)

    deploy_space("tester/studio")
    files = hub.state.files("tester/studio", repo_type="space")
    assert set(files) - {".gitattributes"} == set(listed)       # the Hub adds .gitattributes itself
    assert card_front_matter(files["README.md"].decode())["sdk"] == "gradio"
    info = HfApi().space_info("tester/studio")
    assert info.id == "tester/studio"
