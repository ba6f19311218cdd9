"""Model-cache maintenance: ``miaudit cache info|prune`` (issue 17)."""

from __future__ import annotations

import json
import os
import time
import warnings

import pytest
from typer.testing import CliRunner

import miaudit
from miaudit.cli import app
from miaudit.training.cache import cache_usage, prune_cache

pytest.importorskip("torch")
FAST = {"epochs": 3, "hidden": 16}


@pytest.fixture()
def cache(tmp_path):
    root = tmp_path / "cache"
    miaudit.audit(data="wine", model_params=FAST, attacks=["loss"], references=2,
                  cache_dir=root)
    return root


def test_info_counts_the_stored_models(cache):
    usage = cache_usage(cache)
    assert usage.counts["entries"] == 4 and usage.bytes["entries"] > 0
    assert usage.counts["damaged"] == usage.counts["temporary"] == 0
    assert usage.oldest_use <= usage.newest_use <= time.time()


def test_damaged_entries_and_stale_leftovers_are_pruned(cache):
    weights = next(cache.rglob("weights.safetensors"))
    weights.write_bytes(weights.read_bytes()[:20])  # truncated: fails its checksum
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        miaudit.audit(data="wine", model_params=FAST, attacks=["loss"], references=2,
                      cache_dir=cache)  # sets the damaged entry aside, trains it again
    leftover = cache / "ab" / ".abcdef012345.tmp-x"
    leftover.mkdir(parents=True)
    (leftover / "weights.safetensors").write_bytes(b"0" * 100)
    fresh = cache / "ab" / ".abcdef012346.tmp-y"
    fresh.mkdir()
    hour_ago = time.time() - 7200
    os.utime(leftover, (hour_ago, hour_ago))
    usage = cache_usage(cache)
    assert (usage.counts["damaged"], usage.counts["temporary"]) == (1, 2)
    assert usage.counts["entries"] == 4
    planned = prune_cache(cache, dry_run=True)
    assert (planned.counts["damaged"], planned.counts["temporary"]) == (1, 1)
    assert cache_usage(cache).counts["damaged"] == 1  # a dry run removes nothing
    removed = prune_cache(cache)
    assert removed.counts == planned.counts
    after = cache_usage(cache)
    assert (after.counts["damaged"], after.counts["temporary"], after.counts["entries"]) == \
        (0, 1, 4)  # the fresh leftover may belong to a run writing it now
    assert fresh.exists()


def test_models_unused_for_n_days_are_pruned_on_request(cache):
    assert prune_cache(cache, older_than_days=1).counts["entries"] == 0
    later = time.time() + 2 * 86400
    assert prune_cache(cache, older_than_days=1, now=later).counts["entries"] == 4
    assert cache_usage(cache).counts["entries"] == 0


def test_loading_a_model_counts_as_a_use(cache):
    meta = next(cache.rglob("meta.json"))
    old = time.time() - 10 * 86400
    for m in cache.rglob("meta.json"):
        os.utime(m, (old, old))
    miaudit.audit(data="wine", model_params=FAST, attacks=["loss"], references=2,
                  cache_dir=cache)
    assert meta.stat().st_mtime > old + 86400
    assert prune_cache(cache, older_than_days=5).counts["entries"] == 0


def test_the_commands(cache):
    runner = CliRunner()
    res = runner.invoke(app, ["cache", "info", "--cache-dir", str(cache), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["counts"]["entries"] == 4
    res = runner.invoke(app, ["cache", "prune", "--cache-dir", str(cache), "--older-than",
                              "0", "--dry-run", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.output)["dry_run"] is True
    res = runner.invoke(app, ["cache", "prune", "--cache-dir", str(cache), "--older-than",
                              "-1"])
    assert res.exit_code == 1 and "older_than_days must be >= 0" in res.output
    res = runner.invoke(app, ["cache", "info", "--cache-dir", str(cache)])
    assert res.exit_code == 0 and "stored models" in res.output
