"""Shard resolution: --shard, torchrun/accelerate RANK/WORLD_SIZE, SLURM job arrays, their precedence and
every refusal (each with the fix in its message)."""

import pytest

from common.shards import Shard, ShardError, default_device, resolve_shard


def slurm(task_id, count, low, high, step="1"):
    """What SLURM exports for `sbatch --array=...` (job_mgr.c: COUNT = ids, MIN/MAX = lowest/highest id,
    STEP = the number after the spec's ':', else 1)."""
    return {"SLURM_ARRAY_TASK_ID": str(task_id), "SLURM_ARRAY_TASK_COUNT": str(count),
            "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_MAX": str(high), "SLURM_ARRAY_TASK_STEP": step}


def test_nothing_set_is_one_shard():
    assert resolve_shard(None, {}) == Shard(0, 1, "single process")


@pytest.mark.parametrize("environ, expected", [
    ({"RANK": "3", "WORLD_SIZE": "4"}, Shard(3, 4, "RANK/WORLD_SIZE")),
    ({"RANK": "0", "WORLD_SIZE": "1"}, Shard(0, 1, "single process")),
    (slurm(5, 8, 0, 7), Shard(5, 8, "SLURM array")),                        # --array=0-7
    (slurm(1, 16, 1, 16), Shard(0, 16, "SLURM array")),                     # --array=1-16: ids from 1
    (slurm(16, 16, 1, 16), Shard(15, 16, "SLURM array")),
    (slurm(6, 8, 0, 14, "2"), Shard(3, 8, "SLURM array")),                  # --array=0-15:2 (0, 2, ..., 14)
    (slurm(9, 4, 3, 12, "3"), Shard(2, 4, "SLURM array")),                  # --array=3-12:3 (3, 6, 9, 12)
    (slurm(40, 100, 0, 99), Shard(40, 100, "SLURM array")),                 # --array=0-99%10 (limit: same ids)
    (slurm(7, 1, 7, 7), Shard(0, 1, "SLURM array")),                        # --array=7
])
def test_shards_from_the_environment(environ, expected):
    assert resolve_shard(None, environ) == expected


def test_the_flag_wins_over_the_environment():
    environ = {"RANK": "1", "WORLD_SIZE": "2", **slurm(3, 4, 0, 3)}
    assert resolve_shard("2/5", environ) == Shard(2, 5, "--shard")


def test_torchrun_inside_an_array_task_splits_that_task_further():
    environ = {"RANK": "1", "WORLD_SIZE": "2", **slurm(3, 4, 0, 3)}
    assert resolve_shard(None, environ) == Shard(3 * 2 + 1, 8, "SLURM array x RANK/WORLD_SIZE")
    shares = [resolve_shard(None, {"RANK": str(r), "WORLD_SIZE": "2", **slurm(t, 4, 0, 3)}).index
              for t in range(4) for r in range(2)]
    assert sorted(shares) == list(range(8))                                 # every shard once, none twice


def test_the_shards_of_an_array_cover_every_item_once():
    items = list(range(23))
    seen = [item for task in range(0, 15, 2) for item in resolve_shard(None, slurm(task, 8, 0, 14, "2")).select(items)]
    assert sorted(seen) == items


@pytest.mark.parametrize("flag, message", [
    ("2/2", "need 0 <= i < n"),
    ("-1/2", "need 0 <= i < n"),
    ("x", "expected i/n"),
    ("1/2/3", "expected i/n"),
])
def test_bad_flags(flag, message):
    with pytest.raises(ShardError, match=message):
        resolve_shard(flag, {})


@pytest.mark.parametrize("environ, message", [
    ({"WORLD_SIZE": "4"}, "RANK is not"),
    ({"RANK": "4", "WORLD_SIZE": "4"}, "outside WORLD_SIZE=4"),
    ({"RANK": "one", "WORLD_SIZE": "4"}, "RANK='one' is not an integer"),
    ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE=0 must be >= 1"),
    ({"SLURM_ARRAY_TASK_ID": "3"}, "SLURM_ARRAY_TASK_COUNT/SLURM_ARRAY_TASK_MIN are not"),
    (slurm(3, 4, 1, 7, "1"), "not one range MIN-MAX:STEP"),                 # --array=1,3,5,7: no ':' so STEP 1
    (slurm(5, 5, 1, 20, "2"), "not one range MIN-MAX:STEP"),                # --array=1-7:2,20
    (slurm(3, 8, 0, 14, "2"), "is not one of the ids"),                     # an odd id in 0-15:2
    (slurm(20, 8, 0, 7), "is not one of the ids"),
    (slurm(1, 4, 0, 3, "0"), "not a valid array"),
])
def test_environments_that_do_not_describe_a_share_are_refused(environ, message):
    with pytest.raises(ShardError, match=message):
        resolve_shard(None, environ)


@pytest.mark.parametrize("environ", [{"WORLD_SIZE": "4"}, {"SLURM_ARRAY_TASK_ID": "3"}, slurm(3, 4, 1, 7)])
def test_a_refused_environment_names_the_way_out(environ):
    with pytest.raises(ShardError, match="--shard i/n"):
        resolve_shard(None, environ)


@pytest.mark.parametrize("gpus, environ, expected", [
    (0, {"LOCAL_RANK": "2"}, "cpu"),
    (4, {}, "cuda:0"),
    (4, {"LOCAL_RANK": "3"}, "cuda:3"),      # torchrun --nproc-per-node 4: each process its own GPU
    (2, {"LOCAL_RANK": "3"}, "cuda:1"),      # more processes than visible GPUs: shared round-robin
])
def test_the_default_device_is_this_processes_gpu(monkeypatch, gpus, environ, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert default_device(environ) == expected
