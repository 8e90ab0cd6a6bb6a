"""Training across processes: examples/ddp_lstm.py under DDP (gloo, 127.0.0.1).

Every shell command shown in docs/interop.md is run here, as written there
(``python`` and ``torchrun`` become this interpreter, the placeholders
``$NODE_RANK``/``$NPROC``/``$MASTER_ADDR`` and the port are filled in for
one machine), with ``--steps 1`` appended; the DDP runs dump rank 0's
all-reduced gradients after the first backward, which must equal the
gradients of one process on the whole batch.
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "interop.md"
TIMEOUT = 300


def _example():
    spec = importlib.util.spec_from_file_location("ddp_lstm", ROOT / "examples" / "ddp_lstm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def doc_commands():
    """The shell commands of docs/interop.md's ```sh blocks (continuations
    joined, comments dropped)."""
    text = DOC.read_text()
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(" ".join(line.split()))
    return cmds


def _argv(cmd: str, env: dict):
    """``cmd`` as argv for this machine: placeholders expanded, ``python``
    and ``torchrun`` mapped to this interpreter."""
    words = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], w) for w in shlex.split(cmd)]
    if words[0] == "python":
        return [sys.executable] + words[1:]
    if words[0] == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run"] + words[1:]
    raise AssertionError(f"docs/interop.md shows a command no test knows how to run: {cmd}")


def _env(tmp_path, **extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env.setdefault("FERRULE_CACHE_DIR", str(tmp_path / "ferrule-cache"))
    return env


def _free_port():
    return _example().free_port()


@pytest.fixture(scope="module")
def reference_grads():
    """One process, the whole batch of step 0, float64."""
    ex = _example()
    args = ex.parse_args(["--dtype", "float64"])
    model = ex.make_model(args)
    x, y = ex.make_batch(0, args.batch, args.seq, args.vocab)
    ex.loss_fn(model, x, y).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _check_grads(path, reference):
    got = torch.load(path)
    assert set(got) == set(reference)
    for name, g in reference.items():
        torch.testing.assert_close(got[name], g, rtol=1e-10, atol=1e-12, msg=name)


def _commands(kind):
    out = []
    for c in doc_commands():
        if "examples/ddp_lstm.py" not in c:
            continue
        multi = "--nnodes=2" in c
        nccl = "nccl" in c
        if (kind == "spawn" and c.startswith("python")) or \
                (kind == "standalone" and "--standalone" in c and not nccl) or \
                (kind == "multinode" and multi and not nccl) or (kind == "nccl" and nccl):
            out.append(c)
    return out


CHECK = ["--steps", "1", "--dtype", "float64"]


def test_every_doc_command_is_run_here():
    kinds = [_commands(k) for k in ("spawn", "standalone", "multinode", "nccl")]
    ddp = [c for c in doc_commands() if "examples/ddp_lstm.py" in c]
    assert sorted(sum(kinds, [])) == sorted(ddp) and all(kinds)
    others = [c for c in doc_commands() if "examples/ddp_lstm.py" not in c]
    assert others == ["python bench/torch_interop.py"], others  # run by test_bench_smoke


def test_spawned_ddp_gradients_equal_single_process(tmp_path, reference_grads):
    for cmd in _commands("spawn"):
        dump = tmp_path / "spawn.pt"
        argv = _argv(cmd, {}) + CHECK + ["--dump-grads", str(dump)]
        r = subprocess.run(argv, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                           timeout=TIMEOUT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "done: 1 steps on 2 process(es), backend gloo" in r.stdout
        _check_grads(dump, reference_grads)


def test_torchrun_standalone(tmp_path, reference_grads):
    for cmd in _commands("standalone"):
        dump = tmp_path / "standalone.pt"
        argv = _argv(cmd, {}) + CHECK + ["--dump-grads", str(dump)]
        r = subprocess.run(argv, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                           timeout=TIMEOUT)
        assert r.returncode == 0, r.stdout + r.stderr
        _check_grads(dump, reference_grads)


def _two_nodes(cmd, tmp_path, extra):
    """Both "machines" of a 2-node command, on this one (127.0.0.1)."""
    port = str(_free_port())
    procs = []
    for node in (0, 1):
        env = _env(tmp_path, NODE_RANK=str(node), NPROC="1", MASTER_ADDR="127.0.0.1")
        argv = [w.replace("29500", port) for w in _argv(cmd, env)] + extra
        procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=TIMEOUT)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    return [p.returncode for p in procs], outs


def test_torchrun_two_nodes(tmp_path, reference_grads):
    for cmd in _commands("multinode"):
        dump = tmp_path / "nodes.pt"
        codes, outs = _two_nodes(cmd, tmp_path, CHECK + ["--dump-grads", str(dump)])
        assert codes == [0, 0], "\n".join(outs)
        assert "done: 1 steps on 2 process(es)" in outs[0]
        _check_grads(dump, reference_grads)


def test_nccl_on_gpus(tmp_path):
    """With GPUs (and a CUDA build of torch) it trains; without, each process
    stops with a clear message."""
    for cmd in _commands("nccl"):
        codes, outs = _two_nodes(cmd, tmp_path, ["--steps", "1"])
        if torch.cuda.is_available():      # pragma: no cover - needs GPUs
            assert codes == [0, 0], "\n".join(outs)
        else:
            assert all(c != 0 for c in codes)
            assert all("--device cuda but CUDA is not available" in o for o in outs), outs


def test_bench_smoke(tmp_path):
    """The bench script of docs/interop.md runs (tiny sizes, few repeats)."""
    cmds = [c for c in doc_commands() if "bench/torch_interop.py" in c]
    assert cmds
    for cmd in cmds:
        r = subprocess.run(_argv(cmd, {}) + ["--smoke"], cwd=ROOT, env=_env(tmp_path),
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "nn.LSTMCell" in r.stdout and "ferrule" in r.stdout
