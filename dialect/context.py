"""Making MLIR contexts that know the `ad` dialect."""

from functools import lru_cache
from pathlib import Path

from mlir import ir
from mlir.dialects import irdl

IRDL_PATH = Path(__file__).with_name("ad.irdl.mlir")


@lru_cache(maxsize=1)
def _irdl_source() -> str:
    return IRDL_PATH.read_text()


def load_ad_dialect(ctx: ir.Context) -> None:
    """Load the `ad` dialect into ``ctx`` (idempotent per context)."""
    if getattr(ctx, "_ferrule_ad_loaded", False):
        return
    with ctx, ir.Location.unknown():
        irdl.load_dialects(ir.Module.parse(_irdl_source()))
    try:
        ctx._ferrule_ad_loaded = True
    except AttributeError:  # contexts without a __dict__: load again next time
        pass


def make_context() -> ir.Context:
    """Return a new MLIR context with upstream dialects and `ad` loaded.

    Unregistered dialects are refused, so a misspelt op is an error, not an
    opaque op that the passes would silently skip.
    """
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = False
    load_ad_dialect(ctx)
    return ctx
