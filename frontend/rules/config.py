"""RuleConfig and its capability traits, as in ChainRulesCore.

A config is an instance of :class:`RuleConfig` that also inherits the traits
its AD has: exactly one of :class:`HasReverseMode` / :class:`NoReverseMode`
and one of :class:`HasForwardsMode` / :class:`NoForwardsMode`. Rules test a
capability with ``isinstance(config, HasForwardsMode)`` — the Python spelling
of ChainRules' ``config::RuleConfig{>:HasForwardsMode}``.
"""


class RuleConfig:
    """What a rule may ask of the AD system that runs it.

    Subclasses implement :meth:`frule_via_ad` (when they have forward mode)
    and :meth:`rrule_via_ad` (when they have reverse mode).
    """

    def frule_via_ad(self, tangents, f, *args):
        raise NotImplementedError(
            f"{type(self).__name__} has no forward mode: guard the rule with "
            f"isinstance(config, HasForwardsMode) and provide a fallback")

    def rrule_via_ad(self, f, *args):
        raise NotImplementedError(
            f"{type(self).__name__} has no reverse mode: guard the rule with "
            f"isinstance(config, HasReverseMode)")


class HasReverseMode:
    """Trait: the AD can differentiate in reverse mode (``rrule_via_ad``)."""


class NoReverseMode:
    """Trait: the AD has no reverse mode."""


class HasForwardsMode:
    """Trait: the AD can differentiate in forward mode (``frule_via_ad``)."""


class NoForwardsMode:
    """Trait: the AD has no forward mode (Zygote's config, ferrule.eager's)."""
