"""Run a comparison in order, resuming from the runs already finished.

1. graph statistics of the train split for every model's graph (``graph_stats.json``);
2. the cost of a step, in isolation, before any training (``cost.json``; reused if present);
3. the learning-rate sweep (one seed, ``sweep_seed``, on the validation split) when more than
   one rate is given; each model keeps its rate with the lowest best validation error;
4. every seed: every model at ``steps`` steps, and each other model at the baseline's
   training time (``time``: steps x t_baseline / t_model from ``cost.json``) unless that is
   within 2 % of ``steps``;
5. the convergence runs (``long``: steps x ``long_factor``) of ``long_models``.

Runs go ``jobs`` at a time, each a one-thread ``fairchem`` process, in the order of
:func:`pending_runs` (seed by seed; a model's sweep before its first seed run, whose rate it
chooses); the report is rewritten after each. A run that fails is named with its log and the
others go on.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterator

from est_fairchem.compare.cost import equal_time_steps, measure_cost
from est_fairchem.compare.runs import execute
from est_fairchem.compare.study import (
    Run, Study, check_study, data_config, load_study, model_section, resumable, run_config,
    with_graph_statistics,
)
from est_fairchem.errors import InputError
from est_fairchem.testing.result_files import write_json



def finished(results: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))}


def chosen_learning_rates(study: Study, runs: dict[str, dict]) -> dict[str, float | None]:
    """Per model: the swept rate with the lowest best validation error (None until all of
    its sweep runs finished); the only rate when there is no sweep."""
    if len(study.lrs) == 1:
        return {name: study.lrs[0] for name in study.models}
    out: dict[str, float | None] = {}
    for name in study.models:
        swept = {lr: runs.get(Run("sweep", name, study.sweep_seed, study.steps, lr).name)
                 for lr in study.lrs}
        out[name] = (None if any(r is None for r in swept.values()) else
                     min(swept, key=lambda lr: swept[lr]["best_val"]))
    return out


def sweep_runs(study: Study) -> list[Run]:
    if len(study.lrs) == 1:
        return []
    return [Run("sweep", name, study.sweep_seed, study.steps, lr)
            for name in study.models for lr in study.lrs]


def seed_runs(study: Study, lrs: dict[str, float | None], cost: dict[str, Any]) -> list[Run]:
    """The steps and time runs, seed by seed (so a study cut short holds whole pairs)."""
    todo = []
    for seed in study.seeds:
        for name in study.models:
            if lrs[name] is None or seed not in study.seeds_of(name):
                continue
            todo.append(Run("steps", name, seed, study.steps, lrs[name]))
            if study.equal_time and name != study.baseline:
                steps = equal_time_steps(cost, study.baseline, name, study.steps)
                if abs(steps - study.steps) > study.same_time * study.steps:
                    todo.append(Run("time", name, seed, steps, lrs[name]))
    return todo


def long_runs(study: Study, lrs: dict[str, float | None]) -> list[Run]:
    if study.long_factor < 1:
        return []
    return [Run("long", name, seed, study.steps * study.long_factor, lrs[name])
            for seed in study.long_seeds for name in study.long_models if lrs[name] is not None]


def pending_runs(study: Study, cost: dict[str, Any], done: dict[str, dict],
                 long_first: bool = False) -> list[Run]:
    """The runs still to do whose settings are known, most useful first: seed by seed, model
    by model, each model's sweep just before its first seed run (which waits for the sweep to
    choose its rate; meanwhile the next models' runs go); the ``later`` models' runs after all
    the others'; then the long runs (first, with ``long_first``: on a machine lent for a few
    hours they fit only at its start). A study cut short holds whole paired seeds of the first
    models."""
    lrs = chosen_learning_rates(study, done)
    sweeps = {name: [run for run in sweep_runs(study) if run.model == name]
              for name in study.models}
    by_model_seed: dict[tuple[str, int], list[Run]] = {}
    for run in seed_runs(study, lrs, cost):
        by_model_seed.setdefault((run.model, run.seed), []).append(run)
    order: list[Run] = []
    first = [name for name in study.models if name not in study.later]
    for names in (first, study.later):
        for seed in study.seeds:
            for name in names:
                if seed in study.seeds_of(name):
                    order += sweeps.pop(name, []) + by_model_seed.get((name, seed), [])
    order += [run for runs in sweeps.values() for run in runs]  # models without seeds
    order = long_runs(study, lrs) + order if long_first else order + long_runs(study, lrs)
    return [run for run in order if run.name not in done]


def _graph_statistics(study: Study, models: dict[str, dict], results: Path,
                      progress: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Per model: avg_num_nodes and avg_degree of the train split with its graph (cached)."""
    from est_fairchem.tools.graph_stats import graph_options, graph_statistics

    path = results / "graph_stats.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    out = {}
    for name, model in models.items():
        options = graph_options(model)
        key = f"max_radius={options.max_radius},max_neighbors={options.max_neighbors}," \
              f"use_pbc={options.use_pbc}"
        if key not in cache:
            progress(f"graph statistics of the train split at {key}")
            stats = graph_statistics(_data_only(study, model, results), split="train")
            cache[key] = {"avg_num_nodes": stats.avg_num_nodes, "avg_degree": stats.avg_degree,
                          "structures": stats.structures, "total": stats.total}
            write_json(path, cache)
        out[name] = {k: cache[key][k] for k in ("avg_num_nodes", "avg_degree")}
    return out


def _data_only(study: Study, model: dict, results: Path) -> Path:
    """A config file of the dataset config with ``model`` (what graph_statistics reads)."""
    import yaml

    config = {**data_config(study), "model": model}
    path = results / ".graph_stats_config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def _stopping_runs_on_exit() -> Iterator[None]:
    """On Ctrl-C, SIGTERM (the CLI turns it into an exception) or an error, stop the
    ``fairchem`` runs in progress before the pool waits for them (a finished run's JSON is
    kept; an unfinished one restarts on resume)."""
    from est_fairchem.tools.fairchem_runs import stop_running

    try:
        yield
    except BaseException:
        stop_running()
        raise


def prepare(study: Study, results: Path) -> None:
    """Check the study and record it; a results folder of another study is refused."""
    check_study(study)
    results.mkdir(parents=True, exist_ok=True)
    saved = results / "study.json"
    if saved.exists():
        differs = resumable(load_study(saved), study)
        if differs:
            raise InputError(f"{saved}: these results were made with other {', '.join(differs)}"
                             f"; use another --out, or the same settings to resume")
    write_json(saved, study.to_json())


def run_study(study: Study, results: Path, work: Path, jobs: int = 1,
              progress: Callable[[str], None] = print,
              report: Callable[[], None] | None = None,
              long_first: bool = False) -> list[str]:
    """Everything still to do (the long runs first with ``long_first``); returns the names
    of runs that failed."""
    prepare(study, results)
    data = data_config(study)
    raw = {name: model_section(study, name) for name in study.models}
    graph = _graph_statistics(study, raw, results, progress)
    models = {name: with_graph_statistics(raw[name], graph[name], study.models[name])
              for name in raw}
    cost_file = results / "cost.json"
    if not cost_file.exists():
        progress("cost: timing every model in isolation (one thread, nothing else running)")
        configs = {name: run_config(study, Run("steps", name, 0, study.steps, study.lrs[0]),
                                    data, model) for name, model in models.items()}
        write_json(cost_file, measure_cost(study, configs, progress=progress))
    cost = json.loads(cost_file.read_text())
    failed: list[str] = []
    running: dict[Future, Run] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool, _stopping_runs_on_exit():
        while True:
            busy = {run.name for run in running.values()} | set(failed)
            ready = [run for run in pending_runs(study, cost, finished(results), long_first)
                     if run.name not in busy]
            while len(running) < jobs and ready:
                run = ready.pop(0)
                running[pool.submit(execute, study, run, data, models[run.model], cost,
                                    graph[run.model], results, work)] = run
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                run = running.pop(future)
                try:
                    out = future.result()
                    progress(f"{run.name}: test {out['test']:.5g}, best val {out['best_val']:.5g}")
                except Exception as error:  # noqa: BLE001 - reported, the others go on
                    failed.append(run.name)
                    progress(f"{run.name}: FAILED: {error}")
                if report is not None:
                    report()
    return failed
