"""ferrule-opt on input that is not MLIR, and in a pipe: a one-line error
and exit status 1 (or the shell's SIGPIPE status), never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

OPT = str(Path(sys.executable).parent / "ferrule-opt")
LIT = Path(__file__).parent / "lit"


def _run(data: bytes, *args):
    return subprocess.run([OPT, *args], input=data, capture_output=True, timeout=120)


@pytest.mark.parametrize("data, message", [
    (bytes(range(256)), "<stdin> is not MLIR text: byte 0x80 at offset 128 is not UTF-8"),
    (b"\xff\xfe bad", "<stdin> is not MLIR text: byte 0xff at offset 0 is not UTF-8"),
    (b"module {}\x00", "<stdin> is not MLIR text: it contains a NUL byte at offset 9"),
    (b"this is not mlir", "error: custom op 'this' is unknown"),
])
def test_not_mlir_is_one_clear_error(data, message):
    r = _run(data)
    err = r.stderr.decode()
    assert r.returncode == 1
    assert message in err and "Traceback" not in err


def test_a_binary_file(tmp_path):
    f = tmp_path / "a.out"
    f.write_bytes(Path(sys.executable).read_bytes()[:4096])
    r = subprocess.run([OPT, str(f)], capture_output=True, timeout=120)
    assert r.returncode == 1 and b"is not MLIR text" in r.stderr and b"Traceback" not in r.stderr


def test_piped_into_a_reader_that_stops():
    """`ferrule-opt ... | head -1`: no BrokenPipeError traceback."""
    p = subprocess.Popen(f"'{OPT}' '{LIT / 'lower-scan.mlir'}' --split-input-file "
                         f"--pass-pipeline='builtin.module(lower-scan)' | head -1",
                         shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=120)
    assert out.decode().strip() == "module {"
    assert b"Traceback" not in err and b"BrokenPipe" not in err
