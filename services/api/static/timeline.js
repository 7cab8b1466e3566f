// The result timeline: one lane per speaker, one button per segment, an overlap row, and a playhead.

const PALETTE = [
  "#2563eb", "#d9480f", "#2b8a3e", "#9c36b5", "#c2255c", "#0c8599",
  "#e67700", "#5f3dc4", "#087f5b", "#a61e4d", "#1864ab", "#5c940d",
];

/** A stable colour per speaker: the speaker's rank in the sorted speaker list picks a palette entry. */
export function colourOf(speakers, speaker) {
  const i = speakers.indexOf(speaker);
  if (i < 0) return "#868e96";
  if (i < PALETTE.length) return PALETTE[i];
  return `hsl(${(i * 137.5) % 360} 60% 42%)`; // beyond the palette: golden-angle hues stay distinct
}

/** 83.4 → "1:23" (talk times and the axis). */
export function formatClock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** 1.234 → "1.2" (segment labels, in seconds). */
export const formatSeconds = (seconds) => (Math.round(seconds * 10) / 10).toFixed(1);

/**
 * Where two or more different speakers talk at once: merged [start, end] intervals.
 * A sweep over the segments' boundaries counting how many distinct speakers are active.
 */
export function overlaps(segments) {
  const points = [];
  for (const seg of segments) {
    if (seg.end > seg.start) {
      points.push([seg.start, 1, seg.speaker], [seg.end, -1, seg.speaker]);
    }
  }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // ends before starts at the same instant: touching is not overlap
  const active = new Map();
  const out = [];
  let openedAt = null;
  for (const [t, delta, speaker] of points) {
    const n = (active.get(speaker) || 0) + delta;
    if (n > 0) active.set(speaker, n);
    else active.delete(speaker);
    const many = active.size >= 2;
    if (many && openedAt === null) openedAt = t;
    if (!many && openedAt !== null) {
      if (t > openedAt) {
        const last = out[out.length - 1];
        if (last && last.end >= openedAt) last.end = t;
        else out.push({ start: openedAt, end: t });
      }
      openedAt = null;
    }
  }
  return out;
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") {
      // Custom properties (--speaker) need setProperty; plain ones are assigned.
      for (const [prop, value] of Object.entries(v)) {
        if (prop.startsWith("--")) node.style.setProperty(prop, value);
        else node.style[prop] = value;
      }
    }
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

const pct = (x) => `${(x * 100).toFixed(4)}%`;

function niceStep(duration) {
  const target = duration / 8;
  for (const step of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]) if (step >= target) return step;
  return 7200;
}

/**
 * Renders the timeline into container and returns {speakers, setTime(t), highlight(t)}.
 * onSeek(t) runs when a segment is activated (click, Enter or Space: segments are buttons).
 */
export function renderTimeline(container, { segments, duration, speakers, onSeek }) {
  container.replaceChildren();
  const total = Math.max(duration || 0, ...segments.map((s) => s.end), 0.001);
  const grid = el("div", { class: "timeline-grid" });

  const axis = el("div", { class: "axis", "aria-hidden": "true" });
  const step = niceStep(total);
  for (let t = 0; t <= total + 1e-6; t += step) {
    axis.append(el("span", { class: "tick", style: { left: pct(t / total) }, text: formatClock(t) }));
  }
  grid.append(el("div", { class: "lane-label axis-label", "aria-hidden": "true" }), axis);

  const buttons = [];
  for (const speaker of speakers) {
    const colour = colourOf(speakers, speaker);
    const lane = el("div", {
      class: "lane",
      "data-speaker": speaker,
      role: "group",
      "aria-label": `${speaker} segments`,
      style: { "--speaker": colour },
    });
    for (const seg of segments.filter((s) => s.speaker === speaker)) {
      const label = `${speaker} from ${formatSeconds(seg.start)} s to ${formatSeconds(seg.end)} s`;
      const button = el("button", {
        type: "button",
        class: "segment",
        "data-speaker": speaker,
        "data-start": String(seg.start),
        "data-end": String(seg.end),
        "aria-label": label,
        title: label,
        style: { left: pct(seg.start / total), width: pct((seg.end - seg.start) / total) },
      });
      button.addEventListener("click", () => onSeek(seg.start));
      lane.append(button);
      buttons.push(button);
    }
    const name = el("div", { class: "lane-label" }, [
      el("span", { class: "swatch", style: { background: colour }, "aria-hidden": "true" }),
      el("span", { text: speaker }),
    ]);
    grid.append(name, lane);
  }

  const bands = overlaps(segments);
  const overlapRow = el("div", { class: "overlap-row", role: "group", "aria-label": "Overlapping speech" });
  for (const band of bands) {
    overlapRow.append(
      el("div", {
        class: "overlap",
        title: `Overlap from ${formatSeconds(band.start)} s to ${formatSeconds(band.end)} s`,
        style: { left: pct(band.start / total), width: pct((band.end - band.start) / total) },
      }),
    );
  }
  grid.append(el("div", { class: "lane-label overlap-label", text: bands.length ? "Overlap" : "No overlap" }), overlapRow);

  // The playhead lives in an overlay over the tracks column only, so 0 % is the timeline's start.
  const overlay = el("div", { class: "tracks-overlay", "aria-hidden": "true" });
  const playhead = el("div", { id: "playhead", class: "playhead", style: { left: "0%" } });
  overlay.append(playhead);
  container.append(grid, overlay);

  // Arrow keys walk a lane's segments (Left/Right) or jump to the nearest segment of the lane above/below
  // (Up/Down); Tab still goes through every segment in time order per lane.
  grid.addEventListener("keydown", (e) => {
    const current = e.target.closest?.(".segment");
    if (!current || !["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"].includes(e.key)) return;
    const lane = current.parentElement;
    const own = [...lane.querySelectorAll(".segment")];
    const i = own.indexOf(current);
    let next = null;
    if (e.key === "ArrowLeft") next = own[i - 1];
    else if (e.key === "ArrowRight") next = own[i + 1];
    else if (e.key === "Home") next = own[0];
    else if (e.key === "End") next = own[own.length - 1];
    else {
      const lanes = [...grid.querySelectorAll(".lane")];
      const other = lanes[lanes.indexOf(lane) + (e.key === "ArrowUp" ? -1 : 1)];
      const t = Number(current.dataset.start);
      const candidates = other ? [...other.querySelectorAll(".segment")] : [];
      next = candidates.reduce(
        (best, b) => (!best || Math.abs(Number(b.dataset.start) - t) < Math.abs(Number(best.dataset.start) - t) ? b : best),
        null,
      );
    }
    if (next) {
      e.preventDefault();
      next.focus();
    }
  });

  let lastActive = [];
  return {
    total,
    setTime(t) {
      playhead.style.left = pct(Math.min(Math.max(t / total, 0), 1));
      const now = buttons.filter((b) => Number(b.dataset.start) <= t && t < Number(b.dataset.end));
      if (now.length !== lastActive.length || now.some((b, i) => b !== lastActive[i])) {
        for (const b of lastActive) b.classList.remove("active");
        for (const b of now) b.classList.add("active");
        lastActive = now;
      }
    },
  };
}
