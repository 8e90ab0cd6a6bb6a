"""Shared pytest setup for ferrule's suites."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _ferrule_cache_dir(tmp_path_factory):
    """Keep the compile cache in a per-session tmp dir, not ~/.cache/ferrule."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERRULE_CACHE_DIR", str(tmp_path_factory.mktemp("ferrule-cache")))
        yield


def pytest_configure(config):
    """``FERRULE_FORCE_SPLIT=1``: every compiled function that can be split
    over row chunks is, on 2 threads, however small — so the numerical
    suites also check row splitting (``make test`` runs them this way)."""
    import os
    if os.environ.get("FERRULE_FORCE_SPLIT") == "1":
        from ferrule.runtime import cpu
        cpu.set_defaults(cpu.CpuOptions(threads=2, split_min_elements=1,
                                        split_min_rows_with_sums=1))
