"""Every command and code block in README.md and docs/ runs as written.

* Python blocks run, in order, each document's blocks sharing one namespace
  (in a temporary directory). Without a GPU, a statement on a line that says
  "on a GPU machine" (or in a block whose first line says so) must raise
  ``CudaUnavailable`` — it is then the last one run of its block.
* Shell commands — the lines of ``sh`` blocks, and inline code that starts
  like a command (``make ``, ``python``, ``.venv/bin/``, ``bash ``,
  ``ferrule-opt ``) — must each match an entry of :data:`CHECKS`, which says
  how it is exercised here: run as written where that is cheap and safe,
  else dry-run (``make -n``, ``bash -n``, ``--help``, ``--collect-only``).
  A command in the docs that no entry matches fails the test, so none can
  rot unnoticed.
"""

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ferrule.runtime import cuda

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
COMMAND_START = ("make ", "python ", "python3 ", ".venv/bin/", "bash ", "ferrule-opt ")
GPU_MARK = "on a GPU machine"
VENV_BIN = Path(sys.executable).parent


def _blocks(doc: Path):
    """``(language, first line number, code)`` of each fenced block."""
    text = doc.read_text()
    return [(m.group(1), text[:m.start()].count("\n") + 2, m.group(2))
            for m in FENCE.finditer(text)]


def _commands(doc: Path):
    """``(line number, command)`` of each shell command in ``doc``."""
    text = doc.read_text()
    found = []
    for lang, line, code in _blocks(doc):
        if lang == "sh":
            for k, l in enumerate(code.splitlines()):
                cmd = l.split(" #")[0].strip()
                if cmd and not cmd.startswith("#"):
                    found.append((line + k, cmd))
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in SPAN.finditer(prose):
        if m.group(1).startswith(COMMAND_START):
            found.append((prose[:m.start()].count("\n") + 1, m.group(1)))
    return found


def _run(args, **kw):
    return subprocess.run(args, cwd=kw.pop("cwd", ROOT), capture_output=True, text=True,
                          timeout=kw.pop("timeout", 600), **kw)


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


# -- how each command is exercised --------------------------------------------------

def _make(cmd, tmp_path):
    target = cmd.split()[1]
    recipe = _ok(_run(["make", "-n", target]))
    if target == "example":   # the README's first command: run it for real, small
        assert "examples/char_lstm.py" in recipe
        _example("python examples/char_lstm.py", tmp_path)
    elif target == "test":    # this suite itself: its recipe only
        assert "pytest tests" in recipe and "lit -v tests/lit" in recipe
    else:                     # benchmarks: the scripts start and take their options
        for script in re.findall(r"bench/\w+\.py", recipe):
            _ok(_run([sys.executable, script, "--help"]))


# The example's training run at a size that takes seconds (tests/test_examples.py
# checks that a longer one learns).
SMALL_RUN = ["--steps", "30", "--T", "8", "--B", "8", "--H", "32", "--E", "16",
             "--sample-length", "20", "--quiet"]


def _example(cmd, tmp_path):
    args = shlex.split(cmd)[1:]
    if args[0] == "examples/lstm_cell.py":
        assert "max |ferrule - numpy float64|" in _ok(_run([sys.executable, *args]))
        return
    if "FILE" in args:        # "--text FILE": any UTF-8 text
        text = tmp_path / "text.txt"
        text.write_text((ROOT / "README.md").read_text())
        args[args.index("FILE")] = str(text)
    plot = tmp_path / "loss.png"
    out = _ok(_run([sys.executable, *args, *SMALL_RUN, "--plot", str(plot)]))
    assert "vs unigram entropy" in out and "sample:" in out and plot.stat().st_size > 0
    if "--compare" in args:
        assert "ferrule / best peer" in out


def _venv_python(cmd, tmp_path):
    args = shlex.split(cmd)
    args[0] = str(VENV_BIN / Path(args[0]).name)
    if args[1:3] == ["-m", "pytest"]:
        _ok(_run(args + ["--collect-only", "-q"]))
    else:                      # a script: --help (it would write artifacts)
        _ok(_run(args[:2] + ["--help"]))


def _venv_lit(cmd, tmp_path):
    args = shlex.split(cmd)
    _ok(_run([str(VENV_BIN / "lit"), *args[1:], "--show-tests"]))


def _bash(cmd, tmp_path):
    script = shlex.split(cmd)[1]
    _ok(_run(["bash", "-n", script]))          # the GPU check needs a GPU: syntax here
    for path in re.findall(r"tests/\S+\.py|bench/\S+\.py", (ROOT / script).read_text()):
        assert (ROOT / path).exists(), f"{script} runs {path}, which does not exist"


def _ferrule_opt(cmd, tmp_path):
    args = shlex.split(cmd)
    exe = str(VENV_BIN / "ferrule-opt")
    if "file.mlir" in args:
        (tmp_path / "file.mlir").write_text(
            "func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {\n"
            "  %0 = math.exp %a : tensor<4xf32>\n  %1 = arith.mulf %0, %a : tensor<4xf32>\n"
            "  return %1 : tensor<4xf32>\n}\n")
    out = _ok(_run([exe, *args[1:]], cwd=tmp_path))
    assert out.strip()


def _cuda_cli(cmd, tmp_path):
    """``python -m ferrule.runtime.cuda devices | info A | run A``."""
    import ferrule
    mod = [sys.executable, "-m", "ferrule.runtime.cuda"]
    for sub in ("devices", "info", "run"):
        assert sub in cmd
    _ok(_run(mod + ["--help"]))
    prog = ferrule.compile(lambda x: (x * 2.0,), ferrule.ShapeDtype((4, 8)), target="cuda")
    prog.save(tmp_path / "step.json")
    assert "kernel" in _ok(_run(mod + ["info", str(tmp_path / "step.json")]))
    if cuda.available():       # no GPU here: devices and run say so
        for args in (["devices"], ["run", str(tmp_path / "step.json")]):
            proc = _run(mod + args)
            assert proc.returncode != 0 and "CUDA" in proc.stderr
    else:
        _ok(_run(mod + ["devices"]))
        _ok(_run(mod + ["run", str(tmp_path / "step.json"), "-n", "2"]))


def _fuzz(cmd, tmp_path):
    """The random-program tester's commands: one seed as written, a count
    cut to two programs (tests/test_fuzz.py runs CI's profile)."""
    args = shlex.split(cmd)
    if args[0] == "make":
        recipe = _ok(_run(["make", "-n", args[1]]))
        assert "tests/fuzz/run.py" in recipe
        args = ["python", *recipe.split("tests/fuzz/run.py", 1)[1].split("\n")[0].split()]
        args.insert(1, "tests/fuzz/run.py")
    if "--seed" not in args:
        for opt, value in (("--count", "2"), ("--report", str(tmp_path / "report.txt"))):
            if opt in args:
                args[args.index(opt) + 1] = value
        if "--count" not in args:
            args += ["--count", "2"]
    out = _ok(_run([sys.executable, *args[1:]]))
    assert "programs (" in out


def _run_by_test_distributed(cmd, tmp_path):
    """docs/interop.md's DDP and bench commands start processes and train:
    tests/test_distributed.py runs each of them as written; here, that it
    knows the command."""
    import test_distributed
    assert " ".join(cmd.split()) in test_distributed.doc_commands()


def _optable(cmd, tmp_path):
    """``python -m ferrule.optable``: run with ``--check`` (it would rewrite
    docs/ops.md; tests/test_optable.py compares the file too)."""
    out = _ok(_run([str(VENV_BIN / "python"), "-m", "ferrule.optable", "--check"]))
    assert "current" in out


CHECKS = [
    (r"(python (examples/ddp_lstm|bench/torch_interop)\.py|torchrun) .*|python bench/torch_interop\.py",
     _run_by_test_distributed),
    (r"make (example|test|bench|bench-more)", _make),
    (r"make fuzz(-fast)?|python tests/fuzz/run\.py( .*)?", _fuzz),
    (r"python examples/(char_lstm|lstm_cell)\.py( .*)?", _example),
    (r"\.venv/bin/python (-m pytest )?\S+( .*)?", _venv_python),
    (r"\.venv/bin/lit .*", _venv_lit),
    (r"bash bench/\w+\.sh", _bash),
    (r"ferrule-opt .*", _ferrule_opt),
    (r"python -m ferrule\.runtime\.cuda .*", _cuda_cli),
    (r"python -m ferrule\.optable", _optable),
]


def _check_for(cmd):
    found = [fn for pattern, fn in CHECKS if re.fullmatch(pattern, cmd)]
    return found[0] if len(found) == 1 else None


ALL_COMMANDS = [(doc.relative_to(ROOT).as_posix(), line, cmd)
                for doc in DOCS for line, cmd in _commands(doc)]


def test_the_docs_show_commands():
    assert any(cmd == "make example" for _, _, cmd in ALL_COMMANDS)


def test_every_command_in_the_docs_is_checked():
    unchecked = [f"{doc}:{line}: {cmd}" for doc, line, cmd in ALL_COMMANDS
                 if _check_for(cmd) is None]
    assert not unchecked, ("commands in the docs that no entry of CHECKS (tests/test_docs.py) "
                           "exercises:\n" + "\n".join(unchecked))


@pytest.mark.parametrize("doc, line, cmd", ALL_COMMANDS,
                         ids=[f"{d}:{l}" for d, l, _ in ALL_COMMANDS])
def test_command(doc, line, cmd, tmp_path):
    check = _check_for(cmd)
    if check is None:
        pytest.fail(f"{doc}:{line}: no check for {cmd!r}")
    check(cmd, tmp_path)


# -- Python blocks ---------------------------------------------------------------------

def _run_block(code: str, namespace: dict, where: str) -> None:
    lines = code.splitlines()
    gpu_block = bool(lines) and GPU_MARK in lines[0]
    for stmt in ast.parse(code).body:
        src = "\n".join(lines[stmt.lineno - 1:stmt.end_lineno])
        on_gpu = gpu_block or GPU_MARK in lines[stmt.lineno - 1]
        try:
            exec(compile(ast.Module([stmt], []), where, "exec"), namespace)
        except cuda.CudaUnavailable:
            if on_gpu and cuda.available():
                return        # no GPU here: the rest of the block needs one
            raise AssertionError(f"{where}: {src!r} needs a GPU but does not say so "
                                 f"('# {GPU_MARK}')") from None


DOCS_WITH_PYTHON = [doc for doc in DOCS if any(lang == "python" for lang, _, _ in _blocks(doc))]


@pytest.mark.parametrize("doc", DOCS_WITH_PYTHON, ids=[d.name for d in DOCS_WITH_PYTHON])
def test_python_blocks_run(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for lang, line, code in _blocks(doc):
        if lang == "python":
            _run_block(code, namespace, f"{doc.name}:{line}")


def test_transforms_doc_explain_line(tmp_path, monkeypatch):
    """docs/transforms.md quotes checkpoint's explain() line word for word
    (but the file:line): its python blocks' ``report`` holds it."""
    doc = ROOT / "docs" / "transforms.md"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    quoted = []
    for lang, line, code in _blocks(doc):
        if lang == "python":
            _run_block(code, namespace, f"{doc.name}:{line}")
        elif lang == "text":
            quoted += [l.split(": ", 1)[1] for l in code.splitlines() if "scan of @" in l]
    assert quoted, "no explain() line quoted"
    reported = [l.split(": ", 1)[1] for l in namespace["report"].splitlines()]
    for q in quoted:
        assert q in reported, (q, reported)
