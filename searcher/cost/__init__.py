"""Cost models of a candidate: analytic FLOPs checked against fvcore (:mod:`.flops`), and measured throughput
and peak memory (:mod:`.throughput`). Conventions: DESIGN.md "Conventions: FLOPs" and "Throughput".

``searcher.cost.flops`` stays the module; the function is ``searcher.cost.flops.flops`` (``searcher.flops``).
"""

from .flops import Breakdown, FvcoreCount, ModelShape, count, describe, flops_report, fvcore_flops
from .throughput import Throughput, cached_measure, compare, measure

__all__ = [
    "Breakdown",
    "FvcoreCount",
    "ModelShape",
    "count",
    "describe",
    "flops_report",
    "fvcore_flops",
    "Throughput",
    "cached_measure",
    "compare",
    "measure",
]
