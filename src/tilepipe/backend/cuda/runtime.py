"""``build``: lower, generate, compile, and a callable that launches the kernel on a GPU.

The callable takes the function's parameters in order (or by name): NumPy arrays are
copied to the GPU and back into the same arrays after the launch; CuPy / PyTorch device
arrays (``__cuda_array_interface__`` or DLPack) are used in place. Free sizes are read
from the arrays' shapes. Launching goes through cuda-python's driver API; without a GPU
the call raises a :class:`TilepipeError` while ``.source`` and ``.cubin`` stay available.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import LoweringError, TilepipeError
from ...ir import Buffer, PrimExpr, PrimFunc, Var, substitute
from .codegen import KernelSource, generate
from .compiler import compile_source
from .lower import pipeline_and_lower

NUMPY_DTYPES = {
    "float32": np.float32, "float64": np.float64, "float16": np.float16, "int8": np.int8,
    "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
    "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64, "bool": np.bool_,
}


class DeviceError(TilepipeError):
    """No usable GPU, or the driver refused an operation."""


def build(func: PrimFunc, target: str = "cuda", arch: str | None = None) -> "CompiledKernel":
    """Compile ``func`` for a GPU of ``arch`` (default: the present GPU's, else
    ``sm_80``) and return the launchable kernel. Pipeline annotations that ``func`` still
    carries are applied first."""
    if target != "cuda":
        raise LoweringError(f"unknown target '{target}' (tilepipe builds for 'cuda')")
    lowered = pipeline_and_lower(func)
    kernel = generate(lowered, arch or _present_arch() or "sm_80")
    return CompiledKernel(lowered, kernel, compile_source(kernel.source, kernel.arch))


@dataclass
class CompiledKernel:
    """A compiled kernel: ``source`` (CUDA C++), ``cubin`` (bytes), ``lowered`` (the
    program it was generated from); call it to run it on the GPU."""

    lowered: PrimFunc
    kernel: KernelSource
    cubin: bytes
    _function: Any = field(default=None, repr=False)

    @property
    def source(self) -> str:
        return self.kernel.source

    @property
    def arch(self) -> str:
        return self.kernel.arch

    def __call__(self, *args, **kwargs):
        values = self._bind_arguments(args, kwargs)
        driver = _driver()
        function = self._load(driver)
        sizes = {param: value for param, value in values.items() if isinstance(param, Var)}
        grid = tuple(_evaluate(extent, sizes) for extent in self.kernel.grid)
        block = tuple(_evaluate(extent, sizes) for extent in self.kernel.block)
        with _DeviceArguments(driver, self.kernel.params, values,
                              self.kernel.tensor_maps) as arguments:
            _check(driver, driver.cuLaunchKernel(
                function, *grid, *block, self.kernel.dynamic_shared_bytes, 0,
                arguments.pointers(), 0), "launch the kernel")
            _check(driver, driver.cuCtxSynchronize(), "run the kernel")
        return None

    def _bind_arguments(self, args, kwargs) -> dict:
        params = self.lowered.params
        if len(args) > len(params):
            raise TilepipeError(f"{self.lowered.name} takes {len(params)} arguments, "
                                f"got {len(args)}")
        values = dict(zip(params, args))
        by_name = {param.name: param for param in params}
        for name, value in kwargs.items():
            if name not in by_name:
                raise TilepipeError(f"{self.lowered.name} has no parameter '{name}'")
            values[by_name[name]] = value
        missing = [param.name for param in params if param not in values]
        if missing:
            raise TilepipeError(f"{self.lowered.name}: missing arguments {', '.join(missing)}")
        sizes: dict[Var, int] = {}
        for param in params:
            if isinstance(param, Buffer):
                _match_shape(param, _shape_of(values[param]), sizes)
        for param in self.kernel.params:
            if isinstance(param, Var) and param not in values:
                if param not in sizes:
                    raise TilepipeError(f"size {param.name} cannot be read from the arguments")
                values[param] = sizes[param]
        return values

    def _load(self, driver):
        if self._function is None:
            device = _first_device(driver)
            context = _check(driver, driver.cuDevicePrimaryCtxRetain(device), "open a context")
            _check(driver, driver.cuCtxSetCurrent(context), "open a context")
            module = _check(driver, driver.cuModuleLoadData(self.cubin), "load the cubin")
            function = _check(driver, driver.cuModuleGetFunction(
                module, self.kernel.name.encode()), "find the kernel")
            if self.kernel.dynamic_shared_bytes > 48 * 1024:
                _check(driver, driver.cuFuncSetAttribute(
                    function,
                    driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    self.kernel.dynamic_shared_bytes), "allow the dynamic shared memory")
            self._function = function
        return self._function


def _driver():
    """cuda-python's driver API, initialised; a DeviceError where there is no GPU."""
    try:
        from cuda.bindings import driver
    except ImportError:
        raise DeviceError("cannot launch: cuda-python is not installed "
                          "(pip install cuda-python); the compiled kernel is in .cubin") from None
    try:
        result = driver.cuInit(0)
    except RuntimeError as error:  # libcuda (the NVIDIA driver) cannot be loaded
        raise DeviceError(f"no CUDA GPU is available: the NVIDIA driver library cannot be "
                          f"loaded ({error}); the kernel was compiled: see .source and "
                          ".cubin") from None
    _check(driver, result, "initialise the CUDA driver")
    return driver


def _check(driver, result, what: str):
    error, *rest = result if isinstance(result, tuple) else (result,)
    if error != driver.CUresult.CUDA_SUCCESS:
        name = getattr(error, "name", str(error))
        if name in ("CUDA_ERROR_NO_DEVICE", "CUDA_ERROR_INSUFFICIENT_DRIVER",
                    "CUDA_ERROR_NOT_INITIALIZED", "CUDA_ERROR_STUB_LIBRARY"):
            raise DeviceError(f"no CUDA GPU is available ({name} when trying to {what}); the "
                              "kernel was compiled: see .source and .cubin")
        raise DeviceError(f"CUDA driver error {name} when trying to {what}")
    return rest[0] if len(rest) == 1 else tuple(rest) if rest else None


def _first_device(driver):
    count = _check(driver, driver.cuDeviceGetCount(), "count the GPUs")
    if not count:
        raise DeviceError("no CUDA GPU is available; the kernel was compiled: see .source "
                          "and .cubin")
    return _check(driver, driver.cuDeviceGet(0), "open GPU 0")


def _present_arch() -> str | None:
    """``sm_XY`` of GPU 0, or None where there is no GPU (or no driver)."""
    try:
        from cuda.bindings import driver
    except ImportError:
        return None
    try:
        (error,) = driver.cuInit(0)
        if error != driver.CUresult.CUDA_SUCCESS:
            return None
        error, device = driver.cuDeviceGet(0)
        if error != driver.CUresult.CUDA_SUCCESS:
            return None
        attribute = driver.CUdevice_attribute
        _, major = driver.cuDeviceGetAttribute(
            attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
        _, minor = driver.cuDeviceGetAttribute(
            attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
    except RuntimeError:  # the driver library is missing
        return None
    arch = f"sm_{major}{minor}"
    return "sm_90a" if arch == "sm_90" else arch


def _shape_of(value) -> tuple[int, ...]:
    if hasattr(value, "shape"):
        return tuple(int(extent) for extent in value.shape)
    raise TilepipeError(f"expected an array, got {type(value).__name__}")


def _match_shape(buffer: Buffer, shape: tuple[int, ...], sizes: dict[Var, int]) -> None:
    if len(shape) != len(buffer.shape):
        raise TilepipeError(f"{buffer.name} has {len(buffer.shape)} dimensions, the argument "
                            f"has shape {shape}")
    for expected, actual in zip(buffer.shape, shape):
        if isinstance(expected, Var) and expected not in sizes:
            sizes[expected] = actual
        elif _evaluate(expected, sizes) != actual:
            raise TilepipeError(f"{buffer.name} expects shape {tuple(buffer.shape)!r}, the "
                                f"argument has shape {shape}")


def _evaluate(expr: PrimExpr, values: dict[Var, int]) -> int:
    from ...arith import Analyzer
    from ...ir import as_int

    value = as_int(Analyzer().simplify(substitute(expr, values)))
    if value is None:
        raise TilepipeError(f"cannot evaluate {expr!r} from the arguments")
    return value


class _DeviceArguments:
    """Device pointers for the kernel arguments; NumPy arrays copied in and back out."""

    def __init__(self, driver, params, values, tensor_maps=()):
        self.driver = driver
        self.params = params
        self.values = values
        self.tensor_maps = tensor_maps
        self.copies: list[tuple[Any, np.ndarray, np.ndarray]] = []
        self.holders: list[np.ndarray] = []
        self.addresses: np.ndarray | None = None

    def __enter__(self):
        for param in self.params:
            value = self.values[param]
            if isinstance(param, Buffer):
                self.holders.append(np.array([self._address(param, value)], dtype=np.uint64))
            else:
                self.holders.append(np.array([value], dtype=NUMPY_DTYPES[param.dtype]))
        # TMA descriptors follow the parameters, encoded over their buffers' addresses.
        from .tma import tensor_map_argument

        names = [getattr(param, "name", None) for param in self.params]
        for spec in self.tensor_maps:
            address = int(self.holders[names.index(spec.buffer)][0])
            self.holders.append(tensor_map_argument(spec, address))
        return self

    def _address(self, buffer: Buffer, value) -> int:
        driver = self.driver
        if not hasattr(value, "__cuda_array_interface__") and hasattr(value, "__dlpack__") \
                and value.__dlpack_device__()[0] == 2:  # kDLCUDA
            value = _from_dlpack(value)
        if hasattr(value, "__cuda_array_interface__"):
            address = int(value.__cuda_array_interface__["data"][0])
        else:
            array = np.ascontiguousarray(value, dtype=NUMPY_DTYPES[buffer.dtype])
            device = _check(driver, driver.cuMemAlloc(max(array.nbytes, 1)), "allocate")
            self.copies.append((device, value, array))
            _check(driver, driver.cuMemcpyHtoD(device, array, array.nbytes), "copy in")
            address = int(device)
        if address % 16:
            raise TilepipeError(f"{buffer.name}'s device address is not 16-byte aligned")
        return address

    def pointers(self) -> int:
        """The address of the array of argument addresses that cuLaunchKernel reads."""
        self.addresses = np.array([holder.ctypes.data for holder in self.holders],
                                  dtype=np.uint64)
        return self.addresses.ctypes.data

    def __exit__(self, kind, error, traceback):
        driver = self.driver
        for device, original, array in self.copies:
            if error is None:
                _check(driver, driver.cuMemcpyDtoH(array, device, array.nbytes), "copy out")
                if isinstance(original, np.ndarray) and array is not original:
                    original[...] = array
            driver.cuMemFree(device)
        return False


def _from_dlpack(value):
    """A CUDA DLPack tensor as an object with ``__cuda_array_interface__``."""
    for module in ("cupy", "torch"):
        try:
            library = __import__(module)
        except ImportError:
            continue
        return library.from_dlpack(value)
    raise TilepipeError("a DLPack CUDA array needs CuPy or PyTorch to be passed to a kernel")
