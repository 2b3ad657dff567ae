"""Shared, read-only fixtures for the training tests: a tiny base checkpoint and a WSI-Bench fixture."""

import pytest

from tests.helpers.tiny_models import save_tiny_checkpoint
from tests.training.fixtures import write_bench


@pytest.fixture(scope="session")
def base_checkpoint(tmp_path_factory):
    """A tiny random WSI-LLaVA checkpoint folder (8 slide tokens, 16-d tile features, 32-d slide tokens)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("base") / "tiny-base")


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    """WSI-Bench files (LLaVA JSON + official JSONL) for 8 patients, with .pt and .h5 slide inputs."""
    return write_bench(tmp_path_factory.mktemp("bench"))
