"""Count-based synchronization of a scheduled pipeline: where to wait and for how many.

The pipelined loop is replayed slot by slot (see :mod:`.schedule`) for a concrete
extent, from the recorded producer -> consumer dependencies. Every commit group commits
once per slot in which its statements run, so commits are counted exactly: a
statement's *need* on a queue is the number of commits since the newest group instance
it conflicts with. Waits sit right before the first statement that reads asynchronous
data (later needs on the queue with no commit in between, running only where the first
runs, share it); an overwrite gets its own wait only where no earlier wait can protect
it. A wait's count is what DESIGN.md calls exact: the least, over every access from the
wait to the next wait on its queue, of that access's need less the commits since the
wait; the least over the iterations of a loop, per copy of an unrolled section. Nothing
may be left in flight unseen after the loop (drains).

Long loops are replayed shortened: after ``window`` body iterations every body
iteration repeats the same counts, so the shortened loop gives the counts of any longer
one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ...errors import PipelineError
from .schedule import Schedule

PROLOGUE, BODY, EPILOGUE = "prologue", "body", "epilogue"


@dataclass(frozen=True)
class Section:
    """Slots ``[start, start + length)`` of one part of the pipelined loop, in the
    replayed timeline. ``loop`` sections repeat one set of statements; the prologue and
    epilogue are unrolled copies."""

    kind: str
    start: int
    length: int


@dataclass(frozen=True)
class Wait:
    """A wait on ``queue`` before the statement at emission ``position``; ``counts`` has
    one entry per copy of an unrolled section (None where it does not wait) or a single
    entry for a loop or a one-slot section. A ``standalone`` wait is a statement of its
    own, predicated to the copies that wait, since a wait that guards nothing would not
    be exact; any other wait wraps the statement."""

    queue: int
    position: int
    counts: tuple[int | None, ...]
    standalone: bool = False


@dataclass(frozen=True)
class SectionPlan:
    """One section: which statements run in each copy, and the waits."""

    section: Section
    runs: tuple[tuple[bool, ...], ...]  # per emission position, per copy
    waits: tuple[Wait, ...]


@dataclass(frozen=True)
class SyncPlan:
    """The synchronization of a pipeline for one extent (see
    :func:`plan_for_every_extent` for a symbolic one)."""

    sections: tuple[SectionPlan, ...]
    drains: tuple[tuple[int, int], ...]  # (queue, in-flight count) after the loop


def steady_window(schedule: Schedule) -> int:
    """Body iterations the replay needs to see both the start and the steady state."""
    return 2 * (schedule.horizon + schedule.max_stage + 1)


def sections_for(schedule: Schedule, extent: int, prologue_length: int) -> list[Section]:
    """Prologue ``[0, P)``, body ``[P, n)``, epilogue ``[max(n, P), n + S)``."""
    stages = schedule.max_stage
    parts = [Section(PROLOGUE, 0, prologue_length)]
    if extent > prologue_length:
        parts.append(Section(BODY, prologue_length, extent - prologue_length))
    epilogue_start = max(extent, prologue_length)
    parts.append(Section(EPILOGUE, epilogue_start, extent + stages - epilogue_start))
    return [part for part in parts if part.length > 0]


class _Replay:
    """The replayed timeline: which statements run, and, for each instance of a
    statement that may have to wait (an *event*), the commit count of every queue before
    it and its needs (per queue, the commits since the newest group it conflicts with).
    Other instances only commit."""

    def __init__(self, schedule: Schedule, extent: int, sections: Sequence[Section]):
        self.schedule = schedule
        self.extent = extent
        self.last_member = {group.members[-1]: index
                            for index, group in enumerate(schedule.groups)}
        self.counter = {queue: 0 for queue in schedule.queues.values()}
        self.marks: dict[tuple[int, int], int] = {}
        self.preloop_needs: dict[int, list[tuple[int, int, str]]] = {}
        for producer in schedule.preloop:
            self.counter[producer.queue] = self.counter.get(producer.queue, 0) + 1
            for position, kind in producer.consumers:
                self.preloop_needs.setdefault(position, []).append(
                    (producer.queue, self.counter[producer.queue], kind))
        self.events: list[tuple[int, int]] = []
        self.before: dict[tuple[int, int], dict[int, int]] = {}
        self.needs: dict[tuple[int, int], dict[int, int]] = {}
        self.kinds: dict[tuple[int, int], dict[int, bool]] = {}
        waiting = {position for position in range(len(schedule.statements))
                   if position in schedule.consumers or position in self.preloop_needs}
        commits = {position: schedule.groups[group].queue
                   for position, group in self.last_member.items()}
        stages = [(statement.position, statement.stage) for statement in schedule.statements]
        self.stages = [stage for _, stage in stages]
        # consumer position -> (producer stage, group, queue, distances, kind) per dependency
        self.sources = {
            position: [(self.stages[dependency.producer], schedule.group_of[dependency.producer],
                        schedule.groups[schedule.group_of[dependency.producer]].queue,
                        dependency.distances, dependency.kind) for dependency in dependencies]
            for position, dependencies in schedule.consumers.items()}
        for section in sections:
            for slot in range(section.start, section.start + section.length):
                for position, stage in stages:
                    if not 0 <= slot - stage < extent:
                        continue
                    if position in waiting:
                        self._step(slot, position)
                    queue = commits.get(position)
                    if queue is not None:
                        self.counter[queue] += 1
                        self.marks[(slot, self.last_member[position])] = self.counter[queue]

    def runs(self, slot: int, position: int) -> bool:
        iteration = slot - self.schedule.statements[position].stage
        return 0 <= iteration < self.extent

    def _need(self, needs: dict, reads: dict, queue: int, count: int, kind: str) -> None:
        if queue not in needs or count < needs[queue]:
            needs[queue] = count
        reads[queue] = reads.get(queue, False) or kind == "read"

    def _step(self, slot: int, position: int) -> None:
        """The event of the statement at ``position`` in ``slot``."""
        key = (slot, position)
        counter = self.counter
        self.events.append(key)
        self.before[key] = dict(counter)
        needs: dict[int, int] = {}
        reads: dict[int, bool] = {}
        for queue, mark, kind in self.preloop_needs.get(position, ()):
            self._need(needs, reads, queue, counter[queue] - mark, kind)
        iteration = slot - self.stages[position]
        extent = self.extent
        for stage, group, queue, distances, kind in self.sources.get(position, ()):
            for distance in distances:
                produced = iteration - distance
                if 0 <= produced < extent:
                    self._need(needs, reads, queue,
                               counter[queue] - self.marks[(produced + stage, group)], kind)
                    break
        if needs:
            self.needs[key] = needs
            self.kinds[key] = reads


@dataclass(eq=False)
class _Site:
    """A wait site: before ``first`` on ``queue`` in ``section``, the first of the
    statements ``covered`` that need that queue with no commit on it in between."""

    section: Section
    first: int
    queue: int
    covered: list[int]
    for_read: bool = False


def _sites(schedule: Schedule, replay: _Replay, section: Section) -> list[_Site]:
    """The candidate wait sites of a section. A later statement shares a site when no
    commit on the queue separates them and it never runs where the first does not."""
    slots = range(section.start, section.start + section.length)
    runs = {statement.position: [replay.runs(slot, statement.position) for slot in slots]
            for statement in schedule.statements}
    open_site: dict[int, _Site | None] = {}
    sites: list[_Site] = []
    for position, pattern in runs.items():
        if not any(pattern):
            continue
        for queue in sorted(schedule.waited_queues(position)):
            site = open_site.get(queue)
            if site is None or not all(runs[site.first][copy]
                                       for copy, running in enumerate(pattern) if running):
                site = _Site(section, position, queue, [])
                open_site[queue] = site
                sites.append(site)
            site.covered.append(position)
            site.for_read = site.for_read or any(
                replay.kinds.get((slot, position), {}).get(queue, False) for slot in slots)
        group = replay.last_member.get(position)
        if group is not None:
            open_site[schedule.groups[group].queue] = None
    return sites


@dataclass
class _Outcome:
    """The waits of a set of sites replayed: the count of each wait execution (None when
    nothing after it, up to the next wait on its queue, conflicts with a group before it),
    the needs no wait covers, and the queues to drain after the loop."""

    values: dict[tuple[int, int], int | None]
    unprotected: list[tuple[int, int, int]]
    drains: list[int]


def _replay_waits(schedule: Schedule, replay: _Replay, sites: Sequence[_Site],
                  skipped: frozenset[tuple[int, int]] = frozenset()) -> _Outcome:
    """The oracle's rule: a wait allows as many groups in flight as every access after it
    and before the next wait on its queue allows; what code after the loop may touch is
    everything, so nothing may stay in flight unseen at the end. ``skipped`` are
    (site id, slot) pairs of unrolled copies that do not wait."""
    waits_at: dict[tuple[int, int], list[_Site]] = {}
    for site in sites:
        for slot in range(site.section.start, site.section.start + site.section.length):
            if replay.runs(slot, site.first) and (id(site), slot) not in skipped:
                waits_at.setdefault((slot, site.first), []).append(site)
    current: dict[int, tuple[int, int]] = {}  # queue -> (site id, slot) of the open wait
    opened: dict[int, int] = {}  # queue -> commit count when that wait ran
    values: dict[tuple[int, int], int | None] = {}
    unprotected: list[tuple[int, int, int]] = []

    def constrain(queue: int, need: int, commits: int, where: tuple[int, int]) -> None:
        wait = current.get(queue)
        allowed = None if wait is None else need - (commits - opened[queue])
        if allowed is None or allowed < 0:
            unprotected.append((where[0], where[1], queue))
            return
        known = values[wait]
        values[wait] = allowed if known is None else min(known, allowed)

    for key in replay.events:
        before = replay.before[key]
        for site in waits_at.get(key, ()):
            wait = (id(site), key[0])
            current[site.queue] = wait
            opened[site.queue] = before[site.queue]
            values.setdefault(wait, None)
        for queue, need in replay.needs.get(key, {}).items():
            constrain(queue, need, before[queue], key)
    drains = []
    for queue, total in sorted(replay.counter.items()):
        if total == 0:
            continue
        wait = current.get(queue)
        if wait is None or total > opened[queue]:
            drains.append(queue)
        else:
            values[wait] = 0
    return _Outcome(values, unprotected, drains)


def _complete(schedule: Schedule, replay: _Replay, candidates: Sequence[_Site],
              chosen: list[_Site]) -> tuple[list[_Site], _Outcome]:
    """``chosen`` and, earliest first, the sites of the needs no chosen wait protects,
    with the outcome of their replay."""
    while True:
        outcome = _replay_waits(schedule, replay, chosen)
        missing = [site for slot, position, queue in outcome.unprotected for site in candidates
                   if site.queue == queue and position in site.covered and site not in chosen
                   and site.section.start <= slot < site.section.start + site.section.length]
        if not missing:
            return chosen, outcome
        chosen = chosen + [min(missing, key=lambda site: (site.section.start, site.first))]


def plan_synchronization(schedule: Schedule, extent: int, prologue_length: int) -> SyncPlan:
    """The waits and drains of ``schedule`` pipelined over ``extent`` iterations (a
    concrete number) with a prologue of ``prologue_length`` slots.

    A wait sits before every read of asynchronous data; an overwrite gets a wait of its
    own only where no earlier wait on the queue can protect it.
    """
    window = steady_window(schedule)
    replayed_extent = min(extent, prologue_length + window)
    sections = sections_for(schedule, replayed_extent, prologue_length)
    replay = _Replay(schedule, replayed_extent, sections)
    candidates = [site for section in sections for site in _sites(schedule, replay, section)]
    chosen, outcome = _complete(schedule, replay, candidates,
                                [site for site in candidates if site.for_read])
    for site in [site for site in chosen if any(position in replay.preloop_needs
                                                    for position in site.covered)]:
        # A read whose data an earlier wait already guarantees, at no cost to that wait's
        # count, needs no wait of its own (the Q tile read again in every iteration).
        others = [other for other in chosen if other is not site]
        trial = _replay_waits(schedule, replay, others)
        if not trial.unprotected and trial.drains == outcome.drains and all(
                trial.values.get(key) == value for key, value in outcome.values.items()
                if key[0] != id(site)):
            chosen, outcome = others, trial
    skipped: set[tuple[int, int]] = set()
    for site in chosen:
        if site.section.kind == BODY or not any(position in replay.preloop_needs
                                                for position in site.covered):
            continue
        # Likewise for one copy of an unrolled wait.
        for slot in range(site.section.start, site.section.start + site.section.length):
            key = (id(site), slot)
            if key not in outcome.values:
                continue
            trial = _replay_waits(schedule, replay, chosen, frozenset(skipped | {key}))
            if not trial.unprotected and trial.drains == outcome.drains and all(
                    trial.values.get(other) == value for other, value in outcome.values.items()
                    if other != key):
                skipped.add(key)
                outcome = trial
    section_plans = []
    for section, actual in zip(sections, sections_for(schedule, extent, prologue_length)):
        slots = range(section.start, section.start + section.length)
        runs = tuple(tuple(replay.runs(slot, statement.position) for slot in slots)
                     for statement in schedule.statements)
        waits = []
        for site in chosen:
            if site.section is not section:
                continue
            values = [outcome.values.get((id(site), slot)) for slot in slots]
            if section.kind == BODY:
                known = [value for value in values if value is not None]
                if known:
                    waits.append(Wait(site.queue, site.first, (min(known),)))
            elif any(value is not None for value in values):
                standalone = any(value is None and replay.runs(slot, site.first)
                                 for value, slot in zip(values, slots))
                waits.append(Wait(site.queue, site.first, tuple(values), standalone))
        section_plans.append(SectionPlan(actual, runs, tuple(waits)))
    return SyncPlan(tuple(section_plans), tuple((queue, 0) for queue in outcome.drains))


def plan_for_every_extent(schedule: Schedule) -> tuple[int, int, SyncPlan]:
    """A prologue length P, a least extent E > P and the plan that is the same for
    every extent from E on (the waits of a symbolic extent, guarded by ``n >= E``)."""
    length = schedule.max_stage
    window = steady_window(schedule)
    for _ in range(window + 1):
        plans = [plan_synchronization(schedule, extent, length)
                 for extent in range(length + 1, length + window + 2)]
        if all(_same_waits(plans[0], plan) for plan in plans[1:]):
            return length, length + 1, plans[-1]
        length += 1
    raise PipelineError(f"pipelined loop '{schedule.loop.loop_var.name}': no prologue "
                        "length gives the same waits for every extent", schedule.loop.span)


def _same_waits(first: SyncPlan, second: SyncPlan) -> bool:
    """Whether two plans emit the same program (apart from the body's length)."""
    def outside(plan: SyncPlan):
        return ([(part.section.kind, part.waits, part.runs) for part in plan.sections
                 if part.section.kind != BODY], plan.drains)

    def body(plan: SyncPlan):
        return [part.waits for part in plan.sections if part.section.kind == BODY]

    first_body, second_body = body(first), body(second)
    return outside(first) == outside(second) and (
        not first_body or not second_body or first_body == second_body)
