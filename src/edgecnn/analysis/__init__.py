"""Cost analysis of the IR: compute (:mod:`.costs`), fusion, DRAM traffic, peak memory, roofline.

The main entry point is :func:`profile`.
"""

from edgecnn.analysis.profile import LayerProfile, ProfileResult, ProfileTotals, profile

__all__ = ["LayerProfile", "ProfileResult", "ProfileTotals", "profile"]
