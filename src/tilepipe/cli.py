"""The ``tilepipe`` command: every stage of the main job, one subcommand each.

Bad input (unreadable file, parse error, invalid annotation, unknown --func or --dim)
prints one message and exits with status 2; a race found by ``verify`` exits with 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import TilepipeError

EXIT_BAD_INPUT = 2


class _UsageError(TilepipeError):
    """A command-line argument that does not fit the program."""


# Loading -----------------------------------------------------------------------------
def _load(args: argparse.Namespace, single: bool):
    """The functions of FILE (only --func's, if given); one when ``single``."""
    from .script import load_file

    funcs = load_file(args.file)
    if not funcs:
        raise _UsageError(f"{args.file}: no @T.prim_func function found")
    if args.func is not None:
        chosen = [func for func in funcs if func.name == args.func]
        if not chosen:
            names = ", ".join(func.name for func in funcs)
            raise _UsageError(f"{args.file}: no function named '{args.func}' (it has {names})")
        funcs = chosen
    if single and len(funcs) > 1:
        names = ", ".join(func.name for func in funcs)
        raise _UsageError(f"{args.file} has several functions ({names}): pick one with --func")
    return funcs


def _dims(args: argparse.Namespace) -> dict[str, int]:
    dims: dict[str, int] = {}
    for item in args.dim or ():
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.isidentifier():
                raise ValueError
            dims[name] = int(value)
        except ValueError:
            raise _UsageError(f"--dim expects NAME=INTEGER, got '{item}'") from None
    return dims


def _bind(func, args: argparse.Namespace):
    from .ir import bind_params

    return bind_params(func, _dims(args))


def _pipelined(func, args: argparse.Namespace):
    """The program the run-like commands act on: pipelined unless --no-pipeline."""
    if getattr(args, "no_pipeline", False):
        return func
    return _apply_pipeline(func, args)


SYNC_CHOICES = ("counts", "barriers", "warp-specialized")


def _apply_pipeline(func, args: argparse.Namespace):
    """The pipeline with the synchronization --sync asks for: commit groups and wait
    counts (default), mbarrier phases with TMA copies, or warp specialization."""
    sync = getattr(args, "sync", "counts")
    if sync == "barriers":
        from .transform.barriers import lower_to_barriers

        return lower_to_barriers(func)
    if sync == "warp-specialized":
        from .transform.warp_specialize import warp_specialize

        return warp_specialize(func)
    from .transform import inject_software_pipeline

    return inject_software_pipeline(func)


def _lowered(program, args: argparse.Namespace):
    """The CUDA lowering of a count-synchronized program (mbarrier programs, --sync
    barriers or warp-specialized, even as written with --no-pipeline, need none)."""
    if getattr(args, "sync", "counts") != "counts":
        return program
    from .backend.cuda import lower

    return lower(program)


def _with_regions(func):
    """A transformed program as `tilepipe pipeline` and `lower` print it: every block
    that declares no regions shows its inferred ones, as the seeds' TVMScript does."""
    from .arith import declare_regions

    return declare_regions(func)


def _as_printed(func, args: argparse.Namespace):
    """Re-read the program as `tilepipe pipeline` (or `show`, with --no-pipeline) prints
    it, so that source lines are those of that printout."""
    from .script import parse

    if not getattr(args, "no_pipeline", False):
        func = _with_regions(func)
    return parse(func.script(), source_name="<printed>")


def _print_module(funcs) -> None:
    from .ir.printer import script_module

    sys.stdout.write(script_module(funcs))


# Commands ----------------------------------------------------------------------------
def _cmd_show(args: argparse.Namespace) -> int:
    _print_module([_bind(func, args) for func in _load(args, single=False)])
    return 0


def _cmd_pipeline(args: argparse.Namespace) -> int:
    funcs = [_with_regions(_apply_pipeline(_bind(func, args), args))
             for func in _load(args, single=False)]
    _print_module(funcs)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .sim import random_inputs, simulate

    (func,) = _load(args, single=True)
    program = _bind(_pipelined(func, args), args)
    inputs = random_inputs(program, seed=args.seed)
    outputs = simulate(program, inputs, schedule=args.schedule)
    np.savez(args.out, **outputs)
    print(f"wrote {len(outputs)} buffers to {args.out}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .sim import verify

    (func,) = _load(args, single=True)
    program = _bind(_as_printed(_pipelined(func, args), args), args)
    report = verify(program)
    print(report.format())
    return 0 if report.ok else 1


def _cmd_trace(args: argparse.Namespace) -> int:
    from .sim import trace

    (func,) = _load(args, single=True)
    program = _bind(_as_printed(_pipelined(func, args), args), args)
    out = sys.stdout
    for event in trace(program, thread=args.thread):
        out.write(json.dumps(event, separators=(", ", ": ")) + "\n")
    return 0


def _cmd_lower(args: argparse.Namespace) -> int:
    funcs = [_with_regions(_lowered(_bind(_pipelined(func, args), args), args))
             for func in _load(args, single=False)]
    _print_module(funcs)
    return 0


def _cmd_cuda(args: argparse.Namespace) -> int:
    from .backend.cuda import codegen

    for func in _load(args, single=False):
        program = _lowered(_bind(_pipelined(func, args), args), args)
        sys.stdout.write(codegen(program, arch=args.arch))
    return 0


def _cmd_timeline(args: argparse.Namespace) -> int:
    from .kernels.tuning import pipelined
    from .sim.timeline import ascii_comparison, ascii_timeline, draw_timeline
    from .sim.timing import estimate

    def pipeline(func):
        """Planned for the machine, then pipelined with the synchronization of --sync."""
        if args.sync == "counts":
            return pipelined(func, args.machine)
        from .sim.timing import machine_named
        from .transform.pipeline.planning import plan_pipeline

        return _apply_pipeline(plan_pipeline(func, machine_named(args.machine).arch), args)

    (func,) = _load(args, single=True)
    func = _bind(func, args)
    if args.compare:
        programs = [("as written", func), ("pipelined", pipeline(func))]
    elif args.no_pipeline:
        programs = [("as written", func)]
    else:
        programs = [("pipelined", pipeline(func))]
    titles = [title for title, _ in programs]
    reports = [estimate(program, args.machine) for _, program in programs]
    pictures = [path for path in (args.png, args.svg) if path]
    for path in pictures:
        print(f"wrote {draw_timeline(reports, path, titles)}")
    if not pictures:
        print(ascii_comparison(reports, titles) if args.compare else ascii_timeline(reports[0]))
    for title, report in zip(titles, reports):
        print(f"{title}: {report.format()}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from .kernels.tuning import tune_command

    (func,) = _load(args, single=True)
    return tune_command(func, args.machine, _dims(args))


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


# Parser ------------------------------------------------------------------------------
class _Once(argparse.Action):
    """An option that may be given at most once (a second --func is a mistake)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} is given twice; pick one function")
        setattr(namespace, self.dest, values)


def _file_command(sub, name: str, handler: Callable, help_text: str, pipeline_flag: bool = True):
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("file", metavar="FILE", help="Python file with @T.prim_func functions")
    parser.add_argument("--func", metavar="NAME", action=_Once,
                        help="the function to use (default: the only one)")
    parser.add_argument("--dim", metavar="NAME=VALUE", action="append",
                        help="bind a symbolic size or scalar parameter (repeatable)")
    if pipeline_flag:
        parser.add_argument("--no-pipeline", action="store_true",
                            help="use the program as written, without pipelining it")
        _sync_option(parser)
    parser.set_defaults(handler=handler)
    return parser


def _sync_option(parser) -> None:
    parser.add_argument("--sync", choices=SYNC_CHOICES, default="counts",
                        help="how the pipeline synchronizes: commit groups and wait counts "
                        "(default), mbarrier phases with TMA copies, or a warp-specialized "
                        "producer and consumers (the last two for sm_90a)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tilepipe",
        description="Asynchronous software pipelining of tile programs: pipeline, "
        "simulate, verify, trace and compile to CUDA.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _file_command(sub, "show", _cmd_show, "print the parsed program", pipeline_flag=False)
    _sync_option(_file_command(sub, "pipeline", _cmd_pipeline,
                               "print the software-pipelined program", pipeline_flag=False))
    run = _file_command(sub, "run", _cmd_run,
                        "simulate the pipelined program on seeded random inputs")
    run.add_argument("--out", required=True, metavar="OUT.npz", help="where to save the buffers")
    run.add_argument("--seed", type=int, default=0, help="random seed of the inputs (default 0)")
    run.add_argument("--schedule", default="eager",
                     help="when async accesses happen: eager, lazy or random:SEED")
    _file_command(sub, "verify", _cmd_verify,
                  "check the pipelined program for races (exit 1 when there is one)")
    trace = _file_command(sub, "trace", _cmd_trace,
                          "print one thread's synchronization events as JSON lines")
    trace.add_argument("--thread", type=int, default=0,
                       help="linear thread index in block 0 (default 0)")
    lower = _file_command(sub, "lower", _cmd_lower,
                          "print the program right before CUDA code generation")
    lower.add_argument("--target", default="cuda", choices=["cuda"],
                       help="the target whose lowering to apply (default cuda)")
    cuda = _file_command(sub, "cuda", _cmd_cuda, "print the CUDA C++ of the program")
    cuda.add_argument("--arch", default="sm_80", choices=["sm_80", "sm_90", "sm_90a"],
                      help="target architecture (default sm_80)")
    timeline = _file_command(sub, "timeline", _cmd_timeline,
                             "draw the pipeline's timeline in the timing model")
    timeline.add_argument("--png", metavar="OUT.png", help="write a PNG picture")
    timeline.add_argument("--svg", metavar="OUT.svg", help="write an SVG picture")
    timeline.add_argument("--compare", action="store_true",
                          help="show the program before and after pipelining side by side")
    timeline.add_argument("--machine", default="A100", help="machine preset (A100 or H100)")
    tune = _file_command(sub, "tune", _cmd_tune, "choose num_stages by the timing model",
                         pipeline_flag=False)
    tune.add_argument("--machine", default="A100", help="machine preset (A100 or H100)")
    demo = sub.add_parser("demo", help="walk a GEMM kernel through every stage",
                          description="walk a GEMM kernel through every stage")
    demo.add_argument("--out-dir", default=".", help="where to write the timeline picture")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "file", None) is not None and not Path(args.file).is_file():
        print(f"tilepipe: error: cannot read '{args.file}': no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return args.handler(args)
    except TilepipeError as error:
        print(f"tilepipe: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
