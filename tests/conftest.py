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
        os.environ["FERRULE_NUM_THREADS"] = "2"
        from ferrule import api
        api._ROW_SPLIT_MIN_ELEMENTS = 1
        api._MIN_ROWS_PER_CHUNK_WITH_SUMS = 1
