"""Tensor-map descriptions of TMA tile copies: driver arguments and the TMA rules."""

import pytest

from tilepipe.backend.cuda.tma import encode, tensor_map_spec
from tilepipe.errors import LoweringError, TilepipeError


def test_driver_arguments_are_innermost_first_with_byte_strides():
    spec = tensor_map_spec("A", "float16", (256, 512), (64, 64), "128B")
    arguments = spec.driver_arguments()
    assert arguments["dims"] == (512, 256)
    assert arguments["strides"] == (1024,)
    assert arguments["box"] == (64, 64)
    assert spec.box_bytes == 64 * 64 * 2
    assert spec.parameter_name == "A_tensor_map"


def test_three_dimensional_strides():
    spec = tensor_map_spec("X", "float32", (4, 8, 16), (1, 8, 16))
    assert spec.driver_arguments()["strides"] == (64, 512)


@pytest.mark.parametrize("shape, box, swizzle, message", [
    ((64, 64), (64, 4), "none", "not a multiple of 16"),
    ((64, 128), (64, 128), "128B", "exceed the 128B swizzle"),
    ((64, 64), (512, 64), "none", "every extent must be"),
    ((64, 12), (8, 8), "none", "row pitch"),
    ((64, 64), (64,), "none", "tile of the buffer's rank"),
    ((64, 64), (64, 64), "16B", "unknown TMA swizzle"),
])
def test_tma_rules_are_reported(shape, box, swizzle, message):
    with pytest.raises(LoweringError, match=message):
        tensor_map_spec("A", "float16", shape, box, swizzle)


def test_unaligned_address_is_rejected_before_the_driver():
    spec = tensor_map_spec("A", "float16", (64, 64), (64, 64), "128B")
    with pytest.raises(TilepipeError, match="16-byte aligned"):
        encode(spec, 8)
