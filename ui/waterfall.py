"""A run's spans as a waterfall chart: one bar per span on a shared time axis, with the TTFT marked.

Drawn as SVG by us, so it needs no script and no network, and every label is escaped: span names
and models come from outside.
"""

from __future__ import annotations

from html import escape

from chat.spans import Span

ROW_PX, LABEL_PX, WIDTH_PX, AXIS_PX = 22, 230, 900, 24
COLOURS = {"run": "#6366f1", "agent": "#8b5cf6", "node": "#0ea5e9", "tool": "#f59e0b", "model": "#10b981"}
PARALLEL_BAND = "#8b5cf61a"  # behind siblings that ran at the same time (the team's agents side by side)
ERROR_COLOUR = "#ef4444"


def waterfall_svg(spans: list[Span], ttft_ns: int | None = None) -> str:
    """Return the chart as an <svg>; `ttft_ns` (Unix ns) draws the first token's marker."""
    if not spans:
        return '<div class="gb-empty">This run has no spans.</div>'
    start = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - start, 1)
    scale = (WIDTH_PX - LABEL_PX - 70) / total
    depth = _depths(spans)
    ordered = _tree_order(spans)
    parallel = _parallel(spans)
    height = AXIS_PX + ROW_PX * len(ordered) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH_PX} {height}" width="100%" '
             f'role="img" aria-label="Waterfall of the run\'s spans" class="gb-waterfall" '
             f'font-family="sans-serif" font-size="11">']
    for tick in _ticks(total):
        x = LABEL_PX + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{AXIS_PX - 4}" x2="{x:.1f}" y2="{height}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{AXIS_PX - 8}" text-anchor="middle" fill="#888">{tick / 1e6:g} ms</text>')
    for row, span in enumerate(ordered):
        y = AXIS_PX + row * ROW_PX
        x = LABEL_PX + (span.start_ns - start) * scale
        width = max((span.end_ns - span.start_ns) * scale, 2)
        colour = ERROR_COLOUR if span.status == "error" else COLOURS.get(span.kind, "#999")
        side_by_side = span.span_id in parallel
        mark = "∥ " if side_by_side else ""
        label = escape(("  " * depth[span.span_id]) + mark + f"{span.kind}: {span.name}"[:40])
        duration = (span.end_ns - span.start_ns) / 1e6
        if side_by_side:
            parts.append(f'<rect class="gb-parallel" x="0" y="{y}" width="{WIDTH_PX}" height="{ROW_PX}" '
                         f'fill="{PARALLEL_BAND}"/>')
        parts.append(
            f'<g class="gb-span" data-span="{escape(span.span_id)}" data-parallel="{int(side_by_side)}">'
            f'<title>{escape(span.kind)} {escape(span.name)}: {duration:.1f} ms'
            f'{" (side by side with another)" if side_by_side else ""}</title>'
            f'<text x="4" y="{y + 15}" xml:space="preserve" fill="currentColor">{label}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW_PX - 8}" rx="2" fill="{colour}"/>'
            f'<text x="{x + width + 4:.1f}" y="{y + 15}" fill="#666">{duration:.1f} ms</text></g>')
    if ttft_ns is not None and start <= ttft_ns:
        x = LABEL_PX + (ttft_ns - start) * scale
        parts.append(f'<line class="gb-ttft" x1="{x:.1f}" y1="{AXIS_PX - 4}" x2="{x:.1f}" y2="{height}" '
                     f'stroke="#dc2626" stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{height - 4}" '
                     f'fill="#dc2626">first token</text>')
    return "".join(parts) + "</svg>"


def _parallel(spans: list[Span]) -> set[str]:
    """The spans that overlap a sibling in time: branches that ran side by side (the team's agents)."""
    by_parent: dict[str, list[Span]] = {}
    for span in spans:
        if span.kind == "agent":
            by_parent.setdefault(span.parent_span_id, []).append(span)
    overlapping: set[str] = set()
    for siblings in by_parent.values():
        for a in siblings:
            for b in siblings:
                if a is not b and a.start_ns < b.end_ns and b.start_ns < a.end_ns:
                    overlapping.add(a.span_id)
    return overlapping


def _depths(spans: list[Span]) -> dict[str, int]:
    parents = {s.span_id: s.parent_span_id for s in spans}
    depths: dict[str, int] = {}
    for span in spans:
        depth, parent, seen = 0, span.parent_span_id, set()
        while parent and parent in parents and parent not in seen:
            seen.add(parent)
            depth, parent = depth + 1, parents[parent]
        depths[span.span_id] = depth
    return depths


def _tree_order(spans: list[Span]) -> list[Span]:
    """Each span right after its parent, children by start time: the way a waterfall reads."""
    children: dict[str, list[Span]] = {}
    ids = {s.span_id for s in spans}
    for span in sorted(spans, key=lambda s: s.start_ns):
        children.setdefault(span.parent_span_id if span.parent_span_id in ids else "", []).append(span)
    ordered: list[Span] = []

    def visit(parent: str) -> None:
        for child in children.get(parent, []):
            ordered.append(child)
            visit(child.span_id)

    visit("")
    return ordered


def _ticks(total_ns: int) -> list[int]:
    step = 10 ** max(len(str(total_ns // 5)) - 1, 0)
    for factor in (1, 2, 5, 10):
        if total_ns / (step * factor) <= 6:
            step *= factor
            break
    return list(range(0, total_ns + 1, step))
