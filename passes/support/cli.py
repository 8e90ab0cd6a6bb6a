"""``ferrule-opt``: an ``mlir-opt``-like driver that knows ``ad`` and ferrule's passes.

Usage::

    ferrule-opt [FILE|-] [--pass-pipeline='builtin.module(p1,p2)'] [--PASS ...]
                [--split-input-file] [--list-passes]

Reads MLIR text (stdin when FILE is ``-`` or absent), runs the pipeline, and
prints the result. Malformed input and pass failures are reported as
``file:line:col: error: message`` diagnostics with exit code 1 — never a
Python traceback.
"""

import argparse
import os
import sys
from typing import List

from mlir import ir

from ...dialect import VerificationError, make_context, verify_module
from .. import PassError, registered_passes, run_pipeline

SPLIT_MARKER = "// -----"


def _format_diag(d, fallback_file: str) -> List[str]:
    loc = str(d.location)
    lines = [f"{_loc_prefix(loc, fallback_file)}error: {d.message}"]
    for n in getattr(d, "notes", []) or []:
        lines.append(f"{_loc_prefix(str(n.location), fallback_file)}note: {n.message}")
    return lines


def _loc_prefix(loc: str, fallback_file: str) -> str:
    # loc("file":L:C) -> file:L:C:
    if loc.startswith('loc("') and '":' in loc:
        body = loc[len('loc("'):-1]
        fname, rest = body.split('":', 1)
        rest = rest.split(" ", 1)[0].split(")", 1)[0]
        if fname in ("-", "<stdin>"):
            fname = fallback_file
        return f"{fname}:{rest}: "
    return ""


def _report(e: ir.MLIRError, filename: str) -> None:
    """Print an upstream error's diagnostics (or, without any, the error)."""
    for d in e.error_diagnostics:
        print("\n".join(_format_diag(d, filename)), file=sys.stderr)
    if not e.error_diagnostics:
        print(f"{filename}: error: {e}", file=sys.stderr)


def _process(text: str, filename: str, pipeline, out) -> bool:
    ctx = make_context()
    with ctx, ir.Location.unknown():
        try:
            module = ir.Module.parse(text)
            verify_module(module)
            if pipeline:
                run_pipeline(module, pipeline)
        except VerificationError as e:
            print(f"{_loc_prefix(str(e.location), filename)}error: {e.message}", file=sys.stderr)
            return False
        except ir.MLIRError as e:
            _report(e, filename)
            return False
        except PassError as e:
            prefix = _loc_prefix(str(e.location), filename) if e.location else f"{filename}: "
            print(f"{prefix}error: {e.pass_name}: {e.message}", file=sys.stderr)
            return False
        except ValueError as e:  # bad pipeline text
            print(f"ferrule-opt: error: {e}", file=sys.stderr)
            return False
        print(str(module), file=out)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ferrule-opt", description=__doc__.split("\n\n")[0])
    p.add_argument("file", nargs="?", default="-")
    p.add_argument("--pass-pipeline", default=None)
    p.add_argument("--split-input-file", action="store_true")
    p.add_argument("--list-passes", action="store_true")
    args, extra = p.parse_known_args(argv)
    if args.list_passes:
        print("\n".join(registered_passes()))
        return 0
    named = []
    for e in extra:
        if not e.startswith("--"):
            print(f"ferrule-opt: error: unexpected argument {e!r}", file=sys.stderr)
            return 1
        named.append(e[2:])
    pipeline = []
    if args.pass_pipeline:
        pipeline.append(args.pass_pipeline)
    pipeline += named
    pipeline = ",".join(pipeline)
    filename = "<stdin>" if args.file == "-" else args.file
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    except OSError as e:
        print(f"ferrule-opt: error: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        print(f"ferrule-opt: error: {filename} is not MLIR text: byte 0x{data[e.start]:02x} at "
              f"offset {e.start} is not UTF-8", file=sys.stderr)
        return 1
    if "\0" in text:
        print(f"ferrule-opt: error: {filename} is not MLIR text: it contains a NUL byte at "
              f"offset {text.index(chr(0))}", file=sys.stderr)
        return 1
    chunks = text.split(SPLIT_MARKER) if args.split_input_file else [text]
    ok = True
    try:
        for k, chunk in enumerate(chunks):
            if k:
                print(SPLIT_MARKER)
            ok &= _process(chunk, filename, pipeline, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (ferrule-opt ... | head): stop quietly, as
        # mlir-opt does, with the shell's status for SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
