"""Substitution of variables (also in buffer shapes) and binding of sizes and scalars."""

from __future__ import annotations

import pytest

from tilepipe.errors import TilepipeError
from tilepipe.ir import (
    Add, Block, Buffer, BufferLoad, BufferStore, For, ForKind, IntImm, PrimFunc, SeqStmt,
    Var, bind_params, free_size_vars, structural_equal, substitute,
)


def test_substitute_replaces_only_mapped_variables():
    i, j = Var("i"), Var("j")
    untouched = j * 3
    expr = Add(i * 2, untouched)
    result = substitute(expr, {i: 5})
    assert structural_equal(result, Add(IntImm(5) * 2, j * 3))
    assert result.b is untouched
    assert substitute(expr, {}) is expr


def test_substitute_rebuilds_buffers_whose_shape_changes_once():
    n = Var("n")
    a = Buffer("A", (n, IntImm(4)))
    i = Var("i")
    body = SeqStmt((BufferStore(a, BufferLoad(a, (i, IntImm(0))), (i, IntImm(1))),
                    BufferStore(a, BufferLoad(a, (i, IntImm(2))), (i, IntImm(3)))))
    result = substitute(body, {n: 8})
    buffers = {id(stmt.buffer) for stmt in result.stmts} | {id(stmt.value.buffer)
                                                           for stmt in result.stmts}
    assert len(buffers) == 1
    new = result.stmts[0].buffer
    assert new is not a and isinstance(new.shape[0], IntImm) and new.shape[0].value == 8


def _symbolic_function():
    m, k, n = Var("m"), Var("k"), Var("n")
    a = Buffer("A", (m, k))
    i = Var("i")
    scratch = Buffer("S", (k,), scope="shared")
    body = For(i, IntImm(0), n, ForKind.SERIAL,
               Block("b", BufferStore(scratch, BufferLoad(a, (i, IntImm(0))), (IntImm(0),)),
                     alloc_buffers=(scratch,)))
    return PrimFunc("f", (a, n), body), (m, k, n)


def test_free_size_vars_in_order_of_appearance():
    func, (m, k, n) = _symbolic_function()
    assert free_size_vars(func) == [m, k]


def test_bind_params_binds_sizes_and_scalars_by_name():
    func, _ = _symbolic_function()
    bound = bind_params(func, {"m": 4, "k": 2, "n": 3})
    assert len(bound.params) == 1 and isinstance(bound.params[0], Buffer)
    assert [extent.value for extent in bound.params[0].shape] == [4, 2]
    assert bound.body.extent.value == 3
    assert bound.body.body.alloc_buffers[0].shape[0].value == 2
    assert free_size_vars(bound) == []


def test_bind_params_rejects_unknown_names():
    func, _ = _symbolic_function()
    with pytest.raises(TilepipeError, match="cannot bind q in function 'f'.*k, m, n"):
        bind_params(func, {"q": 1})


def test_bind_params_without_values_is_identity():
    func, _ = _symbolic_function()
    assert bind_params(func, {}) is func
