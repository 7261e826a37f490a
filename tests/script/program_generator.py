"""A hypothesis strategy of random, well-typed tile programs.

Programs mix every IR node the printer and parser know: loops of every kind with
annotations and non-zero starts, blocks with reads/writes/predicates/allocations/
annotations, stores, expressions of every operator and dtype, if-then-else, opaque calls,
async scopes, commit and wait nodes, attributes, symbolic sizes and scalar parameters.
Names are drawn from a small pool (with keywords and ``T``) so that clashes happen.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tilepipe.ir import (
    EQ, GE, GT, LE, LT, NE, Add, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue,
    AttrStmt, Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call, Cast, Div,
    Evaluate, FloatImm, FloorDiv, FloorMod, For, ForKind, IfThenElse, IntImm, Max, Min, Mul,
    Not, Or, PrimFunc, Range, Select, SeqStmt, StringImm, Sub, Var,
)

NAMES = ("i", "j", "n", "A", "B", "a", "T", "in", "x.y")
BUFFER_DTYPES = ("float32", "float16", "int32")
THREAD_TAGS = ("threadIdx.x", "threadIdx.y", "blockIdx.x")
OPAQUE_CALLS = ("tvm_storage_sync", "ptx_commit_group", "my_intrinsic")


class _Generator:
    def __init__(self, draw):
        self.draw = draw
        self.int_vars: list[Var] = []
        self.other_vars: list[Var] = []
        self.buffers: list[Buffer] = []
        self.size_vars: list[Var] = []

    # Choices ---------------------------------------------------------------------------
    def pick(self, options):
        return self.draw(st.sampled_from(list(options)))

    def chance(self) -> bool:
        return self.draw(st.booleans())

    def count(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def name(self) -> str:
        return self.pick(NAMES)

    # Expressions -----------------------------------------------------------------------
    def int_expr(self, depth: int = 2, dtype: str = "int32"):
        leaves = ["const"] + (["var"] if self.int_vars and dtype == "int32" else [])
        int_buffers = [b for b in self.buffers if b.dtype == dtype]
        if int_buffers and depth > 0:
            leaves.append("load")
        kinds = leaves + (["binary", "minmax", "select", "cast", "call"] if depth > 0 else [])
        kind = self.pick(kinds)
        if kind == "const":
            return IntImm(self.count(-20, 40), dtype)
        if kind == "var":
            return self.pick(self.int_vars)
        if kind == "load":
            return self.load(self.pick(int_buffers), depth - 1)
        if kind == "binary":
            node_type = self.pick((Add, Sub, Mul, FloorDiv, FloorMod))
            return node_type(self.int_expr(depth - 1, dtype), self.int_expr(depth - 1, dtype))
        if kind == "minmax":
            return self.pick((Min, Max))(self.int_expr(depth - 1, dtype),
                                         self.int_expr(depth - 1, dtype))
        if kind == "select":
            return Select(self.bool_expr(depth - 1), self.int_expr(depth - 1, dtype),
                          self.int_expr(depth - 1, dtype))
        if kind == "cast":
            source = self.pick(("int64", "float32")) if dtype == "int32" else "int32"
            inner = self.int_expr(depth - 1, source) if source != "float32" \
                else self.float_expr(depth - 1, source)
            return Cast(dtype, inner)
        return Call(dtype, self.pick(OPAQUE_CALLS), (self.int_expr(depth - 1, dtype),))

    def float_expr(self, depth: int = 2, dtype: str = "float32"):
        buffers = [b for b in self.buffers if b.dtype == dtype]
        kinds = ["const"] + (["load"] if buffers else [])
        kinds += [var for var in ("var",) if any(v.dtype == dtype for v in self.other_vars)]
        if depth > 0:
            kinds += ["binary", "minmax", "select", "cast", "math"]
        kind = self.pick(kinds)
        if kind == "const":
            value = self.draw(st.one_of(st.integers(-8, 8).map(float),
                                        st.floats(-1e4, 1e4, allow_nan=False)))
            return FloatImm(value, dtype)
        if kind == "load":
            return self.load(self.pick(buffers), depth - 1)
        if kind == "var":
            return self.pick([v for v in self.other_vars if v.dtype == dtype])
        if kind == "binary":
            node_type = self.pick((Add, Sub, Mul, Div))
            return node_type(self.float_expr(depth - 1, dtype), self.float_expr(depth - 1, dtype))
        if kind == "minmax":
            return self.pick((Min, Max))(self.float_expr(depth - 1, dtype),
                                         self.float_expr(depth - 1, dtype))
        if kind == "select":
            return Select(self.bool_expr(depth - 1), self.float_expr(depth - 1, dtype),
                          self.float_expr(depth - 1, dtype))
        if kind == "cast":
            return Cast(dtype, self.int_expr(depth - 1))
        return Call(dtype, "exp", (self.float_expr(depth - 1, dtype),))

    def bool_expr(self, depth: int = 2):
        kinds = ["const"] + (["var"] if any(v.dtype == "bool" for v in self.other_vars) else [])
        if depth > 0:
            kinds += ["compare", "compare", "logic", "not"]
        kind = self.pick(kinds)
        if kind == "const":
            return IntImm(int(self.chance()), "bool")
        if kind == "var":
            return self.pick([v for v in self.other_vars if v.dtype == "bool"])
        if kind == "compare":
            node_type = self.pick((EQ, NE, LT, LE, GT, GE))
            if self.chance():
                return node_type(self.int_expr(depth - 1), self.int_expr(depth - 1))
            return node_type(self.float_expr(depth - 1), self.float_expr(depth - 1))
        if kind == "logic":
            return self.pick((And, Or))(self.bool_expr(depth - 1), self.bool_expr(depth - 1))
        return Not(self.bool_expr(depth - 1))

    def value_expr(self, dtype: str, depth: int = 2):
        if dtype == "int32":
            return self.int_expr(depth)
        return self.float_expr(depth, dtype)

    def load(self, buffer: Buffer, depth: int) -> BufferLoad:
        return BufferLoad(buffer, tuple(self.int_expr(depth) for _ in buffer.shape))

    def region(self) -> BufferRegion:
        buffer = self.pick(self.buffers)
        ranges = []
        for _ in buffer.shape:
            start = self.int_expr(1)
            extent = self.pick((IntImm(1), IntImm(self.count(1, 8)), self.int_expr(1)))
            if self.chance():
                extent = Sub(self.int_expr(1), start)
            ranges.append(Range(start, extent))
        return BufferRegion(buffer, tuple(ranges))

    def annotations(self) -> dict:
        keys = self.draw(st.lists(st.sampled_from(("software_pipeline_stage", "pragma",
                                                   "note", "unroll_explicit")),
                                  max_size=2, unique=True))
        scalars = st.one_of(st.integers(-5, 5), st.booleans(), st.text("abc _-", max_size=4),
                            st.floats(-10, 10, allow_nan=False))
        values = st.one_of(scalars, st.lists(st.integers(0, 3), max_size=3).map(tuple))
        return {key: self.int_expr(1) if self.chance() else self.draw(values) for key in keys}

    def shape(self) -> tuple:
        return tuple(self.pick((IntImm(self.count(1, 16)), *self.size_vars))
                     if self.size_vars and self.chance() else IntImm(self.count(1, 16))
                     for _ in range(self.count(1, 3)))

    # Statements ------------------------------------------------------------------------
    def stmt(self, depth: int):
        kinds = ["store", "evaluate"]
        if depth > 0:
            kinds += ["for", "for", "block", "block", "if", "async", "commit", "wait", "attr",
                      "seq"]
        kind = self.pick(kinds)
        return getattr(self, "_" + kind)(depth)

    def _store(self, depth: int) -> BufferStore:
        buffer = self.pick(self.buffers)
        return BufferStore(buffer, self.value_expr(buffer.dtype),
                           tuple(self.int_expr(1) for _ in buffer.shape))

    def _evaluate(self, depth: int) -> Evaluate:
        choice = self.count(0, 2)
        if choice == 0:
            return Evaluate(Call("handle", "tvm_storage_sync", (StringImm("shared"),)))
        if choice == 1:
            buffer = self.pick(self.buffers)
            args = (buffer, self.region(), self.load(buffer, 1), self.int_expr(1),
                    StringImm(self.pick(("shared", "a\"b", "x"))))
            return Evaluate(Call(self.pick(("handle", "int32")), self.pick(OPAQUE_CALLS), args))
        return Evaluate(self.int_expr(1))

    def _for(self, depth: int) -> For:
        kind = self.pick(list(ForKind))
        start = self.pick((IntImm(0), IntImm(self.count(-3, 3)), self.int_expr(1)))
        extent = self.pick((IntImm(self.count(1, 16)), self.int_expr(1)))
        loop_var = Var(self.name())
        tag = self.pick(THREAD_TAGS) if kind is ForKind.THREAD_BINDING else None
        annotations = self.annotations() if self.chance() else {}
        self.int_vars.append(loop_var)
        body = self.stmt(depth - 1)
        self.int_vars.pop()
        return For(loop_var, start, extent, kind, body, tag, annotations)

    def _block(self, depth: int) -> Block:
        allocs = tuple(Buffer(self.name(), self.shape(), self.pick(BUFFER_DTYPES),
                              self.pick(("shared", "local", "shared.dyn", "global")))
                       for _ in range(self.count(0, 2)))
        self.buffers.extend(allocs)
        reads = tuple(self.region() for _ in range(self.count(0, 2)))
        writes = tuple(self.region() for _ in range(self.count(0, 2)))
        predicate = self.bool_expr(1) if self.chance() else None
        body = self.stmt(depth - 1)
        del self.buffers[len(self.buffers) - len(allocs):]
        name = self.pick(("", "compute", "with space", 'quote"d'))
        return Block(name, body, reads, writes, allocs, predicate,
                     self.annotations() if self.chance() else {})

    def _if(self, depth: int) -> IfThenElse:
        else_case = self.pick((None, "stmt", "if"))
        if else_case == "stmt":
            else_case = self.stmt(depth - 1)
        elif else_case == "if":
            else_case = self._if(depth - 1) if depth > 1 else self._store(0)
        return IfThenElse(self.bool_expr(), self.stmt(depth - 1), else_case)

    def _async(self, depth: int) -> AsyncScope:
        return AsyncScope(self.stmt(depth - 1))

    def _commit(self, depth: int) -> AsyncCommitQueue:
        return AsyncCommitQueue(self.count(0, 2), self.stmt(depth - 1))

    def _wait(self, depth: int) -> AsyncWaitQueue:
        return AsyncWaitQueue(self.count(0, 2), self.int_expr(1), self.stmt(depth - 1))

    def _attr(self, depth: int) -> AttrStmt:
        node = self.pick((IntImm(0), StringImm("target"), *self.int_vars))
        value = self.pick((IntImm(self.count(0, 4)), StringImm("shared")))
        return AttrStmt(node, self.pick(("pragma_unroll", "storage_scope")), value,
                        self.stmt(depth - 1))

    def _seq(self, depth: int) -> SeqStmt:
        stmts = []
        for _ in range(self.count(2, 3)):
            stmt = self.stmt(depth - 1)
            stmts.extend(stmt.stmts if isinstance(stmt, SeqStmt) else (stmt,))
        return SeqStmt(tuple(stmts))

    # Functions -------------------------------------------------------------------------
    def function(self) -> PrimFunc:
        self.size_vars = [Var(self.name()) for _ in range(self.count(0, 2))]
        scalars = [Var(self.name(), self.pick(("int32", "int32", "bool", "float32", "int64")))
                   for _ in range(self.count(0, 2))]
        int_scalars = [var for var in scalars if var.dtype == "int32"]
        self.size_vars += int_scalars
        buffers = [Buffer(self.name(), self.shape(), self.pick(BUFFER_DTYPES),
                          self.pick(("global", "global", "shared")))
                   for _ in range(self.count(1, 3))]
        params = self.draw(st.permutations(buffers + scalars))
        self.int_vars = list(self.size_vars)
        self.other_vars = [var for var in scalars if var.dtype != "int32"]
        self.buffers = list(buffers)
        body = self.stmt(self.count(1, 4))
        attrs = {"global_symbol": "main"} if self.chance() else {}
        return PrimFunc(self.pick(("main", "kernel")), tuple(params), body, attrs)


@st.composite
def programs(draw) -> PrimFunc:
    """A random well-typed :class:`PrimFunc`."""
    return _Generator(draw).function()
