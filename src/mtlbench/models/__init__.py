"""Models: dedicated single-task networks, RSN2 multitask networks and hard-parameter-sharing ones."""

from mtlbench.models.dedicated import ARCHITECTURES, build_dedicated, build_shared, count_parameters

__all__ = ["ARCHITECTURES", "build_dedicated", "build_shared", "count_parameters"]
