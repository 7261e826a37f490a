"""Hypothesis strategies for producer/consumer loop programs, as DSL source text.

A generated program has ``threads`` threads; its annotated loop ``i`` runs ``extent``
iterations from ``start`` (a constant, or a size ``n`` bound at run time), optionally
inside an outer loop ``j``, optionally after an asynchronous copy of a tile ``P`` that
the consumer reads. Each iteration copies one element per thread from each
input into a shared buffer (the producers), may transform it in shared memory (an
intermediate stage) and combines them into the output (the consumer), which may read
the element another thread copied. Stages, orders and asynchronous stages are drawn at
random among the annotations that respect the dependencies.

``programs()`` draws a :class:`PipelineProgram`; its ``source`` is a complete file for
``tilepipe.script.parse`` and its ``dims`` bind the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

HEADER = "from tilepipe import script as T\n\n\n"
MAX_STAGE = 3

# The seeds' three stages, two of them asynchronous on two queues (a copy and an
# asynchronous compute), with a consumer that reads another thread's elements of both.
TWO_QUEUES_ACROSS_THREADS = HEADER + '''@T.prim_func
def pipeline(A0: T.Buffer((2, 6), "float32"), A1: T.Buffer((2, 6), "float32"),
             C: T.Buffer((2, 6), "float32")):
    for tx in T.thread_binding(2, thread="threadIdx.x"):
        for i in T.serial(0, 6, annotations={"software_pipeline_stage": [0, 2, 2, 3],
                                             "software_pipeline_order": [3, 0, 1, 2],
                                             "software_pipeline_async_stages": [0, 2]}):
            with T.block("body"):
                S0 = T.alloc_buffer((2, 1), "float32", scope="shared")
                S1 = T.alloc_buffer((2, 1), "float32", scope="shared")
                R1 = T.alloc_buffer((2, 1), "float32", scope="shared")
                S0[tx, 0] = A0[tx, i]
                S1[tx, 0] = A1[tx, i]
                R1[tx, 0] = S1[tx, 0] * T.float32(3)
                C[tx, i] = S0[(tx + 1) % 2, 0] + R1[(tx + 1) % 2, 0] + T.float32(1)
'''


# Seed 002's Q tile: copied asynchronously before the pipelined loop, read in every
# iteration (with another thread's elements); QUERY_COPY is that copy's text.
QUERY_COPY = '''            with T.attr(0, "async_scope", 1):
                Q_shared[tx] = Q[tx]
'''
COPY_BEFORE_THE_LOOP = HEADER + '''@T.prim_func
def before(Q: T.Buffer((32,), "float32"), K: T.Buffer((6, 32), "float32"),
           C: T.Buffer((6, 32), "float32")):
    for tx in T.thread_binding(32, thread="threadIdx.x"):
        with T.block("root"):
            Q_shared = T.alloc_buffer((32,), "float32", scope="shared")
            K_shared = T.alloc_buffer((32,), "float32", scope="shared")
''' + QUERY_COPY + '''            for k in T.serial(6, annotations={"software_pipeline_stage": [0, 1],
                                              "software_pipeline_order": [0, 1],
                                              "software_pipeline_async_stages": [0]}):
                K_shared[tx] = K[k, tx]
                C[k, tx] = Q_shared[(tx + 1) % 32] * K_shared[(tx + 3) % 32]
'''

@dataclass(frozen=True)
class Statement:
    """One statement of the loop body: ``target`` written from ``sources``."""

    kind: str            # "copy", "compute" or "consume"
    target: str
    sources: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class PipelineProgram:
    source: str
    dims: dict = field(default_factory=dict)
    threads: int = 1
    extent: int = 1
    stages: tuple[int, ...] = ()
    orders: tuple[int, ...] = ()
    async_stages: tuple[int, ...] = ()
    shares_across_threads: bool = False
    copies_before_the_loop: bool = False  # an async copy before the loop (the prelude)

    def describe(self) -> str:
        return (f"threads={self.threads} extent={self.extent} stages={list(self.stages)} "
                f"orders={list(self.orders)} async={list(self.async_stages)} "
                f"dims={self.dims}\n{self.source}")


def _body(num_inputs: int, computes: tuple[bool, ...], shift: int, threads: int,
          outer: bool, prelude: bool) -> list[Statement]:
    """Copies, optional intermediate computes, and the consumer (which also reads the
    tile copied before the loop, if there is one)."""
    lead = "j, " if outer else ""
    statements = []
    finals = []
    for k in range(num_inputs):
        statements.append(Statement("copy", f"S{k}", (), f"S{k}[tx, 0] = A{k}[{lead}tx, i]"))
        final = f"S{k}"
        if computes[k]:
            statements.append(Statement(
                "compute", f"R{k}", (f"S{k}",),
                f"R{k}[tx, 0] = S{k}[tx, 0] * T.float32({k + 2})"))
            final = f"R{k}"
        finals.append(final)
    other = f"(tx + {shift}) % {threads}" if shift else "tx"
    terms = " + ".join(f"{name}[{other}, 0]" for name in finals + (["P"] if prelude else []))
    statements.append(Statement("consume", "C", tuple(finals),
                                f"C[{lead}tx, i] = {terms} + T.float32(1)"))
    return statements


@st.composite
def _stages_and_orders(draw, statements: list[Statement]):
    """Stages that never put a statement before what it reads; orders that keep a
    producer before its consumer within a stage; async stages among those holding only
    shared-memory producers."""
    position = {statement.target: index for index, statement in enumerate(statements)}
    stages: list[int] = []
    for statement in statements:
        low = max([stages[position[source]] for source in statement.sources], default=0)
        if statement.kind == "consume":
            low = max(low, 1)
        stages.append(draw(st.integers(low, MAX_STAGE)) if low < MAX_STAGE else MAX_STAGE)
    keys = draw(st.lists(st.integers(0, 100), min_size=len(statements),
                         max_size=len(statements)))
    remaining = list(range(len(statements)))
    ordered: list[int] = []
    while remaining:
        ready = [index for index in remaining if all(
            position[source] in ordered or stages[position[source]] != stages[index]
            for source in statements[index].sources)]
        chosen = min(ready, key=lambda index: (keys[index], index))
        ordered.append(chosen)
        remaining.remove(chosen)
    orders = [0] * len(statements)
    for rank, index in enumerate(ordered):
        orders[index] = rank
    candidates = sorted({stage for stage, statement in zip(stages, statements)
                         if all(other.kind != "consume" for other_stage, other in
                                zip(stages, statements) if other_stage == stage)})
    async_stages = draw(st.lists(st.sampled_from(candidates), unique=True)) \
        if candidates else []
    return tuple(stages), tuple(orders), tuple(sorted(async_stages))


@st.composite
def programs(draw, max_threads: int = 4, max_extent: int = 6) -> PipelineProgram:
    threads = draw(st.sampled_from([t for t in (1, 2, 4) if t <= max_threads]))
    num_inputs = draw(st.integers(1, 2))
    computes = tuple(draw(st.booleans()) for _ in range(num_inputs))
    shift = draw(st.integers(0, threads - 1)) if threads > 1 else 0
    outer = draw(st.booleans())
    start = draw(st.sampled_from([0, 0, 1, 3]))
    extent = draw(st.integers(1, max_extent))
    symbolic = draw(st.booleans())
    prelude = draw(st.booleans())
    statements = _body(num_inputs, computes, shift, threads, outer, prelude)
    stages, orders, async_stages = draw(_stages_and_orders(statements))
    return build_program(threads, num_inputs, computes, shift, outer, start, extent, symbolic,
                         prelude, stages, orders, async_stages)


def build_program(threads: int, num_inputs: int, computes: tuple[bool, ...], shift: int,
                  outer: bool, start: int, extent: int, symbolic: bool, prelude: bool,
                  stages: tuple[int, ...], orders: tuple[int, ...],
                  async_stages: tuple[int, ...]) -> PipelineProgram:
    """The program :func:`programs` draws with these choices (see the module docstring)."""
    statements = _body(num_inputs, computes, shift, threads, outer, prelude)
    size = "n" if symbolic else str(extent)
    length = f"{start} + n" if symbolic else str(start + extent)
    lead_shape = "2, " if outer else ""
    buffers = [f"A{k}" for k in range(num_inputs)] + ["C"]
    shapes = {name: f"({lead_shape}{threads}, {length})" for name in buffers}
    if prelude:
        buffers.append("Q")
        shapes["Q"] = f"({threads},)"
    lines = ["@T.prim_func"]
    if symbolic:
        lines.append(f"def pipeline({', '.join(name.lower() + ': T.handle' for name in buffers)}):")
        lines.append("    n = T.int32()")
        for name in buffers:
            lines.append(f"    {name} = T.match_buffer({name.lower()}, {shapes[name]}, "
                         "\"float32\")")
    else:
        params = ", ".join(f"{name}: T.Buffer({shapes[name]}, \"float32\")"
                           for name in buffers)
        lines.append(f"def pipeline({params}):")
    lines.append(f"    for tx in T.thread_binding({threads}, thread=\"threadIdx.x\"):")
    indent = "        "
    if outer:
        lines.append(f"{indent}for j in T.serial(2):")
        indent += "    "
    if prelude:
        # An asynchronous copy before the loop (the Q tile of attention): the transform
        # gives it a group of its own and waits for it before its first reader.
        lines.append(f"{indent}with T.block():")
        indent += "    "
        lines.append(f'{indent}P = T.alloc_buffer(({threads}, 1), "float32", scope="shared")')
        lines.append(f'{indent}with T.attr(0, "async_scope", 1):')
        lines.append(f"{indent}    P[tx, 0] = Q[tx]")
    annotations = (f'{{"software_pipeline_stage": {list(stages)}, '
                   f'"software_pipeline_order": {list(orders)}, '
                   f'"software_pipeline_async_stages": {list(async_stages)}}}')
    lines.append(f"{indent}for i in T.serial({start}, {start} + {size}, "
                 f"annotations={annotations}):")
    indent += "    "
    lines.append(f'{indent}with T.block("body"):')
    indent += "    "
    for statement in statements:
        if statement.kind != "consume":
            lines.append(f'{indent}{statement.target} = T.alloc_buffer(({threads}, 1), '
                         f'"float32", scope="shared")')
    for statement in statements:
        lines.append(f"{indent}{statement.text}")
    return PipelineProgram(HEADER + "\n".join(lines) + "\n",
                           {"n": extent} if symbolic else {}, threads, extent, stages, orders,
                           async_stages, shift != 0, prelude)
