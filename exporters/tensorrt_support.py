"""Former home of the TensorRT readiness check, kept so existing imports keep working.

The check now lives in :mod:`acmix_deploy.exporters.tensorrt` (``readiness``, ``node_checks``,
``findings``) with NVIDIA's support data in ``support_table.json``; import it from there.
"""

from .tensorrt import SUPPORT_TABLE, Finding, check_tensorrt_readiness, format_findings, has_blockers

__all__ = ["SUPPORT_TABLE", "Finding", "check_tensorrt_readiness", "format_findings", "has_blockers"]
