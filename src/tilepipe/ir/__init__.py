"""The tile-program IR: immutable nodes, functors, printing, equality, substitution."""

from .buffer import REGISTER_SCOPES, SCOPES, SHARED_SCOPES, Buffer, BufferRegion, Range
from .expr import (
    BINARY_OPS, DTYPES, EQ, FLOAT_DTYPES, GE, GT, INT_DTYPES, LE, LT, NE, Add, And, BinaryOp,
    BufferLoad, Call, Cast, CompareOp, Div, FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul,
    Not, Or, PrimExpr, Select, StringImm, Sub, Var, as_int, const, convert, dtype_bytes,
    is_float_dtype, is_int_dtype,
)
from .functor import IRMutator, IRVisitor, post_order_visit
from .node import Node
from .stmt import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, AttrStmt, Block, BufferStore, Evaluate, For,
    ForKind, IfThenElse, PrimFunc, SeqStmt, Stmt, seq,
)
from .structural import assert_structural_equal, structural_equal, structural_hash
from .substitute import bind_params, free_size_vars, substitute
