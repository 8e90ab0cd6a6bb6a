"""Shared pytest setup for ferrule's suites."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _ferrule_cache_dir(tmp_path_factory):
    """Keep the compile cache in a per-session tmp dir, not ~/.cache/ferrule."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERRULE_CACHE_DIR", str(tmp_path_factory.mktemp("ferrule-cache")))
        yield
