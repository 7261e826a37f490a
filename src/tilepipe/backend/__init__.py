"""Backends: lowering of pipelined tile programs to target code (CUDA C++ in ``cuda``)."""
