"""torchvision's model builders and operators, imported when first used.

`import torchvision` imports `torchvision.ops`, whose RoIAlign imports `torch._dynamo`: about
2.4 of the 9 seconds a server spends importing on a 2-core Zen 3 host (`python -X
importtime`). A server or CLI process whose space runs an OpenVINO export already on disk
never builds a torchvision network, so it should not pay for the import.
"""

from __future__ import annotations

from types import ModuleType


def vision_models() -> ModuleType:
    """The `torchvision.models` module (imported on the first call)."""
    import torchvision.models  # noqa: PLC0415 - see the module docstring

    models: ModuleType = torchvision.models
    return models


def vision_ops() -> ModuleType:
    """The `torchvision.ops` module (imported on the first call)."""
    import torchvision.ops  # noqa: PLC0415 - see the module docstring

    ops: ModuleType = torchvision.ops
    return ops
