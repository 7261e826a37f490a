"""Ready-made tile programs: the seeds' examples, GEMM kernels and attention.

Each kernel is a Python function of its problem sizes that returns a PrimFunc; import the
module that holds it (``tilepipe.kernels.gemm``) rather than this package.
"""
