"""`rubiks train CONFIG`, `rubiks sweep SPACE` and `rubiks pareto`: tracked training runs, sweeps of
them, and the accuracy-vs-cost frontier a sweep found."""
from __future__ import annotations

import argparse
import json
import sys

from ._common import (add_address, add_json, add_tracking_args, add_tracking_uri, emit, init_ray, print_json,
                      user_error)
from .tracking import browse_hint


def add_parsers(sub) -> None:
    train = sub.add_parser("train", help="train a model with Ray Train (tracked in MLflow)")
    train.add_argument("config", help="training YAML (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    add_address(train)
    add_tracking_uri(train)
    add_json(train)
    train.set_defaults(func=_train)

    sweep = sub.add_parser("sweep", help="a Ray Tune sweep of tracked training runs (tune_spaces/*.yaml)")
    sweep.add_argument("space", help="search-space YAML")
    add_address(sweep)
    add_tracking_uri(sweep)
    sweep.add_argument("--storage-path", help="override the base config's storage_path")
    sweep.add_argument("--verbose", type=int, default=1, help="Tune's console verbosity 0..3")
    add_json(sweep)
    sweep.set_defaults(func=_sweep)

    pareto = sub.add_parser("pareto", help="the accuracy-vs-cost Pareto frontier of a sweep")
    pareto.add_argument("--experiment", default="rubiks", help="MLflow experiment (its latest sweep is shown)")
    pareto.add_argument("--run", help="a sweep's parent run id (instead of the latest)")
    pareto.add_argument("--cost", choices=["gmacs", "mparams", "latency"], default="gmacs",
                        help="latency: the trials' measured CPU latency (models.profile.measure_latency)")
    add_tracking_args(pareto)
    add_json(pareto)
    pareto.set_defaults(func=_pareto)


def _train(args: argparse.Namespace) -> int:
    from rubiks_service.config_files import ConfigError
    from rubiks_service.tracking.init_source import resolve_init_from
    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri
    from rubiks_service.train.config import load_config
    from rubiks_service.train.init_from import InitFromError
    from rubiks_service.tracking.tracked_training import run_tracked_training
    from rubiks_service.train.trainer import check_manifests, check_resume, check_storage
    from rubiks_service.storage import StorageError

    try:
        cfg = load_config(args.config, args.set)
        uri = resolve_tracking_uri(args.tracking_uri, cfg.storage_path)  # storage in a bucket names its store
        check_storage(cfg)  # a refused bucket or a missing manifest: one line now, not after Ray started
        # a missing, unresolvable or incompatible model.init_from: one line, before Ray starts
        resolve_init_from(cfg, uri, echo=False)
        check_manifests(cfg)  # a manifest that does not parse or has no usable row: likewise
        check_resume(cfg)  # a crafted checkpoint to resume from: likewise (and never retried)
    except (ConfigError, StorageError, InitFromError) as exc:
        return user_error("train", exc)
    init_ray(args.address)
    summary = run_tracked_training(cfg, uri)
    emit(summary, args.json, width=20)
    if not args.json:
        print(f"\nbrowse: {browse_hint(uri, cfg.storage_path, cfg.experiment)}")
    return 0


def check_init_from(space, args: argparse.Namespace) -> None:
    """Every trial's model.init_from resolved and checked (`InitFromError`) before Ray starts."""
    from rubiks_service.tracking.init_source import resolve_init_from
    from rubiks_service.tracking.mlflow_store import resolve_tracking_uri

    for point in space.space.grid_points():
        trial = space.trial_config(point["set"])
        if trial.model.init_from is None:
            continue
        storage = args.storage_path or trial.storage_path
        resolve_init_from(trial.model_copy(update={"storage_path": storage}),
                          resolve_tracking_uri(args.tracking_uri, storage), echo=False)


def _sweep(args: argparse.Namespace) -> int:
    from rubiks_service.config_files import ConfigError
    from rubiks_service.tracking.pareto import format_table
    from rubiks_service.tracking.sweep_results import TABLE_COLUMNS, comparison_rows, frontier
    from rubiks_service.train import metric_names as names
    from rubiks_service.train.init_from import InitFromError
    from rubiks_service.tune.space import load_space
    from rubiks_service.tune.sweep import run_sweep

    try:
        space = load_space(args.space)
        check_init_from(space, args)
    except (ConfigError, InitFromError) as exc:
        return user_error("sweep", exc)
    init_ray(args.address)
    outcome = run_sweep(space, tracking_uri=args.tracking_uri, storage_path=args.storage_path, verbose=args.verbose)
    if args.json:
        print(json.dumps(outcome.__dict__, indent=2, default=str))
        return 0 if outcome.points else 1
    print(f"\nsweep {space.space.name!r}: {outcome.trials} trials ({outcome.errors} failed), "
          f"MLflow experiment {outcome.experiment!r}, parent run {outcome.parent_run_id}")
    print(f"\nall trials ({names.VAL_TOP1}: last epoch; {names.ONE_CLIP_TOP1}: final evaluation):\n"
          + format_table(outcome.trials_table, ("label", "kind", "model", "outcome", names.VAL_TOP1,
                                                names.ONE_CLIP_TOP1, names.GMACS)))
    if outcome.points:
        rows = comparison_rows(outcome.points)
        shown = ("label", "kind", "model", "variant", "budget", names.ONE_CLIP_TOP1, names.TWO_CLIP_TOP1, names.GMACS,
                 names.LATENCY_MS, f"frontier_{names.GMACS}", f"frontier_{names.LATENCY_MS}")
        columns = [c for c in shown if any(r.get(c, "") != "" for r in rows)]
        print("\ncomparison by family (frontier_*: on its family's accuracy-vs-cost frontier):\n"
              + format_table(rows, columns))
    print("\nPareto frontier over all trials (1-clip top-1 vs GMACs):\n"
          + format_table(frontier(outcome.points), TABLE_COLUMNS[:-1]))
    if outcome.frontier_png:
        print(f"\nplot (one colour per family, each family's frontier): {outcome.frontier_png}")
        print(f"comparison table: {outcome.frontier_png.rsplit('/', 1)[0]}/comparison.csv")
    if outcome.registered:
        reg = outcome.registered
        print(f"registered model {reg['name']!r}: versions {[v['version'] for v in reg['versions']]}, "
              f"aliases {reg['aliases']} (e.g. rubiks predict models:/{reg['name']}@best-accuracy VIDEO)")
    storage_path = args.storage_path or space.trial_config({}).storage_path
    print(f"\nbrowse: {browse_hint(args.tracking_uri, storage_path, outcome.experiment)}")
    return 0 if outcome.points else 1


def _pareto(args: argparse.Namespace) -> int:
    from rubiks_service.tracking.mlflow_store import make_client, resolve_tracking_uri
    from rubiks_service.tracking.pareto import format_table
    from rubiks_service.tracking.sweep_results import TABLE_COLUMNS, frontier, latest_sweep, sweep_points
    from rubiks_service.train import metric_names as names

    client = make_client(resolve_tracking_uri(args.tracking_uri, args.storage_path))
    parent = client.get_run(args.run) if args.run else latest_sweep(client, args.experiment)
    if parent is None:
        print(f"rubiks pareto: no sweep found in experiment {args.experiment!r}", file=sys.stderr)
        return 1
    exp_name = client.get_experiment(parent.info.experiment_id).name
    points = sweep_points(client, exp_name, parent.info.run_id)
    cost = {"latency": names.LATENCY_MS}.get(args.cost, args.cost)
    if points and not any(cost in p for p in points):
        print(f"rubiks pareto: no trial of sweep {parent.info.run_id} logged {cost} (measured by trials since "
              "latency became a cost)", file=sys.stderr)
        return 1
    front = frontier([p for p in points if cost in p], cost)
    if args.json:
        print_json({"parent_run_id": parent.info.run_id, "cost": cost, "frontier": front,
                    "points": points})  # the real stdout (_common.json_stdout)
    else:
        print(f"sweep {parent.info.run_name!r} ({parent.info.run_id}): {len(points)} finished trials")
        columns = TABLE_COLUMNS if cost in TABLE_COLUMNS else (*TABLE_COLUMNS[:-1], cost, TABLE_COLUMNS[-1])
        print(format_table(front, columns))
    return 0
