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
from typing import NamedTuple, Sequence

from ...errors import PipelineError
from .schedule import Schedule

PROLOGUE, BODY, EPILOGUE = "prologue", "body", "epilogue"


# The plan's records are named tuples: immutable, compared and hashed by value, and
# cheaper to build than frozen dataclasses (a plan builds a dozen of them, and a symbolic
# extent plans many times).
class Section(NamedTuple):
    """Slots ``[start, start + length)`` of one part of the pipelined loop, in the
    replayed timeline. ``loop`` sections repeat one set of statements; the prologue and
    epilogue are unrolled copies."""

    kind: str
    start: int
    length: int


class Wait(NamedTuple):
    """A wait on ``queue`` before the statement at emission ``position``; ``counts`` has
    one entry per copy of an unrolled section (None where it does not wait) or a single
    entry for a loop or a one-slot section. A ``standalone`` wait is a statement of its
    own, predicated to the copies that wait, since a wait that guards nothing would not
    be exact; any other wait wraps the statement."""

    queue: int
    position: int
    counts: tuple[int | None, ...]
    standalone: bool = False


class SectionPlan(NamedTuple):
    """One section: which statements run in each copy, and the waits."""

    section: Section
    runs: tuple[tuple[bool, ...], ...]  # per emission position, per copy
    waits: tuple[Wait, ...]


class SyncPlan(NamedTuple):
    """The synchronization of a pipeline for one extent (see
    :func:`plan_for_every_extent` for a symbolic one)."""

    sections: tuple[SectionPlan, ...]
    drains: tuple[tuple[int, int], ...]  # (queue, in-flight count) after the loop


def steady_window(schedule: Schedule) -> int:
    """Body iterations the replay needs to see both the start and the steady state.

    A dependency's distances lie below its stage difference plus one plus the horizon, so
    the producer instance an event depends on committed at most ``horizon`` slots before
    it. From body slot ``max_stage + horizon`` on, every group commits in each slot that
    far back, so each body slot's wait sees the same commits and needs as the next one's,
    up to the last body slot, whose accesses run on into the epilogue. The body's first
    ``horizon`` slots, a steady one and the last one thus give every count of a longer
    body (one more slot per stage is margin)."""
    return schedule.horizon + schedule.max_stage + 2


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
    it and its needs. A need on a queue is the *mark* of the newest group instance the
    event conflicts with: the queue's commit count right after that group committed (the
    event's need in commits is its count before it less the mark). Other instances only
    commit.

    The statements are replayed in *steps*: the waiting statements of one stage with the
    same sources and no commit between them (members of one commit group, say) have the
    same counts and needs in every slot, so they make one event; the commit of a step's
    last statement follows it. A step that waits on nothing only commits."""

    def __init__(self, schedule: Schedule, extent: int, sections: Sequence[Section]):
        self.extent = extent
        self.stages = stages = [statement.stage for statement in schedule.statements]
        groups = schedule.groups
        self.queues = sorted(set(schedule.queues.values())
                             | {producer.queue for producer in schedule.preloop})
        self.queue_index = queue_index = {queue: number
                                          for number, queue in enumerate(self.queues)}
        counter = [0] * len(self.queues)
        # consumer position -> [(queue number, mark, kind)] of the groups before the loop
        self.preloop_needs: dict[int, list[tuple[int, int, str]]] = {}
        for producer in schedule.preloop:
            number = queue_index[producer.queue]
            counter[number] += 1
            for position, kind in producer.consumers:
                self.preloop_needs.setdefault(position, []).append(
                    (number, counter[number], kind))
        end = max((section.start + section.length for section in sections), default=0)
        # group -> slot -> the group's mark in that slot
        self.marks = marks = [[0] * end for _ in groups]
        group_queue = [queue_index[group.queue] for group in groups]
        commits = {group.members[-1]: (group_queue[index], marks[index])
                   for index, group in enumerate(groups)}
        # consumer position -> (producer stage, marks of its group, queue number, distances,
        # kind) per dependency, each once (the producers of one group, which share a
        # stage, at the same distances give one mark); consumers with the same sources
        # share one tuple
        self.sources: dict[int, tuple] = {}
        shared_sources: dict[tuple, tuple] = {}
        group_of = schedule.group_of
        for position, dependencies in schedule.consumers.items():
            entries = {}
            for dependency in dependencies:
                group = group_of[dependency.producer]
                key = (group, dependency.distances, dependency.kind)
                if key not in entries:
                    entries[key] = (groups[group].stage, marks[group], group_queue[group],
                                    dependency.distances, dependency.kind)
            self.sources[position] = shared_sources.setdefault(tuple(entries),
                                                               tuple(entries.values()))
        # [stage, waiting positions, sources, needs from before the loop, commit]; the
        # statements that neither wait nor commit change nothing here
        steps: list[list] = []
        joins = None  # what a waiting statement needs to join the last step
        for position, stage in enumerate(stages):
            from_loop = self.sources.get(position, ())
            from_preloop = self.preloop_needs.get(position, ())
            commit = commits.get(position)
            if from_loop or from_preloop:
                key = (stage, id(from_loop), id(from_preloop))
                if key == joins:
                    steps[-1][1].append(position)
                else:
                    steps.append([stage, [position], from_loop, from_preloop, None])
                    joins = key
            elif commit is None:
                continue
            else:
                steps.append([stage, [], (), (), None])
            if commit is not None:
                steps[-1][4] = commit
                joins = None
        self.steps = [(stage, tuple(positions), from_loop, from_preloop, commit)
                      for stage, positions, from_loop, from_preloop, commit in steps]
        # (slot, positions of the step, commit counts before it, {queue number: mark} or
        # None)
        self.events: list[tuple[int, tuple[int, ...], tuple[int, ...],
                                dict[int, int] | None]] = []
        events = self.events
        needs_of = self._needs
        # The sections are consecutive from slot 0.
        for slot in range(end):
            for stage, positions, from_loop, from_preloop, commit in self.steps:
                iteration = slot - stage
                if not 0 <= iteration < extent:
                    continue
                if positions:
                    events.append((slot, positions, tuple(counter),
                                   needs_of(iteration, from_loop, from_preloop)))
                if commit is not None:
                    number, group_marks = commit
                    counter[number] += 1
                    group_marks[slot] = counter[number]
        self.counter = {queue: counter[number] for queue, number in queue_index.items()}

    def runs(self, slot: int, position: int) -> bool:
        iteration = slot - self.stages[position]
        return 0 <= iteration < self.extent

    def interval(self, section: Section, position: int) -> tuple[int, int]:
        """The slots ``[low, high)`` of ``section`` in which the statement runs (empty
        when ``low >= high``)."""
        stage = self.stages[position]
        return (max(section.start, stage),
                min(section.start + section.length, stage + self.extent))

    def intervals(self, section: Section) -> dict[int, tuple[int, int]]:
        """``interval`` of the statements of each stage (statements of one stage run in
        the same slots)."""
        start, end, extent = section.start, section.start + section.length, self.extent
        return {stage: (max(start, stage), min(end, stage + extent))
                for stage in set(self.stages)}

    def reads_in(self, position: int, queue: int, low: int, high: int) -> bool:
        """Whether an event of the statement in slots ``[low, high)``, in which it runs,
        reads asynchronous data of ``queue`` (a queue number): data of a group before the
        loop, or of a group in the loop whose producing instance exists (found from the
        distances rather than recorded per event)."""
        for number, _, kind in self.preloop_needs.get(position, ()):
            if number == queue and kind == "read":
                return True
        stage = self.stages[position]
        for _, _, number, distances, kind in self.sources.get(position, ()):
            if number == queue and kind == "read":
                for distance in distances:
                    # The instance ``iteration - distance`` exists in slots
                    # ``[stage + distance, stage + distance + extent)``.
                    if max(low, stage + distance) < min(high, stage + distance + self.extent):
                        return True
        return False

    def _needs(self, iteration: int, from_loop, from_preloop) -> dict[int, int] | None:
        """The newest conflicting group's mark per queue number of one event."""
        needs: dict[int, int] = {}
        for number, mark, _ in from_preloop:
            if mark > needs.get(number, -1):
                needs[number] = mark
        extent = self.extent
        for stage, marks, number, distances, _ in from_loop:
            for distance in distances:
                produced = iteration - distance
                if 0 <= produced < extent:
                    mark = marks[produced + stage]
                    if mark > needs.get(number, -1):
                        needs[number] = mark
                    break
        return needs or None


@dataclass(eq=False)
class _Site:
    """A wait site: before ``first`` on ``queue`` in ``section``, the first of the
    statements ``covered`` that need that queue with no commit on it in between."""

    section: Section
    first: int
    queue: int
    covered: list[int]
    for_read: bool = False


def _sites(schedule: Schedule, replay: _Replay, section: Section,
           intervals: dict[int, tuple[int, int]]) -> list[_Site]:
    """The candidate wait sites of a section, whose ``intervals`` (per stage) are given.
    A later statement shares a site when no commit on the queue separates them and it
    never runs where the first does not; so the statements of a replay step share all
    their sites, and only a step's first statement begins one."""
    open_site: dict[int, _Site | None] = {}
    sites: list[_Site] = []
    stages, queues, queue_index = replay.stages, replay.queues, replay.queue_index
    for stage, positions, _, _, commit in replay.steps:
        low, high = intervals[stage]
        if low >= high:
            continue
        if positions:
            first = positions[0]
            for queue in schedule.waited_queues(first):
                site = open_site.get(queue)
                if site is not None:
                    first_low, first_high = intervals[stages[site.first]]
                if site is None or not first_low <= low < high <= first_high:
                    site = _Site(section, first, queue, [])
                    open_site[queue] = site
                    sites.append(site)
                site.covered.extend(positions)
                site.for_read = site.for_read or replay.reads_in(
                    first, queue_index[queue], low, high)
        if commit is not None:
            open_site[queues[commit[0]]] = None
    return sites


@dataclass
class _Outcome:
    """The waits of a set of sites replayed: the count of each wait execution (None when
    nothing after it, up to the next wait on its queue, conflicts with a group before it),
    the needs no wait covers, and the queues to drain after the loop."""

    values: dict[tuple[int, int], int | None]
    unprotected: list[tuple[int, int, int]]
    drains: list[int]


def _replay_waits(replay: _Replay, sites: Sequence[_Site],
                  skipped: frozenset[tuple[int, int]] = frozenset()) -> _Outcome:
    """The oracle's rule: a wait allows as many groups in flight as every access after it
    and before the next wait on its queue allows; what code after the loop may touch is
    everything, so nothing may stay in flight unseen at the end. ``skipped`` are
    (site id, slot) pairs of unrolled copies that do not wait."""
    # first position -> (site, queue number, slots [low, high) it runs in) of its sites
    waits_at: dict[int, list[tuple[_Site, int, int, int]]] = {}
    for site in sites:
        low, high = replay.interval(site.section, site.first)
        waits_at.setdefault(site.first, []).append(
            (site, replay.queue_index[site.queue], low, high))
    current: dict[int, tuple[int, int]] = {}  # queue number -> (site id, slot) of the open wait
    opened: dict[int, int] = {}  # queue number -> commit count when that wait ran
    values: dict[tuple[int, int], int | None] = {}
    unprotected: list[tuple[int, int, int]] = []
    queues = replay.queues
    for slot, positions, before, needs in replay.events:
        # Only the first statement of a step begins a wait site (see _sites).
        here = waits_at.get(positions[0])
        if here is not None:
            for site, number, low, high in here:
                if not low <= slot < high:
                    continue
                wait = (id(site), slot)
                if wait in skipped:
                    continue
                current[number] = wait
                opened[number] = before[number]
                values.setdefault(wait, None)
        if needs is None:
            continue
        lost: list[int] = []  # the queues of the needs no wait protects
        for number, mark in needs.items():
            # The wait allows as many groups in flight as were committed after the
            # newest conflicting one.
            start = opened.get(number)
            if start is None or start < mark:
                lost.append(queues[number])
                continue
            wait = current[number]
            known = values[wait]
            if known is None or start - mark < known:
                values[wait] = start - mark
        if lost:
            # Every statement of the step has them.
            unprotected.extend((slot, position, queue)
                               for position in positions for queue in lost)
    drains = []
    for queue, total in sorted(replay.counter.items()):
        if total == 0:
            continue
        number = replay.queue_index[queue]
        wait = current.get(number)
        if wait is None or total > opened[number]:
            drains.append(queue)
        else:
            values[wait] = 0
    return _Outcome(values, unprotected, drains)


def _complete(replay: _Replay, candidates: Sequence[_Site],
              chosen: list[_Site]) -> tuple[list[_Site], _Outcome]:
    """``chosen`` and, earliest first, the sites of the needs no chosen wait protects,
    with the outcome of their replay."""
    while True:
        outcome = _replay_waits(replay, chosen)
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
    intervals = [replay.intervals(section) for section in sections]
    candidates = [site for section, section_intervals in zip(sections, intervals)
                  for site in _sites(schedule, replay, section, section_intervals)]
    chosen, outcome = _complete(replay, candidates,
                                [site for site in candidates if site.for_read])
    if replay.preloop_needs:
        chosen, outcome = _without_preloop_waits(replay, chosen, outcome)
    # The replay is the loop itself unless it was shortened.
    actual_sections = (sections if replayed_extent == extent
                       else sections_for(schedule, extent, prologue_length))
    section_plans = []
    for section, actual, section_intervals in zip(sections, actual_sections, intervals):
        slots = range(section.start, section.start + section.length)
        patterns = {stage: _pattern(section, *interval)
                    for stage, interval in section_intervals.items()}
        runs = tuple(patterns[stage] for stage in replay.stages)
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


def _without_preloop_waits(replay: _Replay, chosen: list[_Site],
                           outcome: _Outcome) -> tuple[list[_Site], _Outcome]:
    """``chosen`` less the waits for groups committed before the loop that an earlier
    wait already guarantees, and the outcome without them."""
    for site in [site for site in chosen if any(position in replay.preloop_needs
                                                    for position in site.covered)]:
        # A read whose data an earlier wait already guarantees, at no cost to that wait's
        # count, needs no wait of its own (the Q tile read again in every iteration).
        others = [other for other in chosen if other is not site]
        trial = _replay_waits(replay, others)
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
            trial = _replay_waits(replay, chosen, frozenset(skipped | {key}))
            if not trial.unprotected and trial.drains == outcome.drains and all(
                    trial.values.get(other) == value for other, value in outcome.values.items()
                    if other != key):
                skipped.add(key)
                outcome = trial
    return chosen, outcome


def _pattern(section: Section, low: int, high: int) -> tuple[bool, ...]:
    """Per slot of ``section``, whether it lies in ``[low, high)``."""
    if low >= high:
        return (False,) * section.length
    return ((False,) * (low - section.start) + (True,) * (high - low)
            + (False,) * (section.start + section.length - high))


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
