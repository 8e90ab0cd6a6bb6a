"""Large fresh outputs reuse the memory of outputs that died
(runtime/output_pool.py) — and never the memory of one still readable."""

import gc

import numpy as np
import pytest

import ferrule
from ferrule.runtime import output_pool

BIG = (512, 1024)        # 2 MiB of float32: pooled


@pytest.fixture(autouse=True)
def _empty_pool():
    output_pool.clear()
    yield
    output_pool.clear()


def test_small_outputs_are_plain_arrays():
    a = output_pool.empty((10, 10), np.float32)
    assert a.flags.owndata and a.shape == (10, 10) and a.dtype == np.float32


def test_a_dead_output_s_memory_is_reused_and_aligned():
    a = output_pool.empty(BIG, np.float32)
    assert not a.flags.owndata and a.flags.c_contiguous and a.flags.writeable
    assert a.ctypes.data % output_pool.ALIGN == 0
    address = a.ctypes.data
    del a
    assert output_pool.held_bytes() >= 2 << 20
    b = output_pool.empty(BIG, np.float32)
    assert b.ctypes.data == address
    assert output_pool.held_bytes() == 0


def test_memory_is_not_reused_while_a_view_lives():
    a = output_pool.empty(BIG, np.float32)
    a[...] = 7.0
    view = a[3:5].T
    address = a.ctypes.data
    del a
    gc.collect()
    b = output_pool.empty(BIG, np.float32)
    assert not np.may_share_memory(b, view)
    b[...] = -1.0
    assert np.all(view == 7.0)
    del view
    c = output_pool.empty(BIG, np.float32)
    assert c.ctypes.data == address


def test_other_dtypes_and_shapes_share_buffers_of_their_size():
    a = output_pool.empty((256, 1024), np.float64)     # 2 MiB
    address = a.ctypes.data
    del a
    b = output_pool.empty((2, 512, 512), np.int32)     # 2 MiB too
    assert b.ctypes.data == address and b.dtype == np.int32 and b.shape == (2, 512, 512)


def test_the_pool_keeps_at_most_max_per_size():
    arrays = [output_pool.empty(BIG, np.float32) for _ in range(output_pool.MAX_PER_SIZE + 3)]
    del arrays
    assert output_pool.held_bytes() <= output_pool.MAX_PER_SIZE * ((2 << 20) + output_pool.ALIGN)


def test_turned_off():
    previous = output_pool.set_enabled(False)
    try:
        assert output_pool.empty(BIG, np.float32).flags.owndata
    finally:
        output_pool.set_enabled(previous)


def test_jitted_results_come_from_the_pool_and_are_right():
    x = np.random.default_rng(0).standard_normal(BIG).astype(np.float32)
    f = ferrule.jit(lambda x: x * 2.0 + 1.0)
    first = f(x)
    assert not first.flags.owndata
    kept = first.copy()
    address = first.ctypes.data
    del first
    second = f(x + 1.0)
    assert second.ctypes.data == address
    np.testing.assert_array_equal(second, (x + 1.0) * 2.0 + 1.0)
    np.testing.assert_array_equal(kept, x * 2.0 + 1.0)
