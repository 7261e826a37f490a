"""Visitors reach every node; mutators rebuild only what changed."""

from __future__ import annotations

from tilepipe.ir import (
    AsyncCommitQueue, AsyncScope, AsyncWaitQueue, Block, Buffer, BufferLoad, BufferRegion,
    BufferStore, Call, Evaluate, For, ForKind, IfThenElse, IntImm, IRMutator, IRVisitor,
    PrimExpr, Range, SeqStmt, StringImm, Var, post_order_visit, structural_equal,
)


def _program():
    i, n = Var("i"), Var("n")
    a = Buffer("A", (IntImm(16),))
    s = Buffer("S", (IntImm(16),), scope="shared")
    copy = AsyncCommitQueue(0, AsyncScope(BufferStore(s, BufferLoad(a, (i,)), (i,))))
    use = AsyncWaitQueue(0, IntImm(1) - i, BufferStore(a, BufferLoad(s, (i,)) + 1.0, (i,)))
    sync = Evaluate(Call("handle", "tvm_storage_sync", (StringImm("shared"),)))
    body = Block("b", SeqStmt((copy, IfThenElse(i < n, use, sync))),
                 reads=(BufferRegion(a, (Range(IntImm(0), IntImm(16)),)),),
                 alloc_buffers=(s,), predicate=i < 16)
    return For(i, IntImm(0), n, ForKind.UNROLLED, body), (i, n, a, s)


def test_visitor_reaches_every_variable_use():
    program, (i, n, _, _) = _program()
    uses = []

    class Counter(IRVisitor):
        def visit_var(self, node):
            uses.append(node)

    Counter().visit(program)
    assert uses.count(n) == 2
    assert uses.count(i) == 7


def test_post_order_visit_sees_children_first():
    program, _ = _program()
    order = []
    post_order_visit(program, order.append)
    assert order[-1] is program
    assert order.index(program.body) < order.index(program)


def test_mutator_rebuilds_only_changed_paths():
    program, (i, n, a, s) = _program()

    class Doubler(IRMutator):
        def visit_int_imm(self, node):
            return IntImm(node.value * 2, node.dtype) if node.value == 1 else node

    result = Doubler().visit(program)
    assert result is not program
    copy_before, copy_after = program.body.body.stmts[0], result.body.body.stmts[0]
    assert copy_after is copy_before
    wait = result.body.body.stmts[1].then_case
    assert structural_equal(wait.in_flight, IntImm(2) - Var("i"))

    class Identity(IRMutator):
        pass

    assert Identity().visit(program) is program


def test_mutator_remaps_buffers_everywhere():
    program, (_, _, a, s) = _program()
    bigger = Buffer("S", (IntImm(32),), scope="shared")

    class Remap(IRMutator):
        def visit_buffer(self, node):
            return bigger if node is s else node

    result = Remap().visit(program)
    assert result.body.alloc_buffers == (bigger,)
    seen = set()

    def note(node):
        if isinstance(node, (BufferLoad, BufferStore)):
            seen.add(id(node.buffer))

    post_order_visit(result, note)
    assert id(s) not in seen and id(bigger) in seen and id(a) in seen
    assert isinstance(result.body.predicate, PrimExpr)
