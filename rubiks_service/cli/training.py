"""`rubiks train CONFIG`, `rubiks sweep SPACE` and `rubiks pareto`: tracked training runs, sweeps of
them, and the accuracy-vs-cost frontier a sweep found."""
from __future__ import annotations

import argparse
import json
import sys

from ._common import (add_address, add_json, add_tracking_args, add_tracking_uri, emit, init_ray, print_json,
                      user_error)
from .run_log import default_log_path, echo_matching, output_to_log
from .tracking import browse_hint, rubiks_command


def add_parsers(sub) -> None:
    train = sub.add_parser("train", help="train a model with Ray Train (tracked in MLflow)")
    train.add_argument("config", help="training YAML (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    add_address(train)
    add_tracking_uri(train)
    train.add_argument("--verbose", action="store_true",
                       help="show Ray's and the workers' output here (default: in a log file; epochs shown)")
    add_json(train)
    train.set_defaults(func=_train)

    sweep = sub.add_parser("sweep", help="a Ray Tune sweep of tracked training runs (tune_spaces/*.yaml)")
    sweep.add_argument("space", help="search-space YAML")
    add_address(sweep)
    add_tracking_uri(sweep)
    sweep.add_argument("--storage-path", help="override the base config's storage_path")
    sweep.add_argument("--verbose", action="store_true",
                       help="show Ray's, Tune's and the trials' output here (default: in a log file, with one "
                            "progress display)")
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
    from rubiks_service.tracking.mlflow_store import check_reachable, resolve_tracking_uri
    from rubiks_service.tracking.tracked_training import run_tracked_training
    from rubiks_service.train.config import load_config

    from rubiks_service.storage import StorageError
    from rubiks_service.tracking.init_source import resolve_init_from
    from rubiks_service.train.init_from import InitFromError
    from rubiks_service.train.trainer import check_manifests, check_resume, check_storage

    try:
        cfg = load_config(args.config, args.set)
        # storage in a bucket names its MLflow store; an unreachable server is one line before Ray starts
        check_reachable(resolve_tracking_uri(args.tracking_uri, cfg.storage_path))
        check_storage(cfg)  # a refused bucket or a missing manifest: one line now, not after Ray started
        if cfg.data.train_frames is None:
            check_manifests(cfg)  # a manifest that does not parse or has no usable row: likewise
        check_resume(cfg)  # a crafted checkpoint to resume from: likewise (and never retried)
        # a missing, unresolvable or incompatible model.init_from: likewise
        resolve_init_from(cfg, resolve_tracking_uri(args.tracking_uri, cfg.storage_path), echo=False)
    except (ConfigError, StorageError, InitFromError) as exc:
        return user_error("train", exc)
    log_path = None if args.verbose else default_log_path(cfg.storage_path, "train")
    with output_to_log(log_path) as term:
        if log_path:
            print(f"training {cfg.model.name} for {cfg.optim.epochs} epochs; Ray and training output go to {log_path}",
                  file=term.console, flush=True)
        with echo_matching(log_path, term.console, EPOCH_LINE):
            init_ray(args.address)
            uri = resolve_tracking_uri(args.tracking_uri, cfg.storage_path)
            summary = run_tracked_training(cfg, uri)
    emit(summary, args.json, width=20)
    if not args.json:
        print(f"\nbrowse: {browse_hint(uri, cfg.storage_path, cfg.experiment)}")
        if log_path:
            print(f"log: {log_path}")
    return 0


EPOCH_LINE = r"\[train\] (?:epoch \d+/\d+ loss|resuming|init_from)"  # the per-epoch lines shown while a run trains


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
    from rubiks_service.train.init_from import InitFromError
    from rubiks_service.tune.space import load_space
    from rubiks_service.tracking.mlflow_store import check_reachable, resolve_tracking_uri
    from rubiks_service.tune.sweep import run_sweep

    try:
        space = load_space(args.space)
        check_init_from(space, args)
        # an unreachable MLflow server: one line now, not after Ray and the trials started
        check_reachable(resolve_tracking_uri(args.tracking_uri, args.storage_path or space.trial_config({}).storage_path))
    except (ConfigError, InitFromError) as exc:
        return user_error("sweep", exc)
    storage_path = args.storage_path or space.trial_config({}).storage_path
    trials = len(space.space.grid_points()) * space.space.num_samples
    log_path = None if args.verbose else default_log_path(storage_path, "sweep")
    with output_to_log(log_path) as term:
        if log_path:
            seeds = f" ({len(space.space.seeds)} seeds each)" if space.space.seeds else ""
            print(f"sweep {space.space.name!r}: {trials} trials{seeds}; Ray, Tune and training output go to {log_path}",
                  file=term.console, flush=True)
        init_ray(args.address)
        outcome = run_sweep(space, tracking_uri=args.tracking_uri, storage_path=args.storage_path,
                            verbose=1 if args.verbose else 0, progress_stream=None if args.verbose else term.console)
    if args.json:
        print(json.dumps({**outcome.__dict__, "log": log_path}, indent=2, default=str))
        return 0 if outcome.points else 1
    print(f"\nsweep {space.space.name!r}: {outcome.trials} trials ({outcome.errors} failed), "
          f"MLflow experiment {outcome.experiment!r}, parent run {outcome.parent_run_id}")
    failed = [r for r in outcome.trials_table if r["outcome"] != "finished"]
    if failed:
        print("trials that did not finish:\n" + format_table(failed, ("label", "kind", "model", "outcome")))
    if outcome.points:
        print_comparison(outcome.points, outcome.conclusions)
    if outcome.frontier_png:
        print(f"\nplot (one colour per family, bars: 95% intervals): {outcome.frontier_png}")
    if outcome.report:
        print(f"sweep report (HTML: conclusions, frontier, per-class results, sample clips): {outcome.report}")
    if outcome.registered:
        reg = outcome.registered
        print(f"registered model {reg['name']!r}: versions {[v['version'] for v in reg['versions']]}, "
              f"aliases {reg['aliases']}\n  predict with it: {rubiks_command()} predict models:/{reg['name']}@best-accuracy "
              f"VIDEO --tracking-uri {resolve_tracking_uri(args.tracking_uri, storage_path)}")
    print(f"\nbrowse: {browse_hint(args.tracking_uri, storage_path, outcome.experiment)}")
    if log_path:
        print(f"log: {log_path}")
    return 0 if outcome.points else 1


def print_comparison(points: list[dict], verdicts: list[dict], cost: str = "gmacs") -> None:
    """The points' replicate groups (n, mean ± 95% interval) by family with their frontier flags, the
    frontier of the means, and the conclusions (which differences are beyond the noise)."""
    from rubiks_service.tracking.pareto import format_table
    from rubiks_service.tracking.replicates import TEST_NAME
    from rubiks_service.tracking.sweep_results import comparison_rows
    from rubiks_service.train import metric_names as names

    rows = [_with_intervals(r) for r in comparison_rows(points)]
    shown = ("label", "kind", "model", "variant", "budget", "realised", "n", f"{names.ONE_CLIP_TOP1} (95% CI)",
             f"{names.TWO_CLIP_TOP1} (95% CI)", "sd", names.GMACS, names.LATENCY_MS, "latency_ratio",
             f"frontier_{names.GMACS}", f"frontier_{names.LATENCY_MS}")
    columns = [c for c in shown if any(r.get(c, "") != "" for r in rows)]
    print("\ncomparison by point (mean over seeds ± 95% t-interval; sd: seed-to-seed standard deviation of "
          f"{names.ONE_CLIP_TOP1}; realised: RS-AQ's share of channels shifting in time, mean over seeds; "
          "latency_ratio: / the reference model; frontier_*: on its family's frontier of means):\n"
          + format_table(rows, columns))
    overall = _overall_front(rows, cost)
    print(f"\nPareto frontier over all points (mean {names.ONE_CLIP_TOP1} vs {cost}): "
          + ", ".join(f"{r['label']} ({r[f'{names.ONE_CLIP_TOP1} (95% CI)']})" for r in overall))
    if verdicts:
        print(f"\nconclusions ({TEST_NAME}; otherwise tied):")
        for v in verdicts:
            print(f"  - {v['text']}")


def _with_intervals(row: dict) -> dict:
    from rubiks_service.train import metric_names as names

    out = dict(row)
    for metric in (names.ONE_CLIP_TOP1, names.TWO_CLIP_TOP1):
        mean, half = row.get(f"{metric}_mean"), row.get(f"{metric}_ci95")
        if mean is not None and mean == mean:
            out[f"{metric} (95% CI)"] = f"{mean:.3f} ± {half:.3f}" if half is not None and half == half else f"{mean:.3f}"
    sd = row.get(f"{names.ONE_CLIP_TOP1}_std")
    out["sd"] = f"{sd:.3f}" if sd is not None and sd == sd else ""
    realised = row.get(f"{names.REALISED_BUDGET}_mean")  # beside the budget B asked for: the loss may not bind
    out["realised"] = f"{realised:.3f}" if realised is not None and realised == realised else ""
    return out


def _overall_front(rows: list[dict], cost: str) -> list[dict]:
    from rubiks_service.tracking.pareto import pareto_front
    from rubiks_service.tracking.sweep_results import MEAN

    return pareto_front([r for r in rows if cost in r and MEAN in r], accuracy=MEAN, cost=cost)


def _pareto(args: argparse.Namespace) -> int:
    from rubiks_service.tracking.mlflow_store import make_client, resolve_tracking_uri
    from rubiks_service.tracking.replicates import conclusions, group_points, json_ready
    from rubiks_service.tracking.sweep_results import comparison_rows, frontier, latest_sweep, sweep_points
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
        print(f"rubiks pareto: sweep {parent.info.run_id} has no {cost} (its points were not timed: "
              "`latency: {measure: false}` or a sweep from before latency was measured)", file=sys.stderr)
        return 1
    groups = group_points(points)
    verdicts = [c.as_dict() for c in conclusions(groups)]
    front = frontier(groups, cost)
    if args.json:
        print_json(json_ready({"parent_run_id": parent.info.run_id, "cost": cost,
                               "frontier": [_json_row(g) for g in front],
                               "rows": [_json_row(r) for r in comparison_rows(points)],
                               "conclusions": verdicts, "points": points}))  # the real stdout (_common.json_stdout)
    else:
        print(f"sweep {parent.info.run_name!r} ({parent.info.run_id}): {len(points)} finished trials, "
              f"{len(groups)} points")
        print_comparison(points, verdicts, cost)
    return 0


def _json_row(row: dict) -> dict:
    """A point's row for `--json`: n, `<metric>_mean` / `_ci95` / `_std`, costs, settings; the replicate
    values stay in `points`."""
    return {k: v for k, v in row.items() if not k.endswith("_values")}
