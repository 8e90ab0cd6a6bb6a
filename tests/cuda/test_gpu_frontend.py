"""ferrule.compile / jit(target="cuda") on a machine without a GPU."""

import numpy as np
import pytest

import ferrule
from ferrule.runtime import cuda
from models import lstm, lstm_fb

S = ferrule.ShapeDtype


def test_compile_lstm_forward_backward_to_one_kernel(tmp_path):
    prog = ferrule.compile(lstm_fb, S((64, 1024)), S((64, 256)), S((64, 256)), S((64, 256)),
                           target="cuda:sm_90")
    assert prog.ptx.count(".entry") == 1
    (meta,) = prog.kernels.values()
    assert meta["block"] == [256, 1, 1] and meta["grid_stride"]
    assert "linalg.generic" in prog.as_text("ad") and ".entry" in prog.as_text("ptx")
    prog.save(tmp_path / "lstm.json")
    art = cuda.load_artifact(tmp_path / "lstm.json")
    assert art["function"] == "lstm_fb"
    assert [o["shape"] for o in art["plan"]["outputs"]] == [[64, 256], [64, 256], [64, 1024], [64, 256]]


def test_unknown_target_is_a_value_error_not_a_crash():
    with pytest.raises(ValueError, match="unknown CUDA processor"):
        ferrule.compile(lstm, S((4, 16)), S((4, 4)), target="cuda:sm_12")
    with pytest.raises(ValueError, match="unknown target"):
        ferrule.jit(lstm, target="tpu")


@pytest.mark.skipif(cuda.available() != "", reason="needs a GPU")
def test_jit_cuda_runs_on_a_gpu():
    G, c = np.ones((4, 16), np.float32), np.ones((4, 4), np.float32)
    h, c2 = ferrule.jit(lstm, target="cuda")(G, c)
    hr, cr = ferrule.jit(lstm)(G, c)
    np.testing.assert_allclose(h, hr, rtol=1e-5)


@pytest.mark.skipif(cuda.available() == "", reason="this machine has a GPU")
def test_jit_cuda_without_gpu_says_so():
    G, c = np.ones((4, 16), np.float32), np.ones((4, 4), np.float32)
    with pytest.raises(cuda.CudaUnavailable, match="no CUDA driver"):
        ferrule.jit(lstm, target="cuda")(G, c)
