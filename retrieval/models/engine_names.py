"""The inference engines' names, fastest first, apart from their code: settings and stored
space options name an engine without loading torch or OpenVINO."""

from __future__ import annotations

from typing import Literal

EngineName = Literal["openvino-int8", "openvino-bf16", "openvino-mixed", "openvino-fp32",
                     "torch"]
ENGINES: tuple[EngineName, ...] = ("openvino-int8", "openvino-bf16", "openvino-mixed",
                                   "openvino-fp32", "torch")
REFERENCE_ENGINE = "torch"
MIXED_ENGINE = "openvino-mixed"
INT8_ENGINE = "openvino-int8"
OPT_IN_ENGINES = (INT8_ENGINE,)  # run only when named: their vectors move by design
