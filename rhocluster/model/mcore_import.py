"""Import megatron.core with its import-time ``torch.compile`` calls deferred (patch 0 of
:mod:`rhocluster.model.patches`).

megatron-core 0.16 decorates a dozen fused kernels with ``megatron.core.jit.jit_fuser``, which is
``torch.compile``; merely decorating imports torch._dynamo and torch._inductor, ~2.2 s of every job that
imports megatron.core (about half of its import). Our models call none of those kernels (the fusions
are off and the host modules replace them), so while megatron.core is first imported ``torch.compile``
is replaced by :func:`compile_on_first_call`, which calls the real ``torch.compile`` on a function's
first call: the same compiled function whenever one is used, and nothing imported while none is.

Modules of this package import this one before any ``megatron`` import. Importing it after
megatron.core was imported elsewhere changes nothing.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import torch

_torch_compile = torch.compile


def compile_on_first_call(model: Callable | None = None, **kwargs: Any) -> Callable:
    """``torch.compile(model, **kwargs)``, done on the first call of the result instead of now (also as a
    decorator factory: ``compile_on_first_call(**kwargs)(fn)``)."""
    if model is None:
        return lambda fn: compile_on_first_call(fn, **kwargs)
    compiled: Callable | None = None

    @functools.wraps(model)
    def call(*args: Any, **kw: Any) -> Any:
        nonlocal compiled
        if compiled is None:
            compiled = _torch_compile(model, **kwargs)
        return compiled(*args, **kw)

    return call


def import_megatron_core() -> None:
    """Import megatron.core (once per process) with ``torch.compile`` deferred while it imports."""
    if "megatron.core" in sys.modules:
        return
    torch.compile = compile_on_first_call  # type: ignore[assignment]
    try:
        import megatron.core  # noqa: F401
    finally:
        torch.compile = _torch_compile


import_megatron_core()
