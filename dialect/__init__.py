"""The `ad` dialect: its IRDL definition, loading it, and typed builders.

Every ferrule MLIR context is made by :func:`make_context`, which loads the
dialect from ``ad.irdl.mlir`` beside this file. The ops print in generic form
(``"ad.jvp"(...)``) because IRDL dialects have no custom syntax.
"""

from .context import make_context, load_ad_dialect
from .builders import jvp, vjp, frule_via_ad, custom_rrule, AD_OPS

__all__ = ["make_context", "load_ad_dialect", "jvp", "vjp", "frule_via_ad",
           "custom_rrule", "AD_OPS"]
