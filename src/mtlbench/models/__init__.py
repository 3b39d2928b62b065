"""Models: dedicated single-task networks (and, later, multitask ones), built by name."""

from mtlbench.models.dedicated import ARCHITECTURES, build_dedicated, count_parameters

__all__ = ["ARCHITECTURES", "build_dedicated", "count_parameters"]
