"""Export -> push_to_hub -> load_dataset round trip through the loopback Hub stand-in (tests/helpers/hub_server.py)."""

import json

import pytest

from curation import cli
from curation.export import export_dataset
from curation.hub_push import push_export
from curation.store.views import PermissionDenied
from tests.curation.conftest import imported_pair


@pytest.fixture
def settled(store):
    store.save_imported([imported_pair(i, patient=f"TCGA-H{i:03d}-0001") for i in range(30)], "fixture")
    store.add_annotator("lead", role="lead")
    for item in store.queue("lead", limit=100):
        if item.pair_id % 5 == 0:
            store.submit_review(item.pair_id, "lead", "edited", item.version, answer=f"Edited {item.pair_id}.")
        else:
            store.submit_review(item.pair_id, "lead", "accepted", item.version)
    return store


def test_push_then_load_dataset_back(settled, hub, tmp_path):
    from datasets import load_dataset

    exported = export_dataset(settled, tmp_path / "export", "lead", repo_id="tester/curated-wsi-bench")
    with pytest.raises(PermissionDenied):
        push_export(settled, tmp_path / "export", "tester/curated-wsi-bench", actor="nobody")
    result = push_export(settled, tmp_path / "export", "tester/curated-wsi-bench", actor="lead")
    local = exported["dataset"]
    assert result["splits"] == {k: v.num_rows for k, v in local.items()}
    files = hub.state.files("tester/curated-wsi-bench", repo_type="dataset")
    assert "README.md" in files and "summary.json" in files
    assert any(name.startswith("llava/Grading_") for name in files)
    assert any(name.startswith("jsonl/WSI-Bench-") for name in files)
    assert "tester/curated-wsi-bench" in files["README.md"].decode()
    remote = load_dataset("tester/curated-wsi-bench")
    assert set(remote) == set(local)
    for split in local:
        assert sorted(remote[split]["id"]) == sorted(local[split]["id"])
        by_id = {r["id"]: r for r in remote[split]}
        for row in local[split]:
            assert by_id[row["id"]]["answer"] == row["answer"]
            assert by_id[row["id"]]["conversations"] == row["conversations"]
    assert json.loads(files["summary.json"])["pairs"] == 30
    assert [a.action for a in settled.audit_log(actor="lead")][-2:] == ["export", "push"]


def test_cli_push_exports_and_pushes(settled, hub, tmp_path, capsys):
    store_path = str(tmp_path / "store.sqlite")
    code = cli.main(["push", "--store", store_path, "--repo-id", "tester/cli-push", "--as", "lead"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["repo_id"] == "tester/cli-push" and sum(out["splits"].values()) == 30
    assert "README.md" in hub.state.files("tester/cli-push", repo_type="dataset")
