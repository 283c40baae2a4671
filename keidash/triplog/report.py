"""One trip as a report: ``keidash report``.

HTML (an inline SVG chart drawn here, no extra packages) or PNG (needs
matplotlib, the ``report`` extra): speed, rpm and gear over time with the shift
cues and a legend, time in each gear, over-rev and lugging events (each marked on the chart, so
the marks and the counts agree), distance and top speed. Lugging is the engine pulling below the
lugging limit in 3rd and up: a stop (braking, or the clutch down at idle) is not lugging.
The red line and lugging limit come from the profile the trip was driven with
(:func:`keidash.triplog.reading.trip_limits`).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass

from ..cab.trip import MAX_GAP_S
from ..errors import ConfigError
from ..readings import SPEED
from .reading import (INSTALL_REPORT, KM_PER_MILE, LAST, UNCONFIRMED_NOTE, Event, Frame, Trip, TripSummary,
                      channel_readings, find_trip, format_duration, frames, lugging, open_trip_log, over_revs,
                      start_time, summarise, time_in_gear, trip_limits, trip_ratios)


# the chart's colours: the dash's cue lamps (amber up, blue down), red for over the red line
SPEED_COLOUR, RPM_COLOUR, GEAR_COLOUR = "#06c", "#333", "#080"
REDLINE_COLOUR, LUG_COLOUR = "#c00", "#c80"
UP_COLOUR, DOWN_COLOUR = "#e90", "#36f"


@dataclass(frozen=True)
class Report:
    summary: TripSummary
    frames: tuple[Frame, ...]
    redline_rpm: float
    lug_rpm: float
    limits_from: str  # one phrase: the profile or keidash's defaults
    gear_s: dict  # gear (None unknown) -> s
    over_revs: tuple[Event, ...]
    lugging: tuple[Event, ...]
    cues: tuple[tuple[float, str], ...]  # (t, UP/DOWN) where a cue came on


def build_report(trip: Trip, trip_frames: list[Frame], speed_readings=()) -> Report:
    """Everything a report shows, from the trip's frames (pure)."""
    limits, limits_from = trip_limits(trip.profile)
    cues = tuple((f.t, f.cue) for prev, f in zip([None] + trip_frames, trip_frames)
                 if f.cue and (prev is None or prev.cue != f.cue))
    return Report(summarise(trip, trip_frames, list(speed_readings)), tuple(trip_frames), limits.redline_rpm,
                  limits.lug_rpm, limits_from, time_in_gear(trip_frames),
                  tuple(over_revs(trip_frames, limits.redline_rpm)),
                  tuple(lugging(trip_frames, limits.lug_rpm, limits.idle_rpm, trip_ratios(trip.profile))),
                  cues)


def gear_name(gear: int | None) -> str:
    return {None: "unknown", 0: "N", -1: "R"}.get(gear, str(gear))


def _gear_order(gear: int | None) -> tuple:
    return (gear is None, gear if gear is not None else 0)


def report_main(db: str, trip: str = LAST, out: str | None = None) -> int:
    """Write trip ``trip`` (an id or "last") of ``db`` as ``out`` (.html or .png; default trip-N.html)."""
    conn = open_trip_log(db)
    try:
        chosen = find_trip(conn, trip, db)
        trip_frames = frames(conn, chosen.id, db)
        speeds = channel_readings(conn, chosen.id, SPEED, db)
    finally:
        conn.close()
    out = out or f"trip-{chosen.id}.html"
    kind = os.path.splitext(out)[1].lower()
    if kind not in (".html", ".htm", ".png"):
        raise ConfigError(f"report {out}: name a .html or .png file")
    if not trip_frames:
        raise ConfigError(f"trip {chosen.id} in {db} has no dash frames to report")
    report = build_report(chosen, trip_frames, speeds)
    if kind == ".png":
        write_png(report, out)
    else:
        _write_text(out, report_html(report))
    print(f"keidash: wrote the report of trip {chosen.id} to {os.path.abspath(out)}")
    return 0


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _events_rows(events: tuple[Event, ...], word: str) -> str:
    if not events:
        return f"<p>No {word} events.</p>"
    rows = "".join(f"<tr><td>{format_duration(e.start_t)}</td><td>{e.duration_s:.1f}</td><td>{gear_name(e.gear)}</td>"
                   f"<td>{e.rpm:.0f}</td><td>{'estimated' if e.estimated else 'measured'}</td></tr>"
                   for e in events)
    return (f'<table class="{word}"><tr><th>at</th><th>s</th><th>gear</th><th>rpm</th><th>rpm was</th></tr>'
            f"{rows}</table>")


def report_html(report: Report) -> str:
    """A self-contained HTML page: summary, inline SVG chart, time in gear, events."""
    s = report.summary
    top = f"{s.max_speed_kmh:.0f} km/h ({s.max_speed_kmh / KM_PER_MILE:.0f} mph)" if s.max_speed_kmh is not None else "-"
    total = sum(report.gear_s.values()) or 1.0
    gear_rows = "".join(f'<tr><td>{gear_name(g)}</td><td class="s">{secs:.1f}</td><td>{100 * secs / total:.0f} %</td></tr>'
                        for g, secs in sorted(report.gear_s.items(), key=lambda kv: _gear_order(kv[0])))
    def e(text: str) -> str:
        return html.escape(text, quote=False)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>keidash trip {s.trip.id}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:1em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>
<h1>Trip {s.trip.id}</h1>
<table class="summary">
<tr><th>start (local)</th><td>{e(start_time(s.trip))}{'' if s.trip.clock_confirmed else '<br>' + e(UNCONFIRMED_NOTE)}</td></tr>
<tr><th>duration</th><td>{format_duration(s.duration_s)}</td></tr>
<tr><th>distance</th><td>{s.distance_km:.2f} km ({s.distance_km / KM_PER_MILE:.2f} miles)</td></tr>
<tr><th>top speed</th><td>{top}</td></tr>
<tr><th>profile</th><td>{e(s.trip.profile or '-')}</td></tr>
<tr><th>sources</th><td>{e(s.trip.sources or '-')}</td></tr>
<tr><th>red line</th><td>{report.redline_rpm:.0f} rpm</td></tr>
<tr><th>lugging limit</th><td>{report.lug_rpm:.0f} rpm (3rd and up, from {e(report.limits_from)})</td></tr>
</table>
<h2>Speed, rpm and gear</h2>
{chart_svg(report)}
<h2>Time in each gear</h2>
<table class="gears"><tr><th>gear</th><th>s</th><th>share</th></tr>{gear_rows}</table>
<h2>Over-rev (above {report.redline_rpm:.0f} rpm): {len(report.over_revs)}</h2>
{_events_rows(report.over_revs, 'over-rev')}
<h2>Lugging (below {report.lug_rpm:.0f} rpm in 3rd and up, moving): {len(report.lugging)}</h2>
{_events_rows(report.lugging, 'lugging')}
</body></html>
"""


def _path(points: list[tuple[float, float | None]], x, y) -> str:
    """An SVG path through the points, lifting the pen at a missing value or a gap in the log."""
    parts, pen, last_t = [], "M", None
    for t, v in points:
        if v is None or (last_t is not None and t - last_t > MAX_GAP_S):
            pen = "M"
        if v is not None:
            parts.append(f"{pen}{x(t):.1f},{y(v):.1f}")
            pen = "L"
        last_t = t
    return " ".join(parts)


def _held(points: list[tuple[float, float | None]]) -> list[tuple[float, float | None]]:
    """Points for a step line: each value held until the next point (not across a gap in the log)."""
    out = []
    for (t, v), (t_next, _) in zip(points, points[1:]):
        out.append((t, v))
        if 0 < t_next - t <= MAX_GAP_S:
            out.append((t_next, v))
    return out + points[-1:]


def chart_svg(report: Report, width: int = 960, panel: int = 150) -> str:
    """Speed, rpm and gear over time in three panels sharing the time axis; cues as triangles."""
    fs = report.frames
    t0, t1 = fs[0].t, max(fs[-1].t, fs[0].t + 1.0)
    left, right, gap = 60, 10, 25
    plot_w = width - left - right
    height = 3 * panel + 3 * gap + 20

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    speed_max = max([f.speed_kmh for f in fs if f.speed_kmh is not None] + [10.0]) * 1.1
    rpm_max = max([f.rpm for f in fs if f.rpm is not None] + [report.redline_rpm]) * 1.1
    gear_max = max([f.gear for f in fs if f.gear is not None] + [5])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">']
    panels = []
    for i, (label, top) in enumerate((("km/h", speed_max), ("rpm", rpm_max), ("gear", gear_max + 0.5))):
        y0 = gap + i * (panel + gap)
        panels.append((y0, top))
        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel}" fill="none" stroke="#999"/>')
        if label == "gear":  # every gear on its own line, neutral as N
            for g in range(gear_max + 1):
                gy = y0 + panel - (g + 0.5) / (gear_max + 1) * panel + 4
                out.append(f'<text class="gear-tick" x="{left - 5}" y="{gy:.1f}" text-anchor="end">'
                           f'{gear_name(g)}</text>')
            out.append(f'<text x="{left - 22}" y="{y0 + panel / 2}" text-anchor="end">{label}</text>')
            continue
        out.append(f'<text x="{left - 5}" y="{y0 + 10:.1f}" text-anchor="end">{round(top)}</text>'
                   f'<text x="{left - 5}" y="{y0 + panel:.1f}" text-anchor="end">0</text>'
                   f'<text x="{left - 5}" y="{y0 + panel / 2}" text-anchor="end">{label}</text>')

    def y_of(i: int, lo: float = 0.0):
        y0, top = panels[i]
        return lambda v: y0 + panel - (v - lo) / (top - lo) * panel

    y_speed, y_rpm, y_gear = y_of(0), y_of(1), y_of(2, -0.5)
    for value, colour in ((report.redline_rpm, REDLINE_COLOUR), (report.lug_rpm, LUG_COLOUR)):
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y_rpm(value):.1f}" y2="{y_rpm(value):.1f}" '
                   f'stroke="{colour}" stroke-dasharray="4 3"/>')
    out.append(f'<path class="speed" d="{_path([(f.t, f.speed_kmh) for f in fs], x, y_speed)}" fill="none" '
               f'stroke="{SPEED_COLOUR}"/>')
    out.append(f'<path class="rpm" d="{_path([(f.t, f.rpm) for f in fs], x, y_rpm)}" fill="none" '
               f'stroke="{RPM_COLOUR}"/>')
    out.append(f'<path class="gear" d="{_path(_held([(f.t, f.gear) for f in fs]), x, y_gear)}" fill="none" '
               f'stroke="{GEAR_COLOUR}"/>')
    # the over-rev and lugging events the tables list, one mark each where the rpm was most extreme
    for kind, events, colour in (("over-rev", report.over_revs, REDLINE_COLOUR), ("lugging", report.lugging, LUG_COLOUR)):
        for ev in events:
            out.append(f'<polygon class="event {kind}" points="0,-6 6,0 0,6 -6,0" '
                       f'transform="translate({x(ev.start_t):.1f},{y_rpm(min(ev.rpm, rpm_max)):.1f})" fill="{colour}" '
                       f'stroke="#fff"><title>{kind} at {format_duration(ev.start_t)}: {ev.rpm:.0f} rpm</title></polygon>')
    # the cues, in the gear panel (where the shift they ask for shows): up at its top, down at its foot
    for t, cue in report.cues:
        up = cue.upper() == "UP"
        cx, cy = x(t), panels[2][0] + (6 if up else panel - 6)
        tip = "0,-6 5,4 -5,4" if up else "0,6 5,-4 -5,-4"
        out.append(f'<polygon class="cue cue-{html.escape(cue.lower())}" points="{tip}" '
                   f'transform="translate({cx:.1f},{cy:.1f})" fill="{UP_COLOUR if up else DOWN_COLOUR}">'
                   f'<title>{html.escape(cue)} at {t:.1f} s</title></polygon>')
    out.append(_legend(left, 12))
    axis_y = height - 5
    for k in range(6):
        t = t0 + k * (t1 - t0) / 5
        anchor = "start" if k == 0 else "end" if k == 5 else "middle"
        out.append(f'<text x="{x(t):.1f}" y="{axis_y}" text-anchor="{anchor}">{format_duration(t)}</text>')
    out.append("</svg>")
    return "\n".join(out)


LEGEND = (("line", SPEED_COLOUR, "speed"), ("line", RPM_COLOUR, "rpm"), ("line", GEAR_COLOUR, "gear"),
          ("dash", REDLINE_COLOUR, "red line"), ("dash", LUG_COLOUR, "lugging limit"),
          ("diamond", REDLINE_COLOUR, "over-rev"), ("diamond", LUG_COLOUR, "lugging"),
          ("up", UP_COLOUR, "shift up cue"), ("down", DOWN_COLOUR, "shift down cue"))


def _legend(x0: float, y: float) -> str:
    """One row naming every line and mark of the chart."""
    parts, x = ['<g class="legend">'], x0
    for kind, colour, words in LEGEND:
        if kind in ("line", "dash"):
            dash = ' stroke-dasharray="4 3"' if kind == "dash" else ""
            parts.append(f'<line x1="{x}" x2="{x + 18}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="2"{dash}/>')
        else:
            points = {"diamond": "0,-5 5,0 0,5 -5,0", "up": "0,-5 5,4 -5,4", "down": "0,5 5,-4 -5,-4"}[kind]
            parts.append(f'<polygon points="{points}" transform="translate({x + 9},{y - 4})" fill="{colour}"/>')
        parts.append(f'<text x="{x + 22}" y="{y}">{words}</text>')
        x += 30 + 6 * len(words)
    parts.append("</g>")
    return "".join(parts)


def png_title(report: Report) -> str:
    """The PNG's title: the trip, its start (marked as ``keidash trips`` marks it, with the note under it when the
    date was not confirmed), its figures and time in gear. Also the PNG's Title text, where it can be read back."""
    s = report.summary
    gears = ", ".join(f"{gear_name(g)} {secs:.0f} s" for g, secs in
                      sorted(report.gear_s.items(), key=lambda kv: _gear_order(kv[0])))
    top = f"{s.max_speed_kmh:.0f} km/h" if s.max_speed_kmh is not None else "-"
    return (f"trip {s.trip.id}, {start_time(s.trip)}: {s.distance_km:.2f} km, top {top}, "
            f"{len(report.over_revs)} over-rev, {len(report.lugging)} lugging\ntime in gear: {gears}"
            + ("" if s.trip.clock_confirmed else f"\n{UNCONFIRMED_NOTE}"))


def write_png(report: Report, out: str) -> None:
    """The report's chart and figures as a PNG; needs matplotlib (the ``report`` extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(f"PNG reports need matplotlib: {INSTALL_REPORT} (or write .html, which needs "
                          f"nothing extra)") from None
    fs = report.frames
    t = [f.t for f in fs]
    fig, (ax_speed, ax_rpm, ax_gear) = plt.subplots(3, 1, sharex=True, figsize=(13, 8))
    fig.subplots_adjust(right=0.8)  # the legends to the right of the panels, clear of the lines
    ax_speed.plot(t, [f.speed_kmh if f.speed_kmh is not None else float("nan") for f in fs], color=SPEED_COLOUR,
                  label="speed")
    ax_speed.set_ylabel("km/h")
    ax_speed.set_ylim(bottom=0)  # from a standstill: a steady 40 km/h must not look like a rally
    ax_speed.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_rpm.plot(t, [f.rpm if f.rpm is not None else float("nan") for f in fs], color=RPM_COLOUR, label="rpm")
    ax_rpm.axhline(report.redline_rpm, color=REDLINE_COLOUR, linestyle="--", linewidth=0.8, label="red line")
    ax_rpm.axhline(report.lug_rpm, color=LUG_COLOUR, linestyle="--", linewidth=0.8, label="lugging limit")
    for events, colour, words in ((report.over_revs, REDLINE_COLOUR, "over-rev"),
                                  (report.lugging, LUG_COLOUR, "lugging")):
        if events:
            ax_rpm.plot([e.start_t for e in events], [e.rpm for e in events], "D", color=colour, label=words)
    ax_rpm.set_ylabel("rpm")
    ax_rpm.set_ylim(0, max(report.redline_rpm * 1.1, ax_rpm.get_ylim()[1]))
    ax_rpm.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_gear.step(t, [f.gear if f.gear is not None else float("nan") for f in fs], where="post", color=GEAR_COLOUR,
                 label="gear")
    for cue, marker, colour, words in (("UP", "^", UP_COLOUR, "shift up cue"), ("DOWN", "v", DOWN_COLOUR, "shift down cue")):
        when = [w for w, c in report.cues if c.upper() == cue]
        if when:
            ax_gear.plot(when, [-0.3 if cue == "DOWN" else 0.3] * len(when), marker, color=colour, label=words,
                         linestyle="none")
    ax_gear.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_gear.set_ylabel("gear")
    top_gear = max([f.gear for f in fs if f.gear is not None] + [5])
    ax_gear.set_ylim(-0.5, top_gear + 0.5)  # whole gears, N (0) to top, whatever the trip used
    ax_gear.set_yticks(range(top_gear + 1), ["N"] + [str(g) for g in range(1, top_gear + 1)])
    ax_gear.set_xlabel("s since the trip started")
    title = png_title(report)
    fig.suptitle(title, fontsize=10)
    try:
        fig.savefig(out, dpi=100, metadata={"Title": title})
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
