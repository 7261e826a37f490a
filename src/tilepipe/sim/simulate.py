"""Running a function on NumPy arrays: binding sizes, checking inputs, random inputs."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..arith import Analyzer
from ..errors import TilepipeError
from ..ir import Buffer, IntImm, PrimFunc, Var, bind_params, free_size_vars
from .interpreter import Interpreter, Observer
from .memory import numpy_dtype
from .schedule import EAGER, Schedule, parse_schedule


class InputError(TilepipeError):
    """Inputs that do not fit the function's parameters."""


def bind(func: PrimFunc, dims: Mapping[str, int] | None = None,
         inputs: Mapping[str, np.ndarray] | None = None) -> PrimFunc:
    """``func`` with its sizes and scalar parameters bound: from ``dims``, and sizes that
    a buffer parameter's shape names directly from the shape of its input array."""
    values = dict(dims or {})
    for param in func.buffer_params:
        array = (inputs or {}).get(param.name)
        if array is None or np.ndim(array) != len(param.shape):
            continue
        for extent, size in zip(param.shape, np.shape(array)):
            if isinstance(extent, Var) and extent not in func.scalar_params:
                values.setdefault(extent.name, int(size))
    bound = bind_params(func, values)
    unbound = [var.name for var in free_size_vars(bound)] + [
        var.name for var in bound.scalar_params]
    if unbound:
        raise InputError(
            f"function '{func.name}' needs values for {', '.join(unbound)}: pass "
            "dims={...} (or --dim NAME=VALUE)", func.span)
    return bound


def shape_of(buffer: Buffer) -> tuple[int, ...]:
    """The constant shape of a bound buffer."""
    shape = []
    analyzer = Analyzer()
    for extent in buffer.shape:
        extent = analyzer.simplify(extent)
        if not isinstance(extent, IntImm) or extent.value < 0:
            raise InputError(f"the shape of {buffer.name} is not a constant size: "
                             f"{extent!r}", buffer.span)
        shape.append(extent.value)
    return tuple(shape)


def global_arrays(func: PrimFunc, inputs: Mapping[str, np.ndarray]) -> dict[Buffer, np.ndarray]:
    """Copies of ``inputs`` in the parameters' shapes and types, keyed by parameter."""
    names = {param.name for param in func.buffer_params}
    unknown = sorted(set(inputs) - names)
    if unknown:
        raise InputError(f"function '{func.name}' has no buffer parameter named "
                         f"{', '.join(unknown)} (it has {', '.join(sorted(names))})",
                         func.span)
    arrays = {}
    for param in func.buffer_params:
        if param.name not in inputs:
            raise InputError(f"no input array for buffer parameter '{param.name}' of "
                             f"'{func.name}'", param.span or func.span)
        array = np.asarray(inputs[param.name])
        shape = shape_of(param)
        if tuple(array.shape) != shape:
            raise InputError(f"input '{param.name}' has shape {tuple(array.shape)} but "
                             f"the parameter's shape is {shape}", param.span or func.span)
        arrays[param] = array.astype(numpy_dtype(param.dtype, param.span), copy=True)
    return arrays


def run(func: PrimFunc, inputs: Mapping[str, np.ndarray], dims=None,
        schedule: str | Schedule = EAGER, observer: Observer | None = None,
        blocks: range | None = None) -> tuple[Interpreter, dict[Buffer, np.ndarray]]:
    """Bind, check and run; the interpreter (for its statistics) and the arrays."""
    func = bind(func, dims, inputs)
    arrays = global_arrays(func, inputs)
    interpreter = Interpreter(func, arrays, parse_schedule(schedule), observer, blocks)
    interpreter.run()
    return interpreter, arrays


def simulate(func: PrimFunc, inputs: Mapping[str, np.ndarray], dims=None,
             schedule: str | Schedule = EAGER) -> dict[str, np.ndarray]:
    """Run ``func`` on ``inputs`` (by parameter name); every buffer parameter after it.

    ``schedule`` says when asynchronous accesses happen: ``"eager"``, ``"lazy"`` or
    ``"random:SEED"``. The input arrays are not modified.
    """
    _, arrays = run(func, inputs, dims, schedule)
    return {buffer.name: array for buffer, array in arrays.items()}


def random_inputs(func: PrimFunc, seed: int = 0, dims=None) -> dict[str, np.ndarray]:
    """Seeded random arrays for every buffer parameter: floats uniform in [-1, 1),
    integers in [0, 10), booleans fair."""
    func = bind(func, dims)
    generator = np.random.default_rng(seed)
    inputs = {}
    for param in func.buffer_params:
        shape = shape_of(param)
        dtype = numpy_dtype(param.dtype, param.span)
        if dtype.kind == "f":
            inputs[param.name] = generator.uniform(-1.0, 1.0, shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[param.name] = generator.random(shape) < 0.5
        else:
            inputs[param.name] = generator.integers(0, 10, shape).astype(dtype)
    return inputs
