"""Tensor maps for TMA tile copies, built at launch with ``cuTensorMapEncodeTiled``.

A kernel that copies tiles of a global buffer with ``T.tma_load`` takes one
``const __grid_constant__ CUtensorMap`` parameter per such buffer. Its description (the
buffer's shape and dtype, the tile box, the shared-memory swizzle) is fixed when the
kernel is generated, as a :class:`TensorMapSpec`; the launcher encodes it against the
device address of the argument with :func:`encode`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import LoweringError, TilepipeError
from ...ir import dtype_bytes

_DRIVER_DTYPES = {
    "float16": "FLOAT16", "bfloat16": "BFLOAT16", "float32": "FLOAT32", "float64": "FLOAT64",
    "int32": "INT32", "int64": "INT64", "uint8": "UINT8", "uint16": "UINT16",
    "uint32": "UINT32", "uint64": "UINT64",
}
SWIZZLE_BYTES = {"none": 0, "32B": 32, "64B": 64, "128B": 128}
MAX_RANK = 5
MAX_BOX_EXTENT = 256
GLOBAL_ALIGNMENT = 16


@dataclass(frozen=True)
class TensorMapSpec:
    """A tiled view of a row-major global buffer (shapes outermost first, as in the IR)."""

    buffer: str
    dtype: str
    shape: tuple[int, ...]
    box: tuple[int, ...]
    swizzle: str = "none"

    @property
    def element_bytes(self) -> int:
        return dtype_bytes(self.dtype)

    @property
    def box_bytes(self) -> int:
        """Bytes one copy delivers: what ``arrive.expect_tx`` must announce."""
        total = self.element_bytes
        for extent in self.box:
            total *= extent
        return total

    @property
    def parameter_name(self) -> str:
        return f"{self.buffer}_tensor_map"

    def driver_arguments(self) -> dict:
        """Dims, strides (bytes, of every dimension but the innermost) and box, innermost
        first as the driver wants them."""
        dims = tuple(reversed(self.shape))
        strides = []
        stride = self.element_bytes
        for extent in dims[:-1]:
            stride *= extent
            strides.append(stride)
        return {
            "rank": len(dims),
            "dims": dims,
            "strides": tuple(strides),
            "box": tuple(reversed(self.box)),
            "element_strides": (1,) * len(dims),
            "swizzle": self.swizzle,
        }


def tensor_map_spec(buffer: str, dtype: str, shape, box, swizzle: str = "none",
                    span=None) -> TensorMapSpec:
    """Check the TMA rules for a tiled view and return its description.

    Raises :class:`LoweringError` naming the rule a shape breaks: rank 1..5, box extents
    1..256 not beyond the tensor, innermost box row a multiple of 16 bytes (and at most
    the swizzle width when swizzled), row pitches multiples of 16 bytes.
    """
    shape = tuple(int(extent) for extent in shape)
    box = tuple(int(extent) for extent in box)
    if dtype not in _DRIVER_DTYPES:
        raise LoweringError(f"TMA cannot copy {dtype} elements of {buffer}", span)
    if swizzle not in SWIZZLE_BYTES:
        raise LoweringError(f"unknown TMA swizzle '{swizzle}' (use {', '.join(SWIZZLE_BYTES)})",
                            span)
    if not 1 <= len(shape) <= MAX_RANK or len(box) != len(shape):
        raise LoweringError(
            f"a TMA copy of {buffer} needs a tile of the buffer's rank (1 to {MAX_RANK}); "
            f"got a {len(box)}-d tile of a {len(shape)}-d buffer", span)
    for extent, limit in zip(box, shape):
        if not 1 <= extent <= min(MAX_BOX_EXTENT, limit):
            raise LoweringError(
                f"TMA tile {list(box)} of {buffer}{list(shape)}: every extent must be "
                f"1..{MAX_BOX_EXTENT} and fit the buffer", span)
    element = dtype_bytes(dtype)
    row_bytes = box[-1] * element
    if row_bytes % 16:
        raise LoweringError(
            f"TMA tile {list(box)} of {buffer}: its rows are {row_bytes} bytes, not a "
            "multiple of 16", span)
    if swizzle != "none" and row_bytes > SWIZZLE_BYTES[swizzle]:
        raise LoweringError(
            f"TMA tile {list(box)} of {buffer}: rows of {row_bytes} bytes exceed the "
            f"{swizzle} swizzle", span)
    pitch = element
    for extent in reversed(shape[1:]):
        pitch *= extent
        if pitch % GLOBAL_ALIGNMENT:
            raise LoweringError(
                f"TMA needs the row pitch of {buffer}{list(shape)} to be a multiple of "
                f"{GLOBAL_ALIGNMENT} bytes (it is {pitch})", span)
    return TensorMapSpec(buffer, dtype, shape, box, swizzle)


def encode(spec: TensorMapSpec, address: int):
    """The driver's ``CUtensorMap`` for ``spec`` over the global buffer at ``address``."""
    if address % GLOBAL_ALIGNMENT:
        raise TilepipeError(f"the device address of {spec.buffer} is not 16-byte aligned")
    from cuda.bindings import driver

    arguments = spec.driver_arguments()
    swizzle_name = "NONE" if spec.swizzle == "none" else spec.swizzle
    try:
        result, tensor_map = driver.cuTensorMapEncodeTiled(
            getattr(driver.CUtensorMapDataType,
                    f"CU_TENSOR_MAP_DATA_TYPE_{_DRIVER_DTYPES[spec.dtype]}"),
            arguments["rank"],
            address,
            [driver.cuuint64_t(extent) for extent in arguments["dims"]],
            [driver.cuuint64_t(stride) for stride in arguments["strides"]],
            [driver.cuuint32_t(extent) for extent in arguments["box"]],
            [driver.cuuint32_t(stride) for stride in arguments["element_strides"]],
            driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
            getattr(driver.CUtensorMapSwizzle, f"CU_TENSOR_MAP_SWIZZLE_{swizzle_name}"),
            driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    except Exception as error:  # the driver library is missing: no GPU here
        raise TilepipeError(f"cannot encode the tensor map of {spec.buffer}: {error}") from None
    if result != driver.CUresult.CUDA_SUCCESS:
        raise TilepipeError(f"cuTensorMapEncodeTiled failed for {spec.buffer}: {result}")
    return tensor_map


TENSOR_MAP_BYTES = 128


def tensor_map_argument(spec: TensorMapSpec, address: int):
    """The 128 bytes of the encoded tensor map, as the kernel argument cuLaunchKernel
    copies (a ``const __grid_constant__ CUtensorMap`` parameter)."""
    import ctypes

    import numpy as np

    tensor_map = encode(spec, address)
    return np.frombuffer(ctypes.string_at(tensor_map.getPtr(), TENSOR_MAP_BYTES),
                         dtype=np.uint8).copy()
