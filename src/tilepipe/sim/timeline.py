"""Timelines of the timing model: one lane per unit, in the terminal or as a picture.

Both forms show what each unit did over time (copies transferring and in flight, shared
traffic, compute, the threads' waits) with the main loop's prologue, body and epilogue
marked. Several reports drawn together share one time scale, so a program before and
after pipelining can be compared at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import TilepipeError
from .timing import UNITS, Interval, TimingReport, iter_phases

ASCII_WIDTH = 100
_LABEL_WIDTH = 8
_GLYPHS = {"transfer": "=", "flight": "~", "shared": "s", "compute": "#", "wait": ".",
           "issue": "i", "barrier": "|"}
_KINDS = ("compute", "transfer", "shared", "barrier", "wait", "issue", "flight")  # legend order
_PARTLY_BUSY = ":"
_COLORS = {"transfer": "#3a7bd5", "flight": "#a9c8f0", "shared": "#8e6bbf",
           "compute": "#e07b39", "wait": "#eba3a3", "issue": "#9a9a9a", "barrier": "#222222"}
_SHORT_LEGEND = {"transfer": "transfer", "flight": "in flight", "shared": "shared",
                 "compute": "compute", "wait": "waiting", "issue": "issuing",
                 "barrier": "barrier"}
_LEGEND = {"transfer": "copy transferring", "flight": "copy in flight",
           "shared": "shared traffic", "compute": "compute", "wait": "waiting",
           "issue": "issuing", "barrier": "barrier"}


def _lanes(report: TimingReport) -> list[str]:
    used = {interval.unit for interval in report.intervals}
    return [unit for unit in UNITS if unit in used]


def _summary(report: TimingReport) -> str:
    return (f"{report.func_name} on {report.machine.name}: {report.total_cycles:,.0f} cycles,"
            f" bound {report.bound_cycles:,.0f} ({100 * report.efficiency:.1f}% of it)")


# Terminal ----------------------------------------------------------------------------
def ascii_timeline(report: TimingReport, width: int = ASCII_WIDTH,
                   span: float | None = None) -> str:
    """The timeline as text no wider than ``width`` columns.

    ``span`` is the number of cycles the full width stands for (default: this report's
    total), so that several timelines can be printed on one scale.
    """
    columns = width - _LABEL_WIDTH - 2
    span = max(span or report.total_cycles, 1.0)
    step = span / columns
    lines = [_summary(report), " " * (_LABEL_WIDTH + 1) + _phase_ruler(report, columns, step)]
    if report.iteration_starts:
        lines.append(f"{'iter':<{_LABEL_WIDTH}} {_iteration_ruler(report, columns, step)}")
    by_lane: dict[str, list[Interval]] = {}
    for interval in report.intervals:
        by_lane.setdefault(interval.unit, []).append(interval)
    for lane in _lanes(report):
        cover = [dict.fromkeys(_KINDS, 0.0) for _ in range(columns)]
        for interval in by_lane[lane]:
            first = int(interval.start / step)
            last = min(int(interval.end / step), columns - 1)
            for column in range(first, last + 1):
                overlap = (min(interval.end, (column + 1) * step)
                           - max(interval.start, column * step))
                if overlap > 0:
                    cover[column][interval.kind] += overlap
        row = "".join(_glyph(column_cover, step) for column_cover in cover)
        lines.append(f"{lane:<{_LABEL_WIDTH}} {row.rstrip()}")
    lines.append(" " * (_LABEL_WIDTH + 1) + _axis(columns, step))
    used = sorted({interval.kind for interval in report.intervals}, key=_KINDS.index)
    names = [f"{_GLYPHS[kind]} {_SHORT_LEGEND[kind]}" for kind in used]
    lines.append("legend: " + "  ".join(names + [f"{_PARTLY_BUSY} partly busy"]))
    return "\n".join(line[:width] for line in lines)


def _glyph(cover: dict[str, float], step: float) -> str:
    """The busiest kind of work in a column; ``:`` where the lane is only partly busy
    (so that a 60%-busy unit does not look saturated), ``~`` where copies only travel."""
    kind = max((kind for kind in _KINDS if kind != "flight"), key=cover.get)
    if cover[kind] >= 0.6 * step:
        return _GLYPHS[kind]
    if cover[kind] >= 0.15 * step:
        return _PARTLY_BUSY
    return _GLYPHS["flight"] if cover["flight"] >= 0.3 * step else " "


def _phase_ruler(report: TimingReport, columns: int, step: float) -> str:
    """``|prologue|body ... |epilogue|`` over the columns each phase covers."""
    ruler = [" "] * columns
    for name, start, end in iter_phases(report):
        first, last = int(start / step), min(int(end / step), columns - 1)
        if last - first < 2:  # too short to mark at this scale
            continue
        ruler[first] = "|"
        room = last - first - 1
        text = name if len(name) <= room else name[0] if room > 0 else ""
        for offset, char in enumerate(text):
            ruler[first + 1 + offset] = char
        ruler[last] = "|"
    return "".join(ruler).rstrip()


def _iteration_ruler(report: TimingReport, columns: int, step: float) -> str:
    """The main loop's iteration numbers where each iteration starts, as many as fit."""
    ruler = [" "] * columns
    free_from = 0
    for number, start in enumerate(report.iteration_starts):
        column = int(start / step)
        text = str(number)
        if column >= free_from and column + len(text) <= columns:
            ruler[column:column + len(text)] = text
            free_from = column + len(text) + 1
    return "".join(ruler).rstrip()


def _axis(columns: int, step: float) -> str:
    """Cycle counts under the lanes, every quarter of the width."""
    axis = [" "] * columns
    for quarter in range(4):
        column = quarter * columns // 4
        text = f"{column * step:,.0f}"
        for offset, char in enumerate(text):
            if column + offset < columns:
                axis[column + offset] = char
    end = f"{columns * step:,.0f} cycles"
    for offset, char in enumerate(end):
        axis[columns - len(end) + offset] = char
    return "".join(axis)


def ascii_comparison(reports: Sequence[TimingReport], titles: Sequence[str],
                     width: int = ASCII_WIDTH) -> str:
    """Several timelines one above the other, on the longest one's scale."""
    span = max(report.total_cycles for report in reports)
    parts = [f"-- {title} --\n{ascii_timeline(report, width, span)}"
             for title, report in zip(titles, reports)]
    return "\n\n".join(parts)


# Picture -----------------------------------------------------------------------------
def draw_timeline(reports: Sequence[TimingReport], path: str | Path,
                  titles: Sequence[str] | None = None) -> Path:
    """Write the timelines (one panel each, one shared time axis) to a PNG or SVG file
    chosen by the suffix of ``path``; return the path written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.patches import Patch

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise TilepipeError(f"cannot draw to '{path}': the file must end in .png or .svg")
    titles = list(titles or [report.func_name for report in reports])
    span = max(report.total_cycles for report in reports)
    heights = [1 + 0.5 * len(_lanes(report)) for report in reports]
    figure, axes_list = pyplot.subplots(
        len(reports), 1, figsize=(13, sum(heights) + 0.8), sharex=True, squeeze=False,
        gridspec_kw={"height_ratios": heights})
    for axes, report, title in zip(axes_list[:, 0], reports, titles):
        _draw_panel(axes, report, title, span)
    axes_list[-1, 0].set_xlabel("cycles (one thread block)")
    used = sorted({interval.kind for report in reports for interval in report.intervals},
                  key=_KINDS.index)
    figure.legend(handles=[Patch(color=_COLORS[kind], label=_LEGEND[kind]) for kind in used],
                  loc="lower center", ncol=len(used), frameon=False, fontsize=8)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    try:
        figure.savefig(path, dpi=110)
    except OSError as error:
        raise TilepipeError(f"cannot write '{path}': {error.strerror}") from None
    finally:
        pyplot.close(figure)
    return path


def _draw_panel(axes, report: TimingReport, title: str, span: float) -> None:
    lanes = _lanes(report)
    rows = {lane: len(lanes) - 1 - index for index, lane in enumerate(lanes)}
    bars: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for interval in report.intervals:
        bars.setdefault((interval.unit, interval.kind), []).append(
            (interval.start, interval.end - interval.start))
        if (interval.kind in ("compute", "transfer") and interval.iteration is not None
                and interval.end - interval.start > span / 60):
            axes.text((interval.start + interval.end) / 2, rows[interval.unit],
                      str(interval.iteration), ha="center", va="center", fontsize=6,
                      color="white")
    for (unit, kind), spans in bars.items():
        height = 0.35 if kind == "flight" else 0.7
        axes.broken_barh(spans, (rows[unit] - height / 2, height), color=_COLORS[kind],
                         edgecolor="white" if kind != "flight" else "none", linewidth=0.3)
    for name, start, end in iter_phases(report):
        if end <= start:
            continue
        axes.axvline(start, color="#555555", linestyle="--", linewidth=0.8)
        axes.text((start + end) / 2, len(lanes) - 0.35, name, ha="center", va="bottom",
                  fontsize=8, color="#333333")
    axes.axvline(report.total_cycles, color="#555555", linestyle="--", linewidth=0.8)
    axes.axvline(report.bound_cycles, color="#2a9d4a", linestyle=":", linewidth=1.0)
    axes.set_yticks(range(len(lanes)))
    axes.set_yticklabels(list(reversed(lanes)))
    axes.set_ylim(-0.6, len(lanes) + 0.2)
    axes.set_xlim(0, span * 1.01)
    axes.set_title(f"{title}: {_summary(report)}  (green: the bound)", fontsize=9, loc="left")


__all__ = ["ASCII_WIDTH", "ascii_comparison", "ascii_timeline", "draw_timeline"]
