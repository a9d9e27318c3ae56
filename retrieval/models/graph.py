"""Inference-only rewrites of a backbone: the same outputs, less work per call.

`fold_batch_norm` merges each BatchNorm into the convolution before it. `freeze_graph` turns
the model into a frozen TorchScript graph, so one call runs every layer in C++ without
taking Python's GIL between layers: a writer thread or the API's other threads then no
longer stall the model (`lookalike bench ingest` shows the effect end to end).
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch.fx.experimental.optimization import fuse

logger = logging.getLogger(__name__)

# TorchScript's profiling executor records shapes on the first calls, then optimises.
WARM_UP_CALLS = 2


def fold_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The eval-mode model with each BatchNorm folded into the convolution before it.

    Same outputs up to float rounding (tested), one convolution instead of two passes over
    the activations. A model torch.fx cannot trace (dynamic control flow) is returned
    unchanged, with a log line.
    """
    try:
        return fuse(model, inplace=False)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError) as error:
        logger.info("batch norm not folded (%s): the model runs as it is", error)
        return model


def freeze_graph(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """The eval-mode model traced on `example`, frozen (weights become constants) and run on
    it until TorchScript's one-off optimisation (about a second) is done, so that it happens
    here rather than in the first search.

    Only shape-agnostic networks belong here (convolution trunks: any batch and image size
    run through the traced graph; tested against the eager model). A model the tracer
    cannot follow is returned unchanged, with a log line.
    """
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated for torch.compile, whose generated Python wrapper
            # still takes the GIL on every call and which needs a C++ compiler at run time.
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(model.eval(), example, check_trace=False)
            frozen: torch.nn.Module = torch.jit.freeze(traced)
        with torch.inference_mode():
            for _ in range(WARM_UP_CALLS):
                frozen(example)
        return frozen
    except (RuntimeError, TypeError) as error:
        logger.warning("model not frozen to a graph (%s): it runs eagerly", error)
        return model
