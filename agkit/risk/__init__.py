"""Pre-trade risk (the `risk-check` stage) and risk analytics (`agkit risk ...`).

Importing this package is cheap: the stage path (`agkit.risk.policy`,
`agkit.risk.stage`) uses only the standard library and PyYAML; the analytics modules
(`var`, `stress`, `greeks`, `portfolio_risk`, `perf`) import numpy/scipy lazily inside
their functions.
"""

from __future__ import annotations

__all__ = ["RiskCheck", "load_policy"]


def __getattr__(name: str) -> object:
    if name == "load_policy":
        from agkit.risk.policy import load_policy

        return load_policy
    if name == "RiskCheck":
        from agkit.risk.stage import RiskCheck

        return RiskCheck
    raise AttributeError(name)
