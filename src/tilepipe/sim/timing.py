"""A discrete-event timing model of one thread block on one streaming multiprocessor.

The block's threads walk the program in order. Every leaf statement (a loop nest ending
in one store or call) becomes one operation on a hardware unit: global-memory transfers
on the copy engine (the TMA engine for asynchronous ones on machines that have it),
shared-memory traffic, tensor-core or CUDA-core arithmetic. A unit serves one operation
at a time, for ``amount / throughput`` cycles; a global read lands one L2 (or DRAM)
latency after its transfer. Operations are issued in order; the threads stall until a
synchronous one's operands are ready (what it reads has landed, what it writes is no
longer being read or written: a scoreboard over buffers and constant indices), and a
busy unit queues it. So a register double buffer overlaps loads with compute as on
hardware, and a single shared buffer serializes copy and compute. Asynchronous
statements run in the background; a wait blocks the threads until the groups it names
have landed. In the Hopper forms, a ``T.tma_load`` is one asynchronous tile copy whose
bytes complete the phase of its mbarrier; a phase completes once it has its arrival and
its bytes, ``T.mbarrier_wait_parity`` waits for the phase of that parity, and
``T.wgmma_wait_group(n)`` for all but the ``n`` newest wgmma groups. A branch on the
thread index whose one side issues the TMA copies (warp specialization) splits the block
into a producer and a consumer role that run concurrently, each with the threads its
side selects, and meet only at mbarriers; a deadlock among them is reported. A predicate
on the thread index scales the work under it by the share of threads it selects. An
intrinsic call writes its first buffer argument and reads the others (an ``mma`` also
reads its accumulator); a call on ``warp`` buffers is warp-collective, a ``T.wgmma`` is
warpgroup-collective.

Costs come from statement sizes (elements times dtype bytes, two flops per
multiply-accumulate) and a :class:`Machine`: A100 and H100 presets from public
specifications. The result is total cycles, the busy time and utilization of each
unit, and the throughput bound ``max(memory time, compute time)``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from ..arith import variables_of
from ..errors import TilepipeError
from ..ir import (
    REGISTER_SCOPES, SHARED_SCOPES, And, AsyncCommitQueue, AsyncScope, AsyncWaitQueue,
    AttrStmt, BinaryOp, Block, Buffer, BufferLoad, BufferRegion, BufferStore, Call, Cast,
    Evaluate, FloatImm, For, ForKind, IRVisitor, IfThenElse, IntImm, Mul, Not, Or, PrimFunc,
    Select, SeqStmt, Stmt, Var, bind_params, dtype_bytes, free_size_vars, post_order_visit,
)
from ..ir import expr as ir_expr


class ModelError(TilepipeError):
    """A program the timing model cannot cost, such as one with an unbound size."""


# Machines ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Machine:
    """A GPU described by its public specifications; per-SM rates are derived.

    Global reads are served either by the L2 cache (tiles that other blocks also read,
    as in a GEMM: the default) or by DRAM (data streamed once); each SM gets its share
    of that level's bandwidth. The latencies (cycles from issue to arrival) are
    approximate figures from published microbenchmarks; the rest are datasheet numbers.
    """

    name: str
    arch: str                      # the CUDA target: sm_80, sm_90a
    sm_clock_ghz: float
    num_sms: int
    dram_gb_per_second: float
    l2_bytes_per_clock: float      # the whole L2's read bandwidth
    tensor_tflops: float           # dense fp16/bf16 with fp32 accumulation
    fp32_tflops: float
    shared_bytes_per_cycle: float  # per SM
    shared_memory_per_block: int   # bytes a block may allocate (opt-in maximum)
    dram_latency: int              # cycles
    l2_latency: int                # cycles
    has_tma: bool
    issue_cycles: int = 4          # cycles the threads spend issuing one statement
    barrier_cycles: int = 20

    def global_path(self, memory: str) -> tuple[float, int]:
        """Bytes per SM clock and latency of global reads served by ``memory``."""
        if memory == "l2":
            return self.l2_bytes_per_clock / self.num_sms, self.l2_latency
        if memory == "dram":
            return (self.dram_gb_per_second / (self.num_sms * self.sm_clock_ghz),
                    self.dram_latency)
        raise ModelError(f"unknown memory level '{memory}': global reads come from 'l2' or "
                         "'dram'")

    @property
    def tensor_flops_per_cycle(self) -> float:
        return self.tensor_tflops * 1e3 / (self.num_sms * self.sm_clock_ghz)

    @property
    def fp32_flops_per_cycle(self) -> float:
        return self.fp32_tflops * 1e3 / (self.num_sms * self.sm_clock_ghz)


A100 = Machine(
    name="A100", arch="sm_80", sm_clock_ghz=1.41, num_sms=108, dram_gb_per_second=2039.0,
    l2_bytes_per_clock=5120.0, tensor_tflops=312.0, fp32_tflops=19.5,
    shared_bytes_per_cycle=128.0, shared_memory_per_block=163 * 1024, dram_latency=500,
    l2_latency=200, has_tma=False,
)
H100 = Machine(
    name="H100", arch="sm_90a", sm_clock_ghz=1.83, num_sms=132, dram_gb_per_second=3350.0,
    l2_bytes_per_clock=5120.0, tensor_tflops=989.4, fp32_tflops=67.0,
    shared_bytes_per_cycle=128.0, shared_memory_per_block=227 * 1024, dram_latency=550,
    l2_latency=200, has_tma=True,
)
MACHINES = {"A100": A100, "H100": H100}


def machine_named(name: str | Machine) -> Machine:
    """The preset called ``name`` (case-insensitive), or ``name`` itself if a Machine."""
    if isinstance(name, Machine):
        return name
    for key, machine in MACHINES.items():
        if key.lower() == name.lower():
            return machine
    raise ModelError(f"unknown machine '{name}': the presets are {', '.join(MACHINES)}")


# Results -----------------------------------------------------------------------------
UNITS = ("threads", "producer", "consumer", "copy", "tma", "shared", "tensor", "alu")
"""Timeline lanes: the issuing threads (the producer and consumer roles of a
warp-specialized program apart), then the units that do the work."""


@dataclass(frozen=True)
class Interval:
    """What one unit did from ``start`` to ``end`` (cycles).

    ``kind`` is ``transfer``, ``flight`` (a global read travelling back after its
    transfer), ``shared``, ``compute``, ``wait``, ``issue`` or ``barrier``;
    ``iteration`` counts the earlier runs of the same work (same unit and label), so a
    tile's copy and its compute carry the tile's number in a pipelined loop too;
    ``phase`` is ``prologue``, ``body`` or ``epilogue`` relative to the main loop.
    """

    unit: str
    start: float
    end: float
    kind: str
    label: str
    iteration: int | None
    phase: str
    asynchronous: bool = False


@dataclass
class TimingReport:
    """Cycles of one thread block, per-unit busy time, and the throughput bound."""

    func_name: str
    machine: Machine
    memory: str
    total_cycles: float
    busy: dict[str, float]
    memory_cycles: float
    compute_cycles: float
    global_bytes: float
    flops: float
    intervals: list[Interval] = field(default_factory=list)
    body_start: float | None = None
    body_end: float | None = None
    iteration_starts: list[float] = field(default_factory=list)  # of the main loop

    @property
    def bound_cycles(self) -> float:
        """``max(memory time, compute time)``: no schedule of this work is faster."""
        return max(self.memory_cycles, self.compute_cycles)

    @property
    def efficiency(self) -> float:
        """Bound over total: 1.0 means the block runs at the bound."""
        return self.bound_cycles / self.total_cycles if self.total_cycles else 1.0

    def utilization(self, unit: str) -> float:
        return self.busy.get(unit, 0.0) / self.total_cycles if self.total_cycles else 0.0

    def format(self) -> str:
        """A few lines: cycles, bound, and the utilization of each busy unit."""
        lines = [
            f"{self.func_name} on {self.machine.name} (global reads from "
            f"{self.memory.upper()}): {self.total_cycles:,.0f} cycles "
            f"({self.total_cycles / (self.machine.sm_clock_ghz * 1e3):.2f} us per block)",
            f"bound max(memory {self.memory_cycles:,.0f}, compute {self.compute_cycles:,.0f})"
            f" = {self.bound_cycles:,.0f} cycles; the block runs at "
            f"{100 * self.efficiency:.1f}% of it",
        ]
        used = [unit for unit in UNITS if self.busy.get(unit)]
        lines.append("utilization: " + ", ".join(
            f"{unit} {100 * self.utilization(unit):.0f}%" for unit in used))
        return "\n".join(lines)


# Evaluation of control expressions ---------------------------------------------------
class _Unknown(Exception):
    """An expression depends on something the model does not track."""


_INT_OPERATORS = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b, "FloorDiv": lambda a, b: a // b,
    "FloorMod": lambda a, b: a % b, "Min": min, "Max": max,
    "EQ": lambda a, b: a == b, "NE": lambda a, b: a != b, "LT": lambda a, b: a < b,
    "LE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GE": lambda a, b: a >= b,
}


def _evaluate(expr: Any, env: Mapping[Var, int]) -> Any:
    """The value of a control expression (loop bounds, predicates, wait counts)."""
    if isinstance(expr, (int, float)):
        return expr
    if isinstance(expr, (IntImm, FloatImm)):
        return expr.value
    if isinstance(expr, Var):
        if expr not in env:
            raise _Unknown(expr.name)
        return env[expr]
    if isinstance(expr, And):
        return bool(_evaluate(expr.a, env)) and bool(_evaluate(expr.b, env))
    if isinstance(expr, Or):
        return bool(_evaluate(expr.a, env)) or bool(_evaluate(expr.b, env))
    if isinstance(expr, BinaryOp):
        operator = _INT_OPERATORS[type(expr).__name__]
        return operator(_evaluate(expr.a, env), _evaluate(expr.b, env))
    if isinstance(expr, Not):
        return not _evaluate(expr.a, env)
    if isinstance(expr, Select):
        branch = expr.true_value if _evaluate(expr.condition, env) else expr.false_value
        return _evaluate(branch, env)
    if isinstance(expr, Cast):
        value = _evaluate(expr.value, env)
        return float(value) if ir_expr.is_float_dtype(expr.dtype) else int(value)
    raise _Unknown(type(expr).__name__)


def _holds(condition: Any, env: Mapping[Var, int]) -> bool:
    """Whether a predicate holds; one the model cannot evaluate counts as true."""
    if condition is None:
        return True
    try:
        return bool(_evaluate(condition, env))
    except _Unknown:
        return True


# Operations --------------------------------------------------------------------------

WARP_SIZE = 32
_TENSOR_DTYPES = ("float16", "bfloat16", "int8", "uint8")
_BARRIERS = ("tvm_storage_sync", "syncthreads", "barrier", "named_barrier_sync")
# Calls that synchronize the threads with each other or with the asynchronous units.
_SYNCHRONIZATION = _BARRIERS + (
    "mbarrier_init", "mbarrier_arrive", "mbarrier_arrive_expect_tx", "mbarrier_wait_parity",
    "wgmma_commit_group", "wgmma_wait_group")
# Calls that only order work or configure the threads: no cost here.
_ORDERING_PREFIXES = ("wgmma_fence", "fence", "setmaxnreg")
WARPGROUP_SIZE = 128

_Key = tuple  # (buffer, index value or None per dimension)


@dataclass(frozen=True)
class _Operation:
    """One leaf statement's work: which resource, how much, and what it touches."""

    unit: str          # copy, shared, tensor or alu
    amount: float      # bytes for copy/shared, flops for tensor/alu
    global_read: bool  # a global read lands one memory latency after its transfer
    reads: tuple[_Key, ...]
    writes: tuple[_Key, ...]
    label: str
    completes_on: _Key | None = None  # the mbarrier slot an asynchronous TMA copy signals


class _Loads(IRVisitor):
    def __init__(self):
        self.loads: list[BufferLoad] = []
        self.regions: list[BufferRegion] = []

    def visit_buffer_load(self, node: BufferLoad) -> None:
        self.loads.append(node)
        super().visit_buffer_load(node)

    def visit_buffer_region(self, node: BufferRegion) -> None:
        self.regions.append(node)
        super().visit_buffer_region(node)

    def visit_buffer(self, node: Buffer) -> None:
        self.regions.append(BufferRegion.full(node))


def _multiplied_dtypes(expr: Any) -> list[str]:
    """Dtypes of the buffer operands of the products in ``expr``."""
    found: list[str] = []

    def operand_dtype(node: Any) -> str | None:
        while isinstance(node, Cast):
            node = node.value
        return node.dtype if isinstance(node, BufferLoad) else None

    class _Products(IRVisitor):
        def visit_mul(self, node: Mul) -> None:
            dtypes = [operand_dtype(node.a), operand_dtype(node.b)]
            if all(dtypes):
                found.extend(dtypes)
            super().visit_binary_op(node)

    _Products().visit(expr)
    return found


def _evaluate_or_none(expr: Any, env: Mapping[Var, int]) -> Any:
    try:
        return _evaluate(expr, env)
    except _Unknown:
        return None


def _key(buffer: Buffer, indices: tuple, env: Mapping[Var, int]) -> _Key:
    return (buffer, tuple(_evaluate_or_none(index, env) for index in indices))


def _region_key(region: BufferRegion, env: Mapping[Var, int]) -> _Key:
    values = []
    for range_ in region.region:
        try:
            single = _evaluate(range_.extent, env) == 1
            values.append(_evaluate(range_.min, env) if single else None)
        except _Unknown:
            values.append(None)
    return (region.buffer, tuple(values))


def _keys_conflict(first: _Key, second: _Key) -> bool:
    if first[0] is not second[0] or len(first[1]) != len(second[1]):
        return first[0] is second[0]
    return all(a is None or b is None or a == b for a, b in zip(first[1], second[1]))


@dataclass(frozen=True)
class _LeafAccesses:
    """What a leaf statement touches, independent of loop values (computed once)."""

    loads: tuple[BufferLoad, ...]
    regions: tuple[BufferRegion, ...]
    products: tuple[str, ...]


def _leaf_accesses(leaf: Stmt) -> _LeafAccesses:
    collector = _Loads()
    if isinstance(leaf, BufferStore):
        collector.visit(leaf.value)
        for index in leaf.indices:
            collector.visit(index)
        products = tuple(_multiplied_dtypes(leaf.value))
    else:
        collector.visit(leaf.value)
        products = ()
    return _LeafAccesses(tuple(collector.loads), tuple(collector.regions), products)


def _classify(leaf: Stmt, accesses: _LeafAccesses, elements: float,
              env: Mapping[Var, int]) -> _Operation:
    """The operation a leaf statement performs ``elements`` times."""
    if isinstance(leaf, BufferStore):
        destination = leaf.buffer
        writes = (_key(destination, leaf.indices, env),)
        reads = tuple(_key(load.buffer, load.indices, env) for load in accesses.loads)
        sources = [load.buffer for load in accesses.loads]
        label = destination.name
        if accesses.products:
            unit = ("tensor" if all(d in _TENSOR_DTYPES for d in accesses.products)
                    else "alu")
            return _Operation(unit, 2 * elements, False, reads, writes, label)
    else:
        call = leaf.value
        regions = accesses.regions
        keys = tuple(_region_key(region, env) for region in regions)
        label = call.op if isinstance(call, Call) else "evaluate"
        if not regions:
            return _Operation("alu", elements, False, (), (), label)
        sizes = [_region_elements(region, env) for region in regions]
        if label == "tma_load" and len(call.args) >= 4:
            # One thread issues the whole tile; it lands on mbarrier args[2][args[3]].
            barrier = (call.args[2], (_evaluate_or_none(call.args[3], env),))
            moved = regions[1].buffer
            return _Operation("copy", sizes[0] * dtype_bytes(moved.dtype), True, keys[1:2],
                              keys[:1], label, barrier)
        if label == "wgmma" and len(sizes) >= 3:
            # Warpgroup-collective; the accumulator region is one thread's registers.
            groups = elements / WARPGROUP_SIZE
            products = sizes[0] * WARPGROUP_SIZE * sizes[1] * sizes[2]
            return _Operation("tensor", 2 * math.sqrt(products) * groups, False, keys,
                              keys[:1], label)
        if any(region.buffer.scope == "warp" for region in regions):
            elements /= WARP_SIZE  # a warp-collective call: once per warp, not per thread
        if isinstance(call, Call) and ("mma" in call.op or "gemm" in call.op) and len(sizes) >= 3:
            flops = 2 * math.sqrt(sizes[0] * sizes[1] * sizes[2]) * elements
            return _Operation("tensor", flops, False, keys, keys[:1], label)
        destination = regions[0].buffer
        sources = [region.buffer for region in regions[1:]]
        elements *= sizes[0]
        writes, reads = keys[:1], keys[1:]
    global_sources = [buffer for buffer in sources if buffer.scope == "global"]
    if global_sources or destination.scope == "global":
        moved = global_sources[0] if global_sources else destination
        return _Operation(
            "copy", elements * dtype_bytes(moved.dtype), bool(global_sources), reads, writes,
            label)
    if destination.scope in SHARED_SCOPES or any(b.scope in SHARED_SCOPES for b in sources):
        return _Operation("shared", elements * dtype_bytes(destination.dtype), False, reads,
                          writes, label)
    return _Operation("alu", elements, False, reads, writes, label)


def _region_elements(region: BufferRegion, env: Mapping[Var, int]) -> float:
    total = 1.0
    for range_ in region.region:
        try:
            total *= _evaluate(range_.extent, env)
        except _Unknown:
            return 1.0
    return total


# Program structure -------------------------------------------------------------------
def _contains_async(stmt: Stmt) -> bool:
    """Whether ``stmt`` issues or waits for asynchronous work (queues, TMA copies and
    their mbarriers)."""
    found = False

    class _Finder(IRVisitor):
        def visit_async_scope(self, node):
            nonlocal found
            found = True

        visit_async_commit_queue = visit_async_scope
        visit_async_wait_queue = visit_async_scope

        def visit_call(self, node: Call) -> None:
            nonlocal found
            found = found or node.op in ("tma_load", "mbarrier_wait_parity")

    _Finder().visit(stmt)
    return found


def _issues_tma(stmt: Stmt) -> bool:
    """Whether ``stmt`` issues TMA copies (the producer side of warp specialization)."""
    found = []
    post_order_visit(stmt, lambda node: found.append(node)
                     if isinstance(node, Call) and node.op == "tma_load" else None)
    return bool(found)


def _leaf_statement(stmt: Stmt) -> tuple[list[For], Stmt] | None:
    """The loops and the single store or call of a perfect loop nest, else None."""
    loops: list[For] = []
    while True:
        if isinstance(stmt, For):
            loops.append(stmt)
            stmt = stmt.body
        elif isinstance(stmt, Block):
            stmt = stmt.body
        elif isinstance(stmt, AttrStmt):
            stmt = stmt.body
        elif isinstance(stmt, IfThenElse) and stmt.else_case is None:
            stmt = stmt.then_case
        elif isinstance(stmt, SeqStmt) and len(stmt.stmts) == 1:
            stmt = stmt.stmts[0]
        elif isinstance(stmt, (BufferStore, Evaluate)):
            return loops, stmt
        else:
            return None


def _main_loop(body: Stmt) -> For | None:
    """The steady-state loop: the first serial loop holding asynchronous statements, or
    (in a program not yet pipelined) the longest serial loop that is not a leaf nest."""
    serial: list[For] = []

    class _Loops(IRVisitor):
        def visit_for(self, node: For) -> None:
            if node.kind == ForKind.SERIAL and _leaf_statement(node) is None:
                serial.append(node)
            super().visit_for(node)

    _Loops().visit(body)
    for loop in serial:
        if _contains_async(loop.body):
            return loop
    extents = [loop.extent.value if isinstance(loop.extent, IntImm) else 0 for loop in serial]
    return serial[extents.index(max(extents))] if serial else None


# The model ---------------------------------------------------------------------------
@dataclass
class _Group:
    completion: float = 0.0


@dataclass
class _Slot:
    """One mbarrier: its current phase's arrival and transaction bytes, and when each
    completed phase completed. A role is one group of threads in lockstep, so one
    arrival of a role stands for the arrivals of all its threads."""

    arrived: bool = False
    arrival: float = 0.0
    pending_bytes: float = 0.0
    landing: float = 0.0
    completions: list[float] = field(default_factory=list)


@dataclass
class _Role:
    """Threads that walk the program together: the whole block, or one side of a
    branch that splits it (a producer warpgroup and its consumers)."""

    lane: str
    threads: float
    thread_loops: list[For]
    predicates: list[Any] = field(default_factory=list)  # on the thread index, in force
    now: float = 0.0
    async_depth: int = 0
    open_groups: list[_Group] = field(default_factory=list)
    queues: dict[int, list[_Group]] = field(default_factory=dict)
    wgmma_open: float = 0.0  # when the wgmma issued since the last commit finish
    wgmma_groups: list[float] = field(default_factory=list)  # when committed ones finish
    steps: Iterator | None = None
    waiting_for: _Key | None = None  # the mbarrier whose next phase it waits for
    children: list["_Role"] | None = None  # the roles it forked, until they finish
    done: bool = False

    @property
    def runnable(self) -> bool:
        return not self.done and self.waiting_for is None and self.children is None


@dataclass(frozen=True)
class _Blocked:
    """The running role waits for the next phase of mbarrier ``key`` to complete."""

    key: _Key


@dataclass(frozen=True)
class _Fork:
    """The running role splits into concurrent roles ``(lane, threads, statement)``;
    it goes on when they have all finished."""

    branches: tuple[tuple[str, float, Stmt, Any], ...]  # with the branch's predicate
    env: dict


class _Model:
    """Walks one thread block through the program and schedules its operations.

    The walk of each role is a generator that yields after every operation and where it
    must wait for another role (an mbarrier phase); :meth:`simulate` always advances the
    runnable role that is earliest in time, so the units serve the roles' work in time
    order."""

    def __init__(self, func: PrimFunc, machine: Machine, memory: str):
        self.machine = machine
        self.global_bytes_per_cycle, self.global_latency = machine.global_path(memory)
        self.role = _Role("threads", 1.0, [])
        self.free = {"global": 0.0, "shared": 0.0, "tensor": 0.0, "alu": 0.0}
        self.ready: dict[_Key, float] = {}  # landing time of each synchronous write
        self.read_done: dict[_Key, float] = {}  # when the last read of each key ends
        self.finish = 0.0
        self.intervals: list[Interval] = []
        self.busy = {unit: 0.0 for unit in UNITS}
        self.global_bytes = 0.0
        self.flops = 0.0
        self.tensor_flops = 0.0
        self.alu_flops = 0.0
        main_loop = _main_loop(func.body)
        self.main_loops = {main_loop} if main_loop is not None else set()
        self.running_main_loops = 0
        self.phase = "prologue" if main_loop is not None else "body"
        self.body_start: float | None = None
        self.body_end: float | None = None
        self.iteration_starts: list[float] = []
        self.occurrences: dict[tuple[str, str], int] = {}
        self.leaves: dict[Stmt, tuple[list[For], Stmt] | None] = {}
        self.accesses: dict[Stmt, _LeafAccesses] = {}
        self.slots: dict[_Key, _Slot] = {}
        self.roles: list[_Role] = [self.role]
        self.thread_counts: dict[tuple, int] = {}

    @property
    def now(self) -> float:
        return self.role.now

    @now.setter
    def now(self, time: float) -> None:
        self.role.now = time

    # Scheduling -----------------------------------------------------------------------
    def simulate(self, stmt: Stmt) -> None:
        """Run ``stmt`` as the whole block, and concurrently every role it forks."""
        root = self.role
        root.steps = self.run(stmt, {}, 1.0)
        while not root.done:
            runnable = [role for role in self.roles if role.runnable]
            if not runnable:
                raise ModelError(self._deadlock())
            self.role = role = min(runnable, key=lambda role: role.now)
            try:
                request = next(role.steps)
            except StopIteration:
                role.done = True
                self._join()
                continue
            if isinstance(request, _Blocked):
                role.waiting_for = request.key
            elif isinstance(request, _Fork):
                role.children = []
                for lane, threads, branch, predicate in request.branches:
                    child = _Role(lane, threads, list(role.thread_loops),
                                  role.predicates + [predicate], now=role.now)
                    child.steps = self._run_role(child, branch, request.env)
                    role.children.append(child)
                self.roles += role.children
        self.role = root

    def _run_role(self, role: _Role, stmt: Stmt, env: dict) -> Iterator:
        main_loop = _main_loop(stmt)
        if main_loop is not None:
            self.main_loops.add(main_loop)
        yield from self.run(stmt, env, role.threads)

    def _join(self) -> None:
        """A role that forked goes on once its children are done, at the latest's time."""
        for role in self.roles:
            if role.children is not None and all(child.done for child in role.children):
                role.now = max([role.now] + [child.now for child in role.children])
                role.children = None

    def _deadlock(self) -> str:
        waits = [f"{role.lane} on {role.waiting_for[0].name}[{role.waiting_for[1][0]}]"
                 for role in self.roles if role.waiting_for is not None]
        return ("the program deadlocks in the timing model: every role waits for an "
                f"mbarrier phase that nothing completes ({', '.join(waits)})")

    # Bookkeeping ----------------------------------------------------------------------
    def _record(self, unit: str, start: float, end: float, kind: str, label: str,
                asynchronous: bool = False) -> None:
        if end <= start:
            return
        if kind == "flight":
            iteration = self.occurrences.get((unit, label), 1) - 1
        elif kind in ("transfer", "shared", "compute"):
            iteration = self.occurrences.get((unit, label), 0)
            self.occurrences[(unit, label)] = iteration + 1
        else:
            iteration = None
        self.intervals.append(
            Interval(unit, start, end, kind, label, iteration, self.phase, asynchronous))
        if kind not in ("flight", "wait"):
            self.busy[unit] += end - start

    @staticmethod
    def _latest(keys: tuple[_Key, ...], times: dict[_Key, float]) -> float:
        return max((time for key in keys for other, time in times.items()
                    if _keys_conflict(key, other)), default=0.0)

    def _operands_ready(self, operation: _Operation) -> float:
        """The scoreboard: an operation reads what synchronous writes have landed (async
        writes are ordered by the program's waits instead) and overwrites nothing still
        being written or read. An accumulator (read and written by the operation) is
        chained by its unit instead, as tensor cores forward accumulators."""
        accumulated = [key for key in operation.reads if key in operation.writes]
        inputs = tuple(key for key in operation.reads if key not in accumulated)
        outputs = tuple(key for key in operation.writes if key not in accumulated)
        return max(self._latest(inputs, self.ready), self._latest(outputs, self.ready),
                   self._latest(operation.writes, self.read_done))

    # Operations -----------------------------------------------------------------------
    def operate(self, loops: list[For], leaf: Stmt, env: dict, threads: float) -> Iterator:
        elements = threads
        for loop in loops:
            try:
                elements *= max(_evaluate(loop.extent, env), 0)
            except _Unknown as unknown:
                raise ModelError(f"loop extent depends on '{unknown}', which is not bound",
                                 loop.span) from None
        call = leaf.value if isinstance(leaf, Evaluate) else None
        if isinstance(call, Call) and call.op in _SYNCHRONIZATION:
            yield from self._synchronize(call, env)
            return
        if isinstance(call, Call) and call.op.startswith(_ORDERING_PREFIXES):
            return
        if leaf not in self.accesses:
            self.accesses[leaf] = _leaf_accesses(leaf)
        operation = _classify(leaf, self.accesses[leaf], elements, env)
        machine = self.machine
        asynchronous = self.role.async_depth > 0 or operation.completes_on is not None
        resource = "global" if operation.unit == "copy" else operation.unit
        if operation.unit == "copy":
            duration = operation.amount / self.global_bytes_per_cycle
            self.global_bytes += operation.amount
            lane = "tma" if asynchronous and machine.has_tma else "copy"
        elif operation.unit == "shared":
            duration = operation.amount / machine.shared_bytes_per_cycle
            lane = "shared"
        elif operation.unit == "tensor":
            duration = operation.amount / machine.tensor_flops_per_cycle
            self.flops += operation.amount
            self.tensor_flops += operation.amount
            lane = "tensor"
        else:
            duration = operation.amount / machine.fp32_flops_per_cycle
            self.flops += operation.amount
            self.alu_flops += operation.amount
            lane = "alu"
        issue_start = self.now
        self.now += machine.issue_cycles
        self._record(self.role.lane, issue_start, self.now, "issue", operation.label,
                     asynchronous)
        ready = self._operands_ready(operation)
        if not asynchronous:
            # In-order issue: the threads stall until the operands are ready; a busy
            # unit queues the operation without stalling them.
            self._wait_until(ready, f"operands of {operation.label}")
        start = max(self.now, self.free[resource], ready)
        end = start + duration
        self.free[resource] = end
        landing = end + (self.global_latency if operation.global_read else 0)
        kind = {"copy": "transfer", "shared": "shared"}.get(operation.unit, "compute")
        self._record(lane, start, end, kind, operation.label, asynchronous)
        self._record(lane, end, landing, "flight", operation.label, asynchronous)
        # Registers are read when the operation starts; memory while it runs.
        self.read_done.update(
            (key, start if key[0].scope in REGISTER_SCOPES else end) for key in operation.reads)
        self.finish = max(self.finish, landing)
        if operation.label == "wgmma":
            self.role.wgmma_open = max(self.role.wgmma_open, end)
        if operation.completes_on is not None:
            slot = self._slot(operation.completes_on)
            slot.pending_bytes -= operation.amount
            slot.landing = max(slot.landing, landing)
            self._complete_if_done(operation.completes_on)
        elif asynchronous:
            if self.role.open_groups:
                group = self.role.open_groups[-1]
                group.completion = max(group.completion, landing)
        else:
            self.ready.update((key, landing) for key in operation.writes)
        yield

    def _synchronize(self, call: Call, env: dict) -> Iterator:
        """Carry out a synchronization call (see ``_SYNCHRONIZATION``).

        A block or named barrier costs ``barrier_cycles``. An mbarrier phase completes
        at its arrival once the bytes it expects have landed; ``mbarrier_wait_parity``
        waits for the phase of that parity as on hardware, for as long as another role
        has yet to complete it. ``wgmma_wait_group(n)`` waits for all but the ``n``
        newest committed wgmma groups."""
        op = call.op
        if op in _BARRIERS:
            start = self.now
            self.now += self.machine.barrier_cycles
            self._record(self.role.lane, start, self.now, "barrier", "barrier")
            return
        role = self.role
        if op == "wgmma_commit_group":
            role.wgmma_groups.append(role.wgmma_open)
            role.wgmma_open = 0.0
            return
        if op == "wgmma_wait_group":
            keep = int(_evaluate(call.args[0], env)) if call.args else 0
            finished = role.wgmma_groups[:len(role.wgmma_groups) - keep] if keep else \
                role.wgmma_groups
            self._wait_until(max(finished, default=self.now), "wgmma")
            role.wgmma_groups = role.wgmma_groups[len(finished):]
            return
        key = (call.args[0], (_evaluate_or_none(call.args[1], env),))
        if op == "mbarrier_init":
            self.slots[key] = _Slot()
        elif op == "mbarrier_wait_parity":
            parity = _evaluate_or_none(call.args[2], env)
            slot = self._slot(key)
            while parity is not None and len(slot.completions) % 2 == parity:
                yield _Blocked(key)
            passes = slot.completions[-1] if slot.completions else self.now
            self._wait_until(passes, f"mbarrier {call.args[0].name}")
        else:  # an arrival, announcing transaction bytes or not
            slot = self._slot(key)
            if op == "mbarrier_arrive_expect_tx":
                slot.pending_bytes += _evaluate_or_none(call.args[2], env) or 0
            slot.arrived = True
            slot.arrival = max(slot.arrival, self.now)
            self._complete_if_done(key)

    def _slot(self, key: _Key) -> _Slot:
        return self.slots.setdefault(key, _Slot())

    def _complete_if_done(self, key: _Key) -> None:
        """Complete the mbarrier's phase if it has its arrival and its bytes; the roles
        waiting for it may go on."""
        slot = self.slots[key]
        if not slot.arrived or slot.pending_bytes > 0:
            return
        previous = slot.completions[-1] if slot.completions else 0.0
        slot.completions.append(max(slot.arrival, slot.landing, previous))
        slot.arrived, slot.arrival, slot.pending_bytes, slot.landing = False, 0.0, 0.0, 0.0
        for role in self.roles:
            if role.waiting_for == key:
                role.waiting_for = None

    def _wait_until(self, time: float, label: str) -> None:
        if time > self.now:
            self._record(self.role.lane, self.now, time, "wait", label)
            self.now = time

    # Statements -----------------------------------------------------------------------
    def run(self, stmt: Stmt, env: dict, threads: float) -> Iterator:
        if stmt not in self.leaves:  # statements repeat every iteration: classify once
            leaf = _leaf_statement(stmt)
            self.leaves[stmt] = leaf if leaf is not None and not _contains_async(stmt) else None
        leaf = self.leaves[stmt]
        if leaf is not None:
            yield from self._run_leaf(stmt, leaf, env, threads)
            return
        role = self.role
        if isinstance(stmt, SeqStmt):
            for child in stmt.stmts:
                yield from self.run(child, env, threads)
        elif isinstance(stmt, Block):
            if _holds(stmt.predicate, env):
                yield from self.run(stmt.body, env, threads)
        elif isinstance(stmt, IfThenElse):
            known = _evaluate_or_none(stmt.condition, env)
            if known is None and stmt.else_case is not None:
                yield self._fork(stmt, env)
            elif known is None:
                narrowed = self._threads_or_none([stmt.condition], env)
                if narrowed is None:
                    yield from self.run(stmt.then_case, env, threads)
                elif narrowed:
                    role.predicates.append(stmt.condition)
                    yield from self.run(stmt.then_case, env, narrowed)
                    role.predicates.pop()
            elif known:
                yield from self.run(stmt.then_case, env, threads)
            elif stmt.else_case is not None:
                yield from self.run(stmt.else_case, env, threads)
        elif isinstance(stmt, For):
            yield from self._run_loop(stmt, env, threads)
        elif isinstance(stmt, AsyncScope):
            role.async_depth += 1
            yield from self.run(stmt.body, env, threads)
            role.async_depth -= 1
        elif isinstance(stmt, AsyncCommitQueue):
            role.open_groups.append(_Group(completion=self.now))
            yield from self.run(stmt.body, env, threads)
            role.queues.setdefault(stmt.queue, []).append(role.open_groups.pop())
        elif isinstance(stmt, AsyncWaitQueue):
            self._wait_queue(stmt, env)
            yield from self.run(stmt.body, env, threads)
        elif isinstance(stmt, AttrStmt):
            yield from self.run(stmt.body, env, threads)
        elif isinstance(stmt, (BufferStore, Evaluate)):
            yield from self.operate([], stmt, env, threads)

    def _fork(self, stmt: IfThenElse, env: dict) -> _Fork:
        """The roles of a branch on the thread index: the side that issues TMA copies
        is the producer, the other the consumers; each has the threads it selects."""
        producers = [_issues_tma(branch) for branch in (stmt.then_case, stmt.else_case)]
        if producers.count(True) != 1:
            raise ModelError(
                "the timing model runs the two sides of a branch on the thread index "
                "concurrently only where one side issues the TMA copies and the other "
                "consumes them (warp specialization); this branch gives threads other "
                "work, or depends on data", stmt.span)
        branches = []
        for branch, predicate, producer in zip((stmt.then_case, stmt.else_case),
                                               (stmt.condition, Not(stmt.condition)),
                                               producers):
            threads = self._threads_or_none([predicate], env)
            if threads is None:
                raise ModelError("the timing model cannot split the threads on a condition "
                                 "that depends on data", stmt.span)
            if threads:
                branches.append(("producer" if producer else "consumer", threads, branch,
                                 predicate))
        return _Fork(tuple(branches), env)

    def _threads_or_none(self, conditions: list[Any], env: dict) -> int | None:
        """How many of the role's threads satisfy ``conditions`` (on the thread index,
        which the walk leaves unknown) and the predicates in force, counted one by one;
        None where a condition depends on data (it then counts as true for every
        thread). Counts of conditions on the thread index alone are remembered."""
        conditions = tuple(self.role.predicates) + tuple(conditions)
        loops = self.role.thread_loops
        cached = (conditions, tuple(loops))
        if cached in self.thread_counts:
            return self.thread_counts[cached]
        ranges = [range(int(_evaluate(loop.min, env)),
                        int(_evaluate(loop.min, env)) + int(_evaluate(loop.extent, env)))
                  for loop in loops]
        try:
            count = sum(all(_evaluate(condition, {**env, **{
                loop.loop_var: value for loop, value in zip(loops, values)}})
                for condition in conditions) for values in itertools.product(*ranges))
        except _Unknown:
            return None
        thread_vars = {loop.loop_var for loop in loops}
        if all(variables_of(condition) <= thread_vars for condition in conditions):
            self.thread_counts[cached] = count
        return count

    def _run_leaf(self, stmt: Stmt, leaf: tuple[list[For], Stmt], env: dict,
                  threads: float) -> Iterator:
        loops, statement = leaf
        for loop in loops:
            if loop.kind == ForKind.THREAD_BINDING and (loop.thread_tag or "").startswith(
                    "blockIdx"):
                env = {**env, loop.loop_var: _evaluate(loop.min, env)}
        threads = self._leaf_threads(stmt, env, threads)
        if not threads:
            return
        nest = [loop for loop in loops
                if not (loop.thread_tag or "").startswith("blockIdx")]
        yield from self.operate(nest, statement, env, threads)

    def _leaf_threads(self, stmt: Stmt, env: dict, threads: float) -> float:
        """How many of the ``threads`` run a leaf nest, by the predicates around it that
        do not depend on the nest's own loops."""
        unknown = []
        while not isinstance(stmt, (BufferStore, Evaluate)):
            if isinstance(stmt, Block):
                if not _holds(stmt.predicate, env):
                    return 0.0
                stmt = stmt.body
            elif isinstance(stmt, IfThenElse):
                known = _evaluate_or_none(stmt.condition, env)
                if known is None:
                    unknown.append(stmt.condition)
                elif not known:
                    return 0.0
                stmt = stmt.then_case
            elif isinstance(stmt, SeqStmt):
                stmt = stmt.stmts[0]
            else:
                stmt = stmt.body
        if not unknown:
            return threads
        narrowed = self._threads_or_none(unknown, env)
        return threads if narrowed is None else narrowed

    def _run_loop(self, loop: For, env: dict, threads: float) -> Iterator:
        try:
            low = _evaluate(loop.min, env)
            extent = _evaluate(loop.extent, env)
        except _Unknown as unknown:
            raise ModelError(f"loop bound depends on '{unknown}', which is not bound",
                             loop.span) from None
        tag = loop.thread_tag or ""
        role = self.role
        if loop.kind == ForKind.THREAD_BINDING:
            if tag.startswith("threadIdx"):
                # All threads at once: the index stays unknown, the work scales.
                role.thread_loops.append(loop)
                yield from self.run(loop.body, env, threads * extent)
                role.thread_loops.pop()
            else:
                yield from self.run(loop.body, {**env, loop.loop_var: low}, threads)
            return
        is_main = loop in self.main_loops
        if is_main:
            self._enter_main_loop()
        for value in range(low, low + extent):
            if is_main and role.lane != "producer":
                self.iteration_starts.append(self.now)
            yield from self.run(loop.body, {**env, loop.loop_var: value}, threads)
        if is_main:
            self._leave_main_loop()

    def _enter_main_loop(self) -> None:
        self.running_main_loops += 1
        self.phase = "body"
        if self.body_start is None:
            self.body_start = self.now

    def _leave_main_loop(self) -> None:
        """The epilogue starts when no role runs a main loop any more."""
        self.running_main_loops -= 1
        if not self.running_main_loops:
            self.phase = "epilogue"
            self.body_end = self.now

    def _wait_queue(self, stmt: AsyncWaitQueue, env: dict) -> None:
        try:
            keep = int(_evaluate(stmt.in_flight, env))
        except _Unknown as unknown:
            raise ModelError(f"wait count depends on '{unknown}', which is not bound",
                             stmt.span) from None
        queues = self.role.queues
        groups = queues.get(stmt.queue, [])
        completed, pending = (groups[:-keep], groups[-keep:]) if keep > 0 else (groups, [])
        latest = max((group.completion for group in completed), default=self.now)
        self._wait_until(latest, f"wait queue {stmt.queue}")
        queues[stmt.queue] = pending


def estimate(func: PrimFunc, machine: str | Machine = "A100",
             dims: Mapping[str, int] | None = None, memory: str = "l2") -> TimingReport:
    """Model one thread block of ``func`` on ``machine`` and report its cycles.

    ``memory`` is where global reads are served from: ``"l2"`` (the SM's share of the L2
    bandwidth, for tiles other blocks reuse) or ``"dram"`` (its share of DRAM bandwidth,
    for data read once). ``dims`` binds symbolic sizes and scalar parameters by name. Block indices take their
    first value (the model is of one block on one SM); a thread loop scales the work of
    its body, a predicate on thread indices by the share of threads it selects, and a
    predicate on data counts as true for every thread.
    """
    machine = machine_named(machine)
    machine.global_path(memory)
    func = bind_params(func, dict(dims or {}))
    unbound = free_size_vars(func) + list(func.scalar_params)
    if unbound:
        names = ", ".join(var.name for var in unbound)
        raise ModelError(f"the timing model needs every size bound: bind {names} with --dim",
                         func.span)
    model = _Model(func, machine, memory)
    model.simulate(func.body)
    total = max(model.now, model.finish)
    memory_cycles = model.global_bytes / model.global_bytes_per_cycle
    compute = (model.tensor_flops / machine.tensor_flops_per_cycle
               + model.alu_flops / machine.fp32_flops_per_cycle)
    return TimingReport(
        func_name=func.name, machine=machine, memory=memory, total_cycles=total, busy=model.busy,
        memory_cycles=memory_cycles, compute_cycles=compute, global_bytes=model.global_bytes,
        flops=model.flops, intervals=model.intervals, body_start=model.body_start,
        body_end=model.body_end, iteration_starts=model.iteration_starts,
    )


def iter_phases(report: TimingReport) -> Iterator[tuple[str, float, float]]:
    """The prologue, body and epilogue of the main loop as ``(name, start, end)``."""
    if report.body_start is None:
        yield "body", 0.0, report.total_cycles
        return
    end = report.body_end if report.body_end is not None else report.total_cycles
    yield "prologue", 0.0, report.body_start
    yield "body", report.body_start, end
    yield "epilogue", end, report.total_cycles


__all__ = [
    "A100", "H100", "MACHINES", "Interval", "Machine", "ModelError", "TimingReport",
    "UNITS", "estimate", "iter_phases", "machine_named",
]
