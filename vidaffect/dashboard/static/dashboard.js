// vidaffect dashboard: the streams list, or one stream's video, tracks, timeline and stage counters.
"use strict";
const COLOURS = {angry: "#dc2828", disgust: "#288c28", fear: "#963caa", happy: "#fac828",
                 sad: "#1e6ec8", surprise: "#fa8c1e", neutral: "#bebebe"};
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
const colour = (label) => COLOURS[label] || "#50dce6";
const text = (v) => (v === null || v === undefined ? "-" : String(v));

function cell(row, value) { const td = row.insertCell(); td.textContent = text(value); return td; }

function labelCell(row, label) {
  const td = row.insertCell();
  if (!label) { td.textContent = "-"; return; }
  const s = document.createElement("span"); s.className = "swatch"; s.style.background = colour(label);
  td.append(s, label);
}

async function showIndex() {
  document.getElementById("index").hidden = false;
  const list = document.getElementById("stream-list");
  const render = async () => {
    const streams = await (await fetch("/api/streams" + q)).json();
    list.replaceChildren(...streams.map((s) => {
      const li = document.createElement("li"); const a = document.createElement("a");
      a.href = "/streams/" + encodeURIComponent(s.stream) + q; a.textContent = s.stream;
      li.append(a, ` (${s.faces.length} faces, ${s.pipeline}${s.ended ? ", ended" : ""})`); return li;
    }));
  };
  await render(); setInterval(render, 2000);
}

function showStream(stream) {
  document.getElementById("stream").hidden = false;
  document.getElementById("title").textContent = stream;
  document.getElementById("video").src = "/streams/" + encodeURIComponent(stream) + "/mjpeg" + q;
  const base = "/api/streams/" + encodeURIComponent(stream);
  const source = new EventSource(base + "/sse" + q);
  source.onmessage = (msg) => {
    const s = JSON.parse(msg.data);
    document.getElementById("mood").textContent = s.mood.label ? `${s.mood.label} (mean probability ${Math.round(s.mood.score * 100)}% over ${s.mood.faces} face${s.mood.faces === 1 ? "" : "s"})` : "-";
    document.getElementById("fps").textContent = `${s.preview_fps} fps${s.ended ? ", ended" : ""}`;
    const body = document.querySelector("#tracks tbody"); body.replaceChildren();
    for (const f of s.faces) {
      const r = body.insertRow(); cell(r, f.track_id === null ? "-" : "#" + f.track_id);
      labelCell(r, f.smoothed_label); cell(r, f.smoothed_score); labelCell(r, f.label);
    }
    const stats = document.querySelector("#stats tbody"); stats.replaceChildren();
    for (const [name, m] of Object.entries(s.stats)) {
      const r = stats.insertRow();
      [name, m.frames_in, m.frames_out, m.dropped, m.lost, m.latency_p50_ms, m.latency_p95_ms].forEach((v) => cell(r, v));
    }
  };
  let plot = null;
  const drawTimeline = async () => {
    const t = await (await fetch(base + "/timeline" + q)).json();
    if (!t.t.length) return;
    const data = [t.t, ...t.labels.map((l) => t.shares[l])];
    if (plot === null || plot.series.length !== t.labels.length + 1) {
      if (plot) plot.destroy();
      plot = new uPlot({
        width: Math.min(900, window.innerWidth - 60), height: 220,
        scales: {y: {range: [0, 1]}},
        series: [{}, ...t.labels.map((l) => ({label: l, stroke: colour(l), width: 2}))],
        axes: [{}, {values: (u, v) => v.map((x) => Math.round(x * 100) + "%")}],
      }, data, document.getElementById("timeline"));
    } else {
      plot.setData(data);
    }
  };
  drawTimeline(); setInterval(drawTimeline, 2000);
}

const m = location.pathname.match(/^\/streams\/([^/]+)$/);
if (m) showStream(decodeURIComponent(m[1])); else showIndex();
