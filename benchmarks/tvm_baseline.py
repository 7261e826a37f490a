"""Apache TVM's software pipeline pass on tilepipe's programs, for the benchmarks that
compare the two (``python3 -m pip install -e ".[baseline]"`` installs TVM 0.27).

A program's text goes to TVM rewritten into its TVMScript (TVM 0.27 names the dialect
``tirx``, schedulable blocks ``sblock``); TVM's output comes back rewritten into
tilepipe's notation, so that tilepipe's simulator can run and check it.
"""

from __future__ import annotations

import ast

# TVM's printed operator calls -> Python operators
_OPERATORS = {"FloorMod": ast.Mod, "FloorDiv": ast.FloorDiv, "Mul": ast.Mult, "Add": ast.Add,
              "Sub": ast.Sub}


class TvmBaseline:
    """TVM's ``InjectSoftwarePipeline``, and the translations to and from its notation.
    Raises ImportError when TVM (with the ``s_tir`` dialect) is not installed."""

    def __init__(self) -> None:
        import tvm
        import tvm.s_tir
        from tvm.script import parser, tirx

        self.tvm, self.parser, self.dialect = tvm, parser, tirx
        self.version = tvm.__version__
        self.inject = tvm.s_tir.transform.InjectSoftwarePipeline()

    def module(self, source: str):
        """The IRModule of the one function in tilepipe program text ``source``."""
        body = source[source.index("@T.prim_func"):]
        body = (body.replace("@T.prim_func", "@T.prim_func(s_tir=True)", 1)
                .replace("T.block(", "T.sblock(")
                .replace("T.alloc_buffer(", "T.sblock_alloc_buffer("))
        func = self.parser.parse(body, extra_vars={"T": self.dialect}, check_well_formed=False)
        return self.tvm.IRModule({"main": func})

    def run(self, module):
        return self.inject(module)

    @staticmethod
    def as_tilepipe(module) -> str:
        """TVM's output as tilepipe program text."""
        tree = ast.parse(module["main"].script())
        tree = _ToTilepipe().visit(tree)
        return "from tilepipe import script as T\n\n\n" + ast.unparse(
            ast.fix_missing_locations(tree))


def load_tvm() -> TvmBaseline | None:
    """TVM's pass, or None when Apache TVM (with the s_tir dialect) is not installed."""
    try:
        return TvmBaseline()
    except ImportError:
        return None


def _t_call(node: ast.AST, name: str | None = None) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "T"
            and (name is None or node.func.attr == name))


def _attrs(call: ast.Call) -> list[ast.Call]:
    """``T.attr({"k": v, ...})`` as one ``T.attr(0, "k", v)`` per key."""
    if len(call.args) != 1 or not isinstance(call.args[0], ast.Dict):
        return [call]
    return [ast.Call(call.func, [ast.Constant(0), key, value], [])
            for key, value in zip(call.args[0].keys, call.args[0].values)]


class _ToTilepipe(ast.NodeTransformer):
    """TVM 0.27's printed TVMScript -> tilepipe's: sblocks become blocks, dict-form
    attributes nested ones, operator calls operators, buffers of symbolic shape matched
    handles; the decorator loses its arguments and blocks their declared regions (which
    tilepipe infers)."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        self.generic_visit(node)
        node.decorator_list = [ast.Attribute(ast.Name("T"), "prim_func")]
        node.returns = None
        # A buffer of symbolic shape (``A: T.Buffer((1, "n"))``, then ``n = T.int32()``)
        # becomes a handle matched after the size declarations.
        declarations = 0
        while declarations < len(node.body) and isinstance(node.body[declarations], ast.Assign) \
                and _t_call(node.body[declarations].value):
            declarations += 1
        matches = []
        for arg in node.args.args:
            annotation = arg.annotation
            if not (_t_call(annotation, "Buffer") and isinstance(annotation.args[0], ast.Tuple)):
                continue
            shape = annotation.args[0].elts
            if all(isinstance(extent, ast.Constant) and isinstance(extent.value, int)
                   for extent in shape):
                continue
            extents = [ast.parse(extent.value, mode="eval").body
                       if isinstance(extent, ast.Constant) and isinstance(extent.value, str)
                       else extent for extent in shape]
            handle = arg.arg.lower() + "_handle"
            matches.append(ast.Assign([ast.Name(arg.arg)], ast.Call(
                ast.Attribute(ast.Name("T"), "match_buffer"),
                [ast.Name(handle), ast.Tuple(extents)] + annotation.args[1:],
                annotation.keywords)))
            arg.arg, arg.annotation = handle, ast.Attribute(ast.Name("T"), "handle")
        node.body[declarations:declarations] = matches
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if _t_call(node) and node.func.attr in _OPERATORS and len(node.args) == 2:
            return ast.BinOp(node.args[0], _OPERATORS[node.func.attr](), node.args[1])
        if _t_call(node, "sblock"):
            return ast.Call(ast.Attribute(ast.Name("T"), "block"), [], [])
        if _t_call(node, "sblock_alloc_buffer"):
            dtype = next((keyword.value for keyword in node.keywords
                          if keyword.arg == "dtype"), ast.Constant("float32"))
            keywords = [keyword for keyword in node.keywords if keyword.arg != "dtype"]
            return ast.Call(ast.Attribute(ast.Name("T"), "alloc_buffer"),
                            [node.args[0], dtype], keywords)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        # TVM prints a conjunction of conditions as ``(a) & (b)``
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            operator = ast.And() if isinstance(node.op, ast.BitAnd) else ast.Or()
            return ast.BoolOp(operator, [node.left, node.right])
        return node

    def visit_Expr(self, node: ast.Expr):
        self.generic_visit(node)
        if _t_call(node.value, "reads") or _t_call(node.value, "writes"):
            return None  # tilepipe infers the regions
        if _t_call(node.value, "attr"):
            return [ast.Expr(call) for call in _attrs(node.value)]
        return node

    def visit_With(self, node: ast.With) -> ast.With:
        self.generic_visit(node)
        call = node.items[0].context_expr
        if _t_call(call, "attr"):
            calls = _attrs(call)
            body = node.body
            for inner in reversed(calls[1:]):
                body = [ast.With([ast.withitem(inner)], body)]
            return ast.With([ast.withitem(calls[0])], body)
        return node
