"""``python -m gpubench.collective``: the collective benchmark as the ranks of a torchrun job, on one node or many.

Run it under torchrun, which starts the ranks on every node and joins them through its
rendezvous::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint node0:29500 \\
        --rdzv-id gpubench-ar -m gpubench.collective --device cuda

Every rank runs the cases of ``suites/allreduce.toml`` for its device kind (the rank count set to
the job's world size) through the same case path as ``gpubench run``: one collective verified
exactly, then the ranks' own warm-up and timed iterations. Rank 0 prints one line per case like
nccl-tests (time, algbw, busbw) and records the run in the results store, so ``gpubench report``
shows it beside single-node runs. Inside ``gpubench run`` the same cases start their ranks
themselves instead (one machine).

``--suite ddp`` runs the data-parallel training cases of ``suites/ddp.toml`` the same way (each
problem once, with the job's world size as its rank count; rank 0 prints the time per step and the
samples/s)::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint node0:29500 \\
        --rdzv-id gpubench-ddp -m gpubench.collective --suite ddp --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from typing import Any

from gpubench.errors import GpubenchError, UsageError

#: The workloads whose one case spans the ranks of a process group.
DISTRIBUTED = ("all_reduce", "all_gather", "broadcast", "ddp_training")

#: Variables torchrun sets in every rank it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def build_parser() -> argparse.ArgumentParser:
    """The options of one rank (every rank of the job gets the same)."""
    from gpubench.workloads.collective import COLLECTIVES, DEFAULT_TIMEOUT_S

    p = argparse.ArgumentParser(
        prog="python -m gpubench.collective",
        description="Distributed benchmarks as the ranks of a torchrun job: collectives (all_reduce, all_gather, "
                    "broadcast; --suite allreduce) and data-parallel training (ddp_training; --suite ddp).",
        epilog="Example: torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 "
               "--rdzv-id gpubench-ar -m gpubench.collective --device cuda")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda",
                   help="cuda: NCCL, one rank per GPU (LOCAL_RANK picks the GPU); cpu: gloo (default cuda)")
    p.add_argument("--op", action="append", metavar="NAME",
                   help=f"only these workloads ({', '.join(COLLECTIVES)}, ddp_training; repeat or comma-separate)")
    p.add_argument("--bytes", action="append", metavar="N",
                   help="only these sizes in bytes (repeat or comma-separate; default: the suite's)")
    p.add_argument("--dtype", default="float32", help="float32 (default), float64, float16 or bfloat16")
    p.add_argument("--suite", default="allreduce",
                   help="suite whose distributed cases to run (default allreduce; ddp for data-parallel training)")
    p.add_argument("--quick", action="store_true", help="the suite's quick sizes and a short time budget")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"process-group timeout: a collective that does not finish in S seconds fails "
                        f"(default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--label", default="", help="a label for the stored run")
    p.add_argument("--store", metavar="PATH",
                   help="results store written by rank 0 (default: $GPUBENCH_STORE or results/gpubench.sqlite)")
    p.add_argument("--no-store", action="store_true", help="print the results only")
    return p


def _split(values: list[str] | None) -> list[str]:
    return [x.strip() for v in values or [] for x in v.split(",") if x.strip()]


def case_specs(args: argparse.Namespace, world: int, nodes: int) -> list:
    """The suite's distributed cases for ``args.device``, each with the job's rank count (and node count when > 1).

    Collectives (``--suite allreduce``) take their sizes from the suite or ``--bytes``; ``ddp_training``
    (``--suite ddp``) takes the suite's problems (model, global batch, image size) once each.
    """
    from gpubench.records import CaseSpec
    from gpubench.spec import Filters, expand, load_suite
    from gpubench.workloads import get_workload
    from gpubench.workloads.collective import COLLECTIVES, DEFAULT_TIMEOUT_S

    suite = load_suite(args.suite)
    base = expand(suite, Filters(backends=("torch",), devices=(args.device,)), quick=args.quick, check_memory=False)
    present = [w for w in dict.fromkeys(s.workload for s in base) if w in DISTRIBUTED]
    ops = _split(args.op) or present
    for op in ops:
        if op not in DISTRIBUTED:
            raise UsageError(f"unknown distributed workload {op!r} (known: {', '.join(DISTRIBUTED)})")
    try:
        sizes = [int(b) for b in _split(args.bytes)]
    except ValueError as exc:
        raise UsageError(f"--bytes takes whole numbers of bytes: {exc}") from exc
    grid: dict[str, list[dict[str, Any]]] = {}
    for spec in base:
        if spec.workload not in ops:
            continue
        params = dict(spec.param_dict)
        if spec.workload in COLLECTIVES:
            params = {"bytes": params["bytes"]}
        params["ranks"] = world
        if params not in grid.setdefault(spec.workload, []):
            grid[spec.workload].append(params)
    if sizes:
        grid.update({op: [{"bytes": size, "ranks": world} for size in sizes] for op in ops if op in COLLECTIVES})
    specs = []
    for op in ops:
        for params in grid.get(op, []):
            if nodes > 1:
                params["nodes"] = nodes
            if args.timeout != DEFAULT_TIMEOUT_S:
                params["timeout_s"] = args.timeout
            params = get_workload(op).normalize_params(params)
            specs.append(CaseSpec.make(op, "torch", args.device, args.dtype, params, suite=suite.name))
    if not specs:
        raise UsageError(f"no {args.device} distributed cases in suite {suite.name!r} after filters")
    return specs


def line(result) -> str:
    """One result as a row like nccl-tests': size, dtype, time (µs), algbw and busbw (GB/s), status; for
    ``ddp_training``: the problem, time per step and samples/s."""
    m = result.metrics or {}
    p = result.spec.param_dict
    what = f"{p['model']} b={p['global_batch']}" if result.spec.workload == "ddp_training" else str(p["bytes"])
    if result.status != "ok":
        return f"{result.spec.workload:>10} {what:>12} {result.spec.dtype:>8}  {result.status}: {result.error}"
    if result.spec.workload == "ddp_training":
        return (f"{result.spec.workload:>10} {what:>12} {result.spec.dtype:>8} {m['step_s'] * 1e6:>12.1f} "
                f"{m['samples_per_s']:>10.1f} {'samples/s':>10}  ok")
    return (f"{result.spec.workload:>10} {what:>12} {result.spec.dtype:>8} {m['time_us']:>12.1f} "
            f"{m['algbw_gbps']:>10.3f} {m['busbw_gbps']:>10.3f}  ok")


def header(ddp: bool = False) -> str:
    """The column titles of :func:`line` (for ``ddp_training`` cases when ``ddp``)."""
    if ddp:
        return f"{'workload':>12} {'problem':>12} {'type':>8} {'step (us)':>12} {'samples/s':>10}"
    return f"{'collective':>10} {'size (B)':>12} {'type':>8} {'time (us)':>12} {'algbw':>10} {'busbw':>10}  status"


def main(argv: list[str] | None = None) -> int:
    """One rank: join the torchrun job's group, run every case, rank 0 prints and stores; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except GpubenchError as exc:
        print(f"gpubench.collective: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _main(args: argparse.Namespace) -> int:
    from gpubench.backends.torch_backend.collective_rank import comm_backend, die_with_parent

    # torchrun starts each rank in a session of its own: the agent's death must take the rank along.
    die_with_parent()
    missing = [v for v in TORCHRUN_ENV if v not in os.environ]
    if missing:
        raise UsageError(f"run this under torchrun (missing {', '.join(missing)}); e.g. torchrun --nproc-per-node 2 "
                         "-m gpubench.collective --device cpu")
    import torch
    import torch.distributed as dist

    from gpubench.case import run_case
    from gpubench.profile import resolve_profile

    local_rank, local_world = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
    kwargs: dict[str, Any] = {}
    if args.device == "cuda":
        if not torch.cuda.is_available() or torch.cuda.device_count() <= local_rank:
            raise UsageError(f"--device cuda: local rank {local_rank} has no GPU "
                             f"({torch.cuda.device_count()} visible); use --device cpu for gloo")
        torch.cuda.set_device(local_rank)
        kwargs["device_id"] = torch.device("cuda", local_rank)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group(comm_backend(args.device), timeout=datetime.timedelta(seconds=args.timeout), **kwargs)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        nodes = max(1, world // local_world)
        specs = case_specs(args, world, nodes)
        profile = resolve_profile(args.quick)
        if rank == 0:
            print(f"# {world} ranks on {nodes} node{'s' if nodes > 1 else ''}, {comm_backend(args.device)}, "
                  f"profile {profile.name}; GB/s are 1e9 bytes/s", flush=True)
            print(header(all(s.workload == "ddp_training" for s in specs)), flush=True)
        results = []
        for spec in specs:
            result = run_case(spec, profile.settings)
            results.append(result)
            if rank == 0:
                print(line(result), flush=True)
        if rank == 0 and not args.no_store:
            _store(args, results, profile, world, nodes)
        bad = [r for r in results if r.status not in ("ok", "skipped")]
        return 1 if bad else 0
    finally:
        dist.destroy_process_group()


def _store(args: argparse.Namespace, results: list, profile, world: int, nodes: int) -> None:
    """Record the results as one run (rank 0, :class:`gpubench.recorder.RunRecorder`), then print it as
    ``gpubench show`` does."""
    from gpubench.commands.show import print_run
    from gpubench.envinfo import capture_host
    from gpubench.recorder import RunRecorder, RunSettings
    from gpubench.store import open_store
    from gpubench.worker import backend_environment

    environment = capture_host()
    environment["backends"] = {"torch": backend_environment("torch")}
    environment["torchrun"] = {"world_size": world, "nodes": nodes,
                               "local_world_size": int(os.environ["LOCAL_WORLD_SIZE"]),
                               "master": f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"}
    command = "python -m gpubench.collective " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    settings = RunSettings("collective", profile.settings, profile.name, timeout_s=args.timeout,
                           planned_cases=len(results), extra={"world_size": world, "nodes": nodes})
    with open_store(args.store) as store:
        recorder = RunRecorder(store, results[0].spec.suite, settings, baseline="torch", label=args.label,
                               command=command, environment=environment)
        run_id = recorder.begin()
        for result in results:
            recorder.add(result)
        recorder.finish("complete")
        print(f"# stored as run {run_id} in {store.location}", flush=True)
        print_run(store, run_id)


if __name__ == "__main__":
    raise SystemExit(main())
