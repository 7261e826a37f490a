"""Count-based synchronization of a scheduled pipeline: where to wait and for how many.

The pipelined loop is replayed slot by slot (see :mod:`.schedule`) for a concrete
extent. Every commit group commits once per slot in which its statements run, so the
number of commits between a producer's instance and a consumer's instance is counted
exactly; a consumer's largest safe in-flight count on a queue is the number of commits
after the newest group instance it depends on. Waits sit before the first statement that
needs them (later needs on the same queue, with no commit in between and never running
where the first does not, share it) and take the minimum over the wait's executions: over
the iterations of a loop, separately for each copy of an unrolled section.

Long loops are replayed shortened: after ``horizon`` slots every body iteration repeats
the same counts, so a loop of ``window`` body iterations gives the counts of any longer
one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

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
    section: Section
    runs: tuple[tuple[bool, ...], ...]  # per emission position, per copy
    waits: tuple[Wait, ...]


@dataclass(frozen=True)
class SyncPlan:
    """The synchronization of a pipeline for one extent (or for every extent at least
    ``prologue_length`` when ``extent`` was a representative of a symbolic one)."""

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
    """The replayed timeline: which statements run, commit marks, and every need."""

    def __init__(self, schedule: Schedule, extent: int, sections: Sequence[Section]):
        self.schedule = schedule
        self.extent = extent
        self.sections = sections
        statements = schedule.statements
        self.last_member = {group.members[-1]: index
                            for index, group in enumerate(schedule.groups)}
        self.counter = {queue: 0 for queue in schedule.queues.values()}
        self.marks: dict[tuple[int, int], int] = {}
        self.preloop_marks: list[int] = []
        for producer in schedule.preloop:
            self.counter[producer.queue] = self.counter.get(producer.queue, 0) + 1
            self.preloop_marks.append(self.counter[producer.queue])
        self.preloop_needs: dict[int, list[tuple[int, int, str]]] = {}
        for index, producer in enumerate(schedule.preloop):
            for position, kind in producer.consumers:
                self.preloop_needs.setdefault(position, []).append(
                    (producer.queue, self.preloop_marks[index], kind))
        # needs[(slot, position)] = {queue: largest safe in-flight count}
        self.needs: dict[tuple[int, int], dict[int, int]] = {}
        self.kinds: dict[tuple[int, int], dict[int, bool]] = {}
        for section in sections:
            for slot in range(section.start, section.start + section.length):
                for statement in statements:
                    self._step(slot, statement.position)

    def runs(self, slot: int, position: int) -> bool:
        iteration = slot - self.schedule.statements[position].stage
        return 0 <= iteration < self.extent

    def _step(self, slot: int, position: int) -> None:
        schedule = self.schedule
        statement = schedule.statements[position]
        if not self.runs(slot, position):
            return
        dependencies = schedule.consumers.get(position, ())
        preloop = self.preloop_needs.get(position, ())
        if dependencies or preloop:
            needs: dict[int, int] = {}
            reads: dict[int, bool] = {}
            for queue, mark, kind in preloop:
                count = self.counter[queue] - mark
                if queue not in needs or count < needs[queue]:
                    needs[queue] = count
                reads[queue] = reads.get(queue, False) or kind == "read"
            iteration = slot - statement.stage
            for dependency in dependencies:
                producer = schedule.statements[dependency.producer]
                group = schedule.group_of[dependency.producer]
                queue = schedule.groups[group].queue
                for distance in dependency.distances:
                    produced = iteration - distance
                    if 0 <= produced < self.extent:
                        mark = self.marks[(produced + producer.stage, group)]
                        count = self.counter[queue] - mark
                        if queue not in needs or count < needs[queue]:
                            needs[queue] = count
                        reads[queue] = reads.get(queue, False) or dependency.kind == "read"
                        break
            if needs:
                self.needs[(slot, position)] = needs
                self.kinds[(slot, position)] = reads
        group = self.last_member.get(position)
        if group is not None:
            queue = schedule.groups[group].queue
            self.counter[queue] += 1
            self.marks[(slot, group)] = self.counter[queue]


def _sites(schedule: Schedule, replay: _Replay, section: Section
           ) -> dict[tuple[int, int], list[int]]:
    """Wait sites of a section: (first position, queue) -> positions whose needs it covers."""
    slots = range(section.start, section.start + section.length)
    runs = {statement.position: [replay.runs(slot, statement.position) for slot in slots]
            for statement in schedule.statements}
    present = [position for position, pattern in runs.items() if any(pattern)]
    open_site: dict[int, int | None] = {}
    sites: dict[tuple[int, int], list[int]] = {}
    for position in present:
        for queue in sorted(schedule.waited_queues(position)):
            first = open_site.get(queue)
            if first is None or not all(
                    runs[first][copy] for copy, running in enumerate(runs[position]) if running):
                first = position
                open_site[queue] = first
                sites[(first, queue)] = []
            sites[(first, queue)].append(position)
        group = replay.last_member.get(position)
        if group is not None:
            open_site[schedule.groups[group].queue] = None
    return sites


@dataclass
class _Site:
    """A candidate wait: before ``first`` on ``queue``, covering the needs of ``covered``."""

    section: Section
    first: int
    queue: int
    covered: list[int]
    counts: tuple[int | None, ...]
    for_read: bool
    per_slot: dict[int, int]
    standalone: bool


def plan_synchronization(schedule: Schedule, extent: int, prologue_length: int) -> SyncPlan:
    """The waits and drains of ``schedule`` pipelined over ``extent`` iterations (a
    concrete number) with a prologue of ``prologue_length`` slots.

    Waits for data a statement reads are always placed; waits that only protect an
    overwrite are placed where the earlier waits do not already guarantee them.
    """
    window = steady_window(schedule)
    replayed_extent = min(extent, prologue_length + window)
    sections = sections_for(schedule, replayed_extent, prologue_length)
    replay = _Replay(schedule, replayed_extent, sections)
    kept = _kept_sites(schedule, replay, sections)
    section_plans = []
    for section, actual in zip(sections, sections_for(schedule, extent, prologue_length)):
        slots = range(section.start, section.start + section.length)
        runs = tuple(tuple(replay.runs(slot, statement.position) for slot in slots)
                     for statement in schedule.statements)
        waits = tuple(Wait(site.queue, site.first, site.counts, site.standalone)
                      for site in kept if site.section is section)
        section_plans.append(SectionPlan(actual, runs, waits))
    flight = _in_flight(schedule, replay, sections, kept)[0]
    return SyncPlan(tuple(section_plans), _drains(schedule, flight))


def _kept_sites(schedule: Schedule, replay: _Replay, sections: Sequence[Section]
                ) -> list[_Site]:
    """The sites that need a wait: every read of asynchronous data, and overwrites that
    the waits before them do not already protect."""
    sites = [site for section in sections for site in _section_sites(schedule, replay, section)]
    kept = [site for site in sites if site.for_read]
    for site in sites:
        if not site.for_read and _unmet(site, replay, _in_flight(schedule, replay, sections,
                                                                  kept)[1]):
            kept.append(site)
    return kept


def steady_prologue_length(schedule: Schedule) -> int:
    """The shortest prologue (at least the deepest stage) after which the body's waits
    are needed, with the same count, in every iteration: one constant count per wait is
    then exact for every extent the body runs."""
    length = schedule.max_stage
    for _ in range(schedule.horizon + 1):
        extent = length + steady_window(schedule)
        sections = sections_for(schedule, extent, length)
        replay = _Replay(schedule, extent, sections)
        transient = length
        for site in _kept_sites(schedule, replay, sections):
            if site.section.kind != BODY:
                continue
            values = {}
            for slot in range(site.section.start, site.section.start + site.section.length):
                found = [replay.needs[(slot, position)][site.queue] for position in site.covered
                         if site.queue in replay.needs.get((slot, position), {})]
                if found:
                    values[slot] = min(found)
            # Every run of the body starts at its first slot: that one must need the wait,
            # with the smallest count of all.
            if values:
                smallest = min(values.values())
                first = min(slot for slot, value in values.items() if value == smallest)
                transient = max(transient, first)
        if transient == length:
            return length
        length = transient
    return length


def _section_sites(schedule: Schedule, replay: _Replay, section: Section) -> list[_Site]:
    is_loop = section.kind == BODY
    found_sites = []
    for (first, queue), covered in _sites(schedule, replay, section).items():
        values: list[int | None] = []
        per_slot: dict[int, int] = {}
        for_read = False
        standalone = False
        for slot in range(section.start, section.start + section.length):
            if not replay.runs(slot, first):
                values.append(None)
                continue
            found = [replay.needs[(slot, position)][queue] for position in covered
                     if queue in replay.needs.get((slot, position), {})]
            for_read = for_read or any(
                replay.kinds[(slot, position)].get(queue, False) for position in covered
                if (slot, position) in replay.kinds)
            if found:
                per_slot[slot] = min(found)
                values.append(min(found))
            else:
                values.append(None)
                standalone = standalone or not is_loop
        if not per_slot:
            continue
        if is_loop:
            steady = min(per_slot.values())
            counts: tuple[int | None, ...] = (steady,)
            per_slot = {slot: steady for slot in range(section.start,
                                                        section.start + section.length)}
        else:
            counts = tuple(values)
            per_slot = {section.start + copy: value for copy, value in enumerate(values)
                        if value is not None}
        found_sites.append(_Site(section, first, queue, covered, counts, for_read, per_slot,
                                 standalone))
    return found_sites


def _in_flight(schedule: Schedule, replay: _Replay, sections: Sequence[Section],
               waits: Sequence[_Site]) -> tuple[dict[int, int], dict[tuple[int, int], dict]]:
    """Replays the most groups that can be in flight per queue with ``waits`` in place:
    the bounds after the loop and the bounds at each statement with a need."""
    at: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for site in waits:
        for slot, value in site.per_slot.items():
            at.setdefault((slot, site.first), []).append((site.queue, value))
    flight = {queue: 0 for queue in schedule.queues.values()}
    for producer in schedule.preloop:
        flight[producer.queue] = flight.get(producer.queue, 0) + 1
    seen: dict[tuple[int, int], dict] = {}
    for section in sections:
        for slot in range(section.start, section.start + section.length):
            for statement in schedule.statements:
                position = statement.position
                if not replay.runs(slot, position):
                    continue
                for queue, value in at.get((slot, position), ()):
                    flight[queue] = min(flight[queue], value)
                if (slot, position) in replay.needs:
                    seen[(slot, position)] = dict(flight)
                group = replay.last_member.get(position)
                if group is not None:
                    flight[schedule.groups[group].queue] += 1
    return flight, seen


def _unmet(site: _Site, replay: _Replay, seen: Mapping[tuple[int, int], dict]) -> bool:
    """Whether some need the site covers is not already met by the other waits."""
    for slot in site.per_slot:
        for position in site.covered:
            need = replay.needs.get((slot, position), {}).get(site.queue)
            if need is not None and seen[(slot, position)][site.queue] > need:
                return True
    return False


def _drains(schedule: Schedule, flight: Mapping[int, int]) -> tuple[tuple[int, int], ...]:
    """Waits after the loop for the groups that may still be in flight: nothing may be
    in flight when the program ends, and code after the loop may use any of it."""
    return tuple((queue, 0) for queue in sorted(flight) if flight[queue] > 0)
