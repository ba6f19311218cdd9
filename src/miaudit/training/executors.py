"""Training the models of a game: batched in chunks, cached, on one of three executors.

* ``inprocess`` (default): chunks of models trained one after another in this process,
  each chunk as one batched computation.
* ``process``: chunks trained in parallel by a local pool of worker processes.
* ``ray``: chunks trained as Ray tasks on a cluster (``pip install 'miaudit[ray]'``): a
  local instance started for the run, or the cluster at ``ray_address`` (``HOST:PORT``,
  ``ray://HOST:PORT``, ``auto``; else ``$RAY_ADDRESS``). The training data goes into the
  object store once (one ``ray.put``) and every task receives its reference, so each node
  fetches it once; a task ships only its rows of the design and its seeds. Every worker
  must import the same miaudit version as the driver (checked). miaudit disconnects from a
  cluster it did not start and shuts down only the local instance it started.

Every finished model goes into the cache at once, so an interrupted run resumes where it
stopped: models already in the cache are never trained again. For one seed and executor the
results are identical run after run; across executors (which chunk the models differently)
the logits agree to float32 rounding (about 1e-7).

Recipes that cannot be batched (DP-SGD, trained with Opacus; see
:func:`miaudit.training.batched.needs_one_by_one`) are trained one model after another
inside each chunk, on any executor (the ``process`` executor still spreads the chunks
over its workers). Each model's training facts (early stopping's best epoch, DP-SGD's
accounting) are stored with it in the cache; the statistics returned hold the DP-SGD
accounting (``dp``, with the accountant's ``epsilon``) and ``dp_epsilon_accountant``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from miaudit._version import __version__
from miaudit.defaults import CHECKPOINT_SECONDS, DEFAULT_MODELS_PER_BATCH, EXECUTORS
from miaudit.errors import ConfigError, DependencyError
from miaudit.training import Recipe
from miaudit.training.batched import (
    needs_one_by_one,
    predict_stacked,
    stacked_state_dicts,
    train_models,
)
from miaudit.training.cache import model_key, training_data_digest
from miaudit.training.checkpoint import Checkpoint
from miaudit.training.cnn import predict_stacked_cnn

#: Models trained together in one batched computation (bounds memory).
DEFAULT_CHUNK = DEFAULT_MODELS_PER_BATCH
#: Key of a model's training facts saying from which epoch it resumed (not cached).
RESUMED = "resumed_from_epoch"


def check_training(executor: str, workers: int | None, models_per_batch: int) -> None:
    """Refuse an unknown executor or non-positive worker and batch counts."""
    if executor not in EXECUTORS:
        raise ConfigError(f"Unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}.")
    if models_per_batch < 1 or (workers is not None and workers < 1):
        raise ConfigError("models_per_batch and workers must be >= 1.")


def model_seed(seed: int, m: int) -> int:
    """The training seed of model ``m`` of a game seeded with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, m]).generate_state(1)[0])


@dataclass(frozen=True)
class Chunk:
    """Models to train together: rows of the design with their seeds (the training data,
    shared by every chunk, travels apart)."""

    recipe: Recipe
    design: np.ndarray
    seeds: tuple[int, ...]
    n_classes: int
    device: str
    augment: str | None = None
    checkpoint: Checkpoint | None = None  # where the chunk checkpoints its training


ChunkResult = tuple[list[dict[str, np.ndarray]], np.ndarray, np.ndarray | None, list[dict]]


def train_chunk(chunk: Chunk, X: np.ndarray, y: np.ndarray, threads: int | None = None,
                on_epoch: Callable[[int, int], None] | None = None) -> ChunkResult:
    """Train a chunk on records ``X, y``; return each model's state dict (numpy), all
    logits ``(k, N, C)``, with augmented queries the logits on the other variants
    ``(k, A - 1, N, C)`` (else None), and each model's training facts (see
    :class:`~miaudit.training.batched.TrainedModels`). ``on_epoch(models, epoch)`` as in
    :func:`~miaudit.training.batched.train_models`."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    trained = train_models(chunk.recipe, X, y, chunk.design,
                           n_classes=chunk.n_classes, seeds=list(chunk.seeds),
                           device=chunk.device, on_epoch=on_epoch, checkpoint=chunk.checkpoint)
    if chunk.checkpoint is not None and chunk.checkpoint.resumed_epoch is not None:
        for entry in trained.info:  # said once per model, taken out before caching
            entry[RESUMED] = chunk.checkpoint.resumed_epoch
    params = trained.params
    if chunk.augment:
        queried = predict_stacked_cnn(params, X, device=chunk.device,
                                      augment=chunk.augment)
        logits, variants = queried[:, 0], queried[:, 1:]
    else:
        logits = predict_stacked(params, X, chunk.recipe.activation, device=chunk.device)
        variants = None
    return stacked_state_dicts(params), logits, variants, trained.info


def train_pool_models(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    design: np.ndarray,
    *,
    n_classes: int,
    seed: int,
    data_fingerprint: str,
    device: str = "cpu",
    executor: str = "inprocess",
    workers: int | None = None,
    ray_address: str | None = None,
    augment: str | None = None,
    cache=None,
    bar=None,
    chunk: int = DEFAULT_CHUNK,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> tuple[np.ndarray, np.ndarray | None, dict, list[dict[str, np.ndarray]]]:
    """Train (or load from ``cache``) one model per row of ``design``.

    With a ``cache`` (and not on Ray, whose nodes may not share this machine's disk), each
    chunk of MLP / logistic models checkpoints its training there
    every ``checkpoint_seconds`` (:mod:`miaudit.training.checkpoint`), so a run killed
    mid-training resumes where it was: its models are bit-identical to an uninterrupted
    run's.

    Returns
    -------
    logits : ndarray (M, N, C) float64
        Every model's logits on every record.
    variants : ndarray (M, A - 1, N, C) float64 or None
        With ``augment``: the logits on the augmented variants of every record.
    stats : dict
        ``trained`` and ``cached`` model counts, the executor and the chunk size;
        ``resumed`` (``models``, ``from_epoch``) when chunks resumed from checkpoints; on Ray
        ``ray``: the ``tasks`` run, the ``nodes`` that ran them and the ``data_bytes`` put
        in the object store once; with
        early stopping ``early_stopping`` (patience, best epoch of model 0 and the range
        over all models); with DP-SGD ``dp`` (the accounting of model 0's training set, the
        target's, whose size may differ from the others' (rows of unequal size train as
        well, see :func:`~miaudit.training.batched.train_batched`); see
        :class:`~miaudit.training.dp.DPAccounting`) and ``dp_epsilon_accountant``.
    weights : list of dict
        Every model's state dict (numpy arrays, keyed as the recipe's ``build_module``), so
        that the models can be queried on new inputs (label-only attacks).
    """
    check_training(executor, workers, chunk)
    n_models = design.shape[0]
    seeds = [model_seed(seed, m) for m in range(n_models)]
    digest = training_data_digest(X, y) if cache is not None else ""
    keys = [model_key(data_fingerprint=data_fingerprint, training_data=digest, recipe=recipe,
                      design_row=design[m], seed=seeds[m], n_classes=n_classes,
                      device=device, augment=augment)
            for m in range(n_models)]
    logits, variants, weights, info = _cached_models(cache, keys)
    todo = [m for m in range(n_models) if logits[m] is None]
    progress = _TrainingProgress(bar, len(todo), recipe.epochs, n_models == 1)
    if needs_one_by_one(recipe):  # trained one by one anyway: cache each model when done
        chunk = 1

    def checkpoint(rows: Sequence[int]) -> Checkpoint | None:
        if cache is None or needs_one_by_one(recipe) or recipe.name == "cnn" \
                or executor == "ray":  # a Ray node may not see this machine's cache
            return None  # only batched MLP / logistic runs checkpoint
        return cache.checkpoint([keys[m] for m in rows], every=checkpoint_seconds)

    def spec(rows: Sequence[int]) -> Chunk:
        return Chunk(recipe, design[list(rows)], tuple(seeds[m] for m in rows), n_classes,
                     device, augment, checkpoint(rows))

    resumed: dict[int, int] = {}  # model -> epochs it had done when resumed

    def done(rows: Sequence[int], states, chunk_logits, chunk_variants, chunk_info) -> None:
        for j, m in enumerate(rows):
            logits[m] = chunk_logits[j]
            weights[m] = states[j]
            variants[m] = None if chunk_variants is None else chunk_variants[j]
            info[m] = chunk_info[j]
            if RESUMED in info[m]:
                resumed[m] = info[m].pop(RESUMED)
            if cache is not None:
                cache.store(keys[m], weights=states[j], logits=chunk_logits[j],
                            variants=variants[m], meta={
                                "recipe": recipe.to_dict(), "seed": seeds[m],
                                "model_index": m, "data_fingerprint": data_fingerprint,
                                "n_classes": n_classes, "training_info": info[m],
                                "n_train_records": int(design[m].sum())})
        done_checkpoint = checkpoint(rows)
        if done_checkpoint is not None:  # the models are stored: nothing to resume
            done_checkpoint.remove()
        progress.chunk_done(rows)

    jobs = _Jobs(n_models, todo, chunk, spec, X, y, done, progress.on_epoch)
    if executor == "inprocess" or not todo:
        jobs.run_here()
    elif executor == "process":
        jobs.run_in_processes(workers)
    else:
        jobs.run_on_ray(workers, ray_address)
    stats = {"trained": len(todo), "cached": n_models - len(todo), "executor": executor,
             "models_per_batch": jobs.chunk, **jobs.stats,
             **_training_facts(recipe, design, info)}
    if resumed:
        stats["resumed"] = {"models": len(resumed), "from_epoch": min(resumed.values())}
    stacked_variants = None if augment is None else np.stack(variants).astype(np.float64)
    return np.stack(logits).astype(np.float64), stacked_variants, stats, weights


def _cached_models(cache, keys: list[str]) -> tuple[list, list, list, list[dict]]:
    """Per model: logits, variants, weights and training facts from ``cache`` (None, or
    ``{}`` for the facts, where a model is not cached or its entry is damaged)."""
    n = len(keys)
    logits: list[np.ndarray | None] = [None] * n
    variants: list[np.ndarray | None] = [None] * n
    weights: list[dict[str, np.ndarray] | None] = [None] * n
    info: list[dict] = [{} for _ in range(n)]
    for m, key in enumerate(keys if cache is not None else []):
        entry = cache.load(key)  # None when absent or damaged: trained again
        if entry is not None:
            logits[m], variants[m], weights[m] = entry.logits, entry.variants, entry.weights
            info[m] = entry.meta.get("training_info", {})
    return logits, variants, weights, info


def _training_facts(recipe: Recipe, design: np.ndarray, info: list[dict]) -> dict:
    """Early stopping's best epochs and DP-SGD's accounting, for the training statistics."""
    facts: dict = {}
    best = [i["best_epoch"] for i in info if i.get("best_epoch") is not None]
    if recipe.early_stopping and best:
        facts["early_stopping"] = {"patience": recipe.early_stopping,
                                   "best_epoch": info[0].get("best_epoch"),
                                   "best_epoch_range": [min(best), max(best)]}
    if recipe.dp:
        from miaudit.training.dp import dp_accounting

        # model 0's (the target's) training set: a Bernoulli target's size differs from
        # its references' (each model's own accounting is in its training info)
        accounting = dp_accounting(recipe, int(design[0].sum())).to_dict()
        facts["dp"] = accounting
        facts["dp_epsilon_accountant"] = accounting["epsilon"]
    return facts


class _TrainingProgress:
    """One progress-bar task for the models to train, counted in model-epochs, with the
    epoch reached in its description (in-process training reports each epoch; the other
    executors report a chunk when it is done)."""

    def __init__(self, bar, n_models: int, epochs: int, target_only: bool) -> None:
        self.bar, self.epochs = bar, max(1, epochs)
        self.label = "training target" if target_only else f"training {n_models} models"
        self.task = None
        self.counted: dict[tuple[int, ...], int] = {}  # model-epochs shown per chunk
        if bar is not None and n_models:
            self.task = bar.add_task(self.label, total=n_models * self.epochs)

    def on_epoch(self, rows: Sequence[int]) -> Callable[[int, int], None] | None:
        """The ``on_epoch(models, epoch)`` callback of the chunk of models ``rows``."""
        if self.task is None:
            return None
        key = tuple(rows)

        def report(models: int, epoch: int) -> None:
            self.counted[key] = self.counted.get(key, 0) + models
            self.bar.update(self.task, advance=models,
                            description=f"{self.label}, epoch {epoch}/{self.epochs}")

        return report

    def chunk_done(self, rows: Sequence[int]) -> None:
        """Count what the chunk did not report (early stopping, remote executors)."""
        if self.task is not None:
            shown = self.counted.pop(tuple(rows), 0)
            self.bar.update(self.task, advance=max(0, len(rows) * self.epochs - shown))


class _Jobs:
    """The models to train (``todo``) split in chunks of at most ``chunk``, run on one of
    the executors; ``done(rows, *results)`` receives each chunk as it finishes."""

    def __init__(self, n_models: int, todo: list[int], chunk: int,
                 spec: Callable[[Sequence[int]], Chunk],
                 X: np.ndarray, y: np.ndarray, done: Callable[..., None],
                 on_epoch: Callable[[Sequence[int]], Callable | None]) -> None:
        self.n_models, self.todo = n_models, todo
        self.chunk, self.spec, self.X, self.y = chunk, spec, X, y
        self.done, self.on_epoch = done, on_epoch
        self.stats: dict = {}  # executor facts for the training statistics

    def split(self, parallel: int | None = None) -> list[list[int]]:
        """The chunks of models to train; with ``parallel`` workers, small enough to keep
        them all busy. The chunks are cut from all the models, not only those left to
        train, so a resumed run cuts them as the first run did (a chunk's checkpoint is
        found by its models), and the chunks with every model cached are skipped."""
        if parallel:
            self.chunk = min(self.chunk, -(-self.n_models // parallel))
        left = set(self.todo)
        chunks = [[m for m in range(i, min(i + self.chunk, self.n_models)) if m in left]
                  for i in range(0, self.n_models, self.chunk)]
        return [rows for rows in chunks if rows]

    def run_here(self) -> None:
        """Train the chunks one after another in this process."""
        for rows in self.split():
            self.done(rows, *train_chunk(self.spec(rows), self.X, self.y,
                                         on_epoch=self.on_epoch(rows)))

    def run_in_processes(self, workers: int | None) -> None:
        """Train the chunks in a pool of ``workers`` spawned processes (default: one per
        CPU)."""
        import concurrent.futures as cf
        import multiprocessing as mp

        chunks = self.split(workers or os.cpu_count() or 1)
        n = workers or min(len(chunks), os.cpu_count() or 1)
        threads = max(1, (os.cpu_count() or 1) // n)
        with cf.ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(train_chunk, self.spec(rows), self.X, self.y, threads): rows
                       for rows in chunks}
            try:
                for fut in cf.as_completed(futures):
                    self.done(futures[fut], *fut.result())  # finished chunks cached at once
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    def run_on_ray(self, workers: int | None, address: str | None) -> None:
        """Train the chunks as Ray tasks on the cluster at ``address`` (default: the session
        already open, ``$RAY_ADDRESS``, else a local instance), one chunk per CPU of the
        cluster (or per worker), the training data put in the object store once."""
        try:
            import ray
        except ImportError:
            raise DependencyError("The ray executor needs Ray: pip install 'miaudit[ray]'."
                                  ) from None
        started = not ray.is_initialized()  # else the caller's session: left connected
        if started:  # a new local instance only without an address (argument or variable)
            local = address is None and not os.environ.get("RAY_ADDRESS")
            ray.init(address=address, log_to_driver=False,
                     **({"include_dashboard": False} if local else {}))
        try:
            chunks = self.split(workers or int(ray.cluster_resources().get("CPU", 1)) or 1)
            data = ray.put((self.X, self.y))  # once: every task gets the reference
            task = ray.remote(_ray_task)
            refs = {task.remote(self.spec(rows), data, __version__): rows for rows in chunks}
            nodes: set[str] = set()
            pending = list(refs)
            try:
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    result, node, version = ray.get(ready[0])
                    if version != __version__:
                        raise ConfigError(f"Ray node {node} runs miaudit {version}, this "
                                          f"machine {__version__}: install the same version "
                                          "on every node (or ship it in a runtime_env).")
                    nodes.add(node)
                    self.done(refs[ready[0]], *result)
            except BaseException:
                for ref in pending:  # a cluster we only joined keeps no orphaned tasks
                    ray.cancel(ref)
                raise
            self.stats["ray"] = {"tasks": len(chunks), "nodes": len(nodes),
                                 "data_bytes": int(self.X.nbytes + self.y.nbytes)}
        finally:
            if started:  # a cluster at an address is only disconnected from, never stopped
                ray.shutdown()


def _ray_task(chunk: Chunk, data: tuple[np.ndarray, np.ndarray], version: str
              ) -> tuple[ChunkResult | None, str, str]:
    """A Ray task: train ``chunk`` on ``data`` (resolved from the object store, read-only);
    return the results with the node that ran it and its miaudit version (no results, and
    no training, when that version is not the driver's ``version``)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    if version != __version__:
        return None, node, __version__
    return train_chunk(chunk, *data), node, __version__
