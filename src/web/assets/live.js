'use strict';
// The live view: positions and events arrive as server-sent events (/events); commands go to
// /command as the OSC control messages in JSON; every page shows every acknowledgement.

const token = new URLSearchParams(location.search).get('token');
const withToken = (u) => token ? u + (u.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : u;
const $ = (id) => document.getElementById(id);
const nowMs = () => performance.timeOrigin + performance.now();
const clamp = (x, a, b) => Math.min(Math.max(x, a), b);

let score = null;
let pos = null;
let state = 'connecting';
let dropped = 0;
let paused = false;
const fired = [], relocs = [], acks = [], themes = [], ambiguities = [];
const seen = new Set();
let dirty = true;
// Latency, ms: from the message leaving the follower's output thread (t_ms) to the page
// drawn with it, and to its arrival; from the audio captured (cap_ms) to the page drawn.
const latency = { drawn: [], arrived: [], captureDrawn: [], lastFrame: -1 };
const MAX_SAMPLES = 20000;

function fmtTime(t) {
  if (t == null || !isFinite(t)) return '–';
  const m = Math.floor(t / 60), s = t - 60 * m;
  return m + ':' + (s < 10 ? '0' : '') + s.toFixed(1);
}
function push(list, x, cap) { list.push(x); if (list.length > cap) list.shift(); }

function barAt(t) {
  const bars = score.bars;
  if (!bars.length) return null;
  let lo = 0, hi = bars.length - 1;
  if (t < bars[0][1]) return bars[0];
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (bars[mid][1] <= t + 1e-6) lo = mid; else hi = mid - 1; }
  return bars[lo];
}
function qpmAt(t) {
  const ts = score.tempos;
  if (!ts || !ts.length) return null;
  let q = ts[0][1];
  for (const [s, v] of ts) { if (s <= t) q = v; else break; }
  return q;
}

// ---- the event stream ---------------------------------------------------------------
function onMessage(ev) {
  const m = JSON.parse(ev.data);
  const arrived = nowMs();
  switch (m.type) {
    case 'pos':
      if (m.t_ms) push(latency.arrived, arrived - m.t_ms, MAX_SAMPLES);
      pos = m;
      showKeyAndTuning(m);
      if (m.dropped != null) dropped = m.dropped;
      if (state !== 'ended' && !paused) state = 'following';
      break;
    case 'status':
      dropped = m.dropped;
      if (m.kind === 'end') state = 'ended';
      else if (m.kind === 'start' && !paused) state = 'following';
      break;
    case 'reloc': if (!seen.has(ev.data)) { seen.add(ev.data); push(relocs, m, 50); } break;
    case 'ambiguous': if (!seen.has(ev.data)) { seen.add(ev.data); push(ambiguities, m, 20); } break;
    case 'cue': if (!seen.has(ev.data)) { seen.add(ev.data); push(fired, m, 50); } break;
    case 'theme': if (!seen.has(ev.data)) { seen.add(ev.data); push(themes, m, 20); } break;
    case 'ack':
      if (!seen.has(ev.data)) {
        seen.add(ev.data);
        push(acks, m, 20);
        if (m.addr === '/scorefollow/ack') {
          if (m.args[0] === '/scorefollow/stop') paused = true;
          if (m.args[0] === '/scorefollow/start') paused = false;
          if (m.args[0] === '/scorefollow/quit') state = 'quitting';
        }
      }
      break;
  }
  if (m.type !== 'pos' && m.type !== 'status' && score) renderLists();
  dirty = true;
}

function connect() {
  const es = new EventSource(withToken('events'));
  es.onmessage = onMessage;
  es.onopen = () => { if (state === 'connecting' || state === 'connection lost') state = 'connected'; dirty = true; };
  es.onerror = () => { if (state !== 'ended') state = 'connection lost'; dirty = true; };
}

// ---- commands ----------------------------------------------------------------------------
async function send(addr, args) {
  try {
    const r = await fetch(withToken('command'), {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ addr, args: args || [] }),
    });
    if (!r.ok) throw new Error(r.status + ' ' + (await r.text()));
    return await r.json();
  } catch (e) {
    push(acks, { addr: '/scorefollow/error', args: ['not sent: ' + e.message], t_ms: nowMs() }, 20);
    renderLists();
    return null;
  }
}

// ---- drawing -----------------------------------------------------------------------------
const WINDOW_S = 14, RULER = 24;
function drawRoll() {
  const cv = $('roll');
  const w = cv.clientWidth, h = 320, dpr = window.devicePixelRatio || 1;
  if (cv.width !== Math.round(w * dpr)) { cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr); cv.style.height = h + 'px'; }
  const g = cv.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const c = pos && pos.score != null ? pos.score : 0;
  const heard = pos && pos.heard != null ? pos.heard : c;
  const t0 = c - 0.3 * WINDOW_S, pxs = w / WINDOW_S;
  const X = (t) => (t - t0) * pxs;
  cv.dataset.t0 = t0.toFixed(4);
  cv.dataset.pxPerS = pxs.toFixed(4);
  // Pitch range.
  let lo = 127, hi = 0;
  for (const n of score.notes) { lo = Math.min(lo, n[2]); hi = Math.max(hi, n[2]); }
  if (lo > hi) { lo = 48; hi = 84; }
  lo -= 2; hi += 2;
  const rowH = (h - RULER - 6) / (hi - lo + 1);
  const Y = (p) => RULER + (hi - p) * rowH;
  // Bars.
  g.font = '12px system-ui, sans-serif'; g.textBaseline = 'middle';
  const bars = score.bars.length ? score.bars : [];
  for (const [n, t] of bars) {
    const x = X(t);
    if (x < -40 || x > w + 40) continue;
    g.strokeStyle = '#3a4350';
    g.beginPath(); g.moveTo(x + 0.5, RULER - 6); g.lineTo(x + 0.5, h); g.stroke();
    g.fillStyle = '#8c96a3'; g.fillText(String(n), x + 3, 10);
  }
  if (!bars.length) {
    for (let t = Math.ceil(t0); t < t0 + WINDOW_S; t += 1) {
      const x = X(t);
      g.strokeStyle = t % 5 === 0 ? '#3a4350' : '#252b33';
      g.beginPath(); g.moveTo(x + 0.5, RULER - 6); g.lineTo(x + 0.5, h); g.stroke();
      if (t % 5 === 0) { g.fillStyle = '#8c96a3'; g.fillText(t + ' s', x + 3, 10); }
    }
  }
  // Notes: played dimmed, to come bright.
  for (const [on, off, p] of score.notes) {
    if (off < t0 || on > t0 + WINDOW_S) continue;
    g.fillStyle = on < heard ? '#2f5b74' : '#5cc8ff';
    g.fillRect(X(on), Y(p) + 1, Math.max(2, (off - on) * pxs - 1), Math.max(2, rowH - 1));
  }
  // Cues and page turns.
  const firedIds = new Set(fired.map((f) => f.id));
  for (const cue of score.cues) {
    const x = X(cue.score_s);
    if (x < -60 || x > w + 10) continue;
    g.strokeStyle = cue.page ? '#b28dff' : (firedIds.has(cue.id) ? '#6b5a3a' : '#ffb347');
    g.setLineDash([4, 3]);
    g.beginPath(); g.moveTo(x + 0.5, RULER); g.lineTo(x + 0.5, h); g.stroke();
    g.setLineDash([]);
    g.fillStyle = g.strokeStyle; g.fillText(cue.id, x + 3, RULER + 8);
  }
  // Relocations: where the follower jumped to.
  for (const r of relocs) {
    if (r.to == null) continue;
    const x = X(r.to);
    g.fillStyle = '#ff5c5c';
    g.beginPath(); g.moveTo(x - 6, RULER - 2); g.lineTo(x + 6, RULER - 2); g.lineTo(x, RULER + 8); g.fill();
  }
  // The latest ambiguity: every place that fits, hollow.
  const amb = ambiguities[ambiguities.length - 1];
  if (amb) {
    g.strokeStyle = '#ffb347';
    for (const c of amb.candidates) {
      if (c.score == null) continue;
      const x = X(c.score);
      g.beginPath(); g.moveTo(x - 6, RULER - 2); g.lineTo(x + 6, RULER - 2); g.lineTo(x, RULER + 8); g.closePath(); g.stroke();
    }
  }
  if (!pos) return;
  // The spread as a band around the reported position.
  const sp = pos.spread || 0;
  g.fillStyle = 'rgba(92, 200, 255, 0.16)';
  g.fillRect(X(c - sp), RULER, Math.max(2, 2 * sp * pxs), h - RULER);
  // Heard (yellow) and reported (white) positions.
  g.strokeStyle = '#ffd166'; g.lineWidth = 2;
  g.beginPath(); g.moveTo(X(heard), RULER); g.lineTo(X(heard), h); g.stroke();
  g.strokeStyle = '#ffffff';
  g.beginPath(); g.moveTo(X(c), RULER - 4); g.lineTo(X(c), h); g.stroke();
  g.lineWidth = 1;
}

function list(el, items) {
  el.replaceChildren(...items.map(([a, b, cls]) => {
    const li = document.createElement('li');
    const s1 = document.createElement('span'); s1.textContent = a;
    const s2 = document.createElement('span'); s2.textContent = b;
    if (cls) li.className = cls;
    li.append(s1, s2);
    return li;
  }));
}

// Lists change rarely: drawn when their messages come, so a page in a background tab (which
// gets no animation frames) still shows every cue and acknowledgement.
function renderLists() {
  list($('fired-cues'), fired.slice(-8).reverse().map((f) => [
    f.id, f.manual ? 'by hand' : (f.skipped ? 'skipped over, ' : '') + 'at ' + fmtTime(f.perf) + (f.at != null && barAt(f.at) ? ' (bar ' + barAt(f.at)[0] + ')' : ''),
  ]));
  const jumps = relocs.map((r) => ({ perf: r.perf, row: [
    'at ' + fmtTime(r.perf), fmtTime(r.from) + ' → ' + fmtTime(r.to) + (r.to != null && barAt(r.to) ? ' (bar ' + barAt(r.to)[0] + ')' : ''),
  ] }));
  const doubts = ambiguities.map((a) => ({ perf: a.perf, row: [
    'at ' + fmtTime(a.perf), 'ambiguous: ' + a.candidates.map((c) => c.bar > 0 ? 'bar ' + c.bar : fmtTime(c.score)).join(' or '), 'ambiguous',
  ] }));
  list($('relocations'), jumps.concat(doubts).sort((a, b) => b.perf - a.perf).slice(0, 6).map((j) => j.row));
  list($('themes'), themes.slice(-5).reverse().map((t) => [t.id, fmtTime(t.start) + '–' + fmtTime(t.end)]));
  list($('acks'), acks.slice(-8).reverse().map((a) => a.addr === '/scorefollow/ack'
    ? ['✓ ' + a.args.join(' '), new Date(a.t_ms).toLocaleTimeString(), 'ack-ok']
    : ['✗ ' + (a.args[0] || ''), new Date(a.t_ms).toLocaleTimeString(), 'ack-err']));
}

function render() {
  const st = $('state');
  st.textContent = paused && state === 'following' ? 'paused' : state;
  st.className = 'badge ' + ({ following: 'ok', connected: 'ok', ended: 'bad', 'connection lost': 'bad', quitting: 'bad' }[state] || 'warn');
  if (paused && state === 'following') st.className = 'badge warn';
  if (pos) {
    $('bar').textContent = pos.bar > 0 || score.bars.length ? String(pos.bar) : '–';
    $('bar').dataset.bar = pos.bar;
    $('score-time').textContent = 'score ' + fmtTime(pos.score);
    $('score-time').dataset.score = pos.score;
    $('beat').textContent = pos.bib != null ? pos.bib.toFixed(1) : '–';
    $('heard').textContent = 'heard ' + fmtTime(pos.heard);
    $('tempo').textContent = pos.tempo != null ? '×' + pos.tempo.toFixed(2) : '–';
    const q = qpmAt(pos.score);
    $('qpm').textContent = q != null && pos.tempo != null ? Math.round(q * pos.tempo) + ' quarters / min' : '';
    $('confidence').textContent = pos.conf != null ? Math.round(100 * pos.conf) + ' %' : '–';
    $('spread').textContent = pos.spread != null ? '± ' + pos.spread.toFixed(2) + ' s' : '';
    const uncertain = (pos.conf != null && pos.conf < 0.3) || (pos.spread != null && pos.spread > 1.0);
    $('certainty').hidden = !uncertain;
    $('certainty').className = 'badge warn';
    $('perf').textContent = fmtTime(pos.perf);
    if (pos.level_db != null) {
      $('level').textContent = pos.level_db.toFixed(1) + ' dBFS';
      $('level-bar').style.width = (100 * clamp((pos.level_db + 60) / 60, 0, 1)) + '%';
    } else if (pos.level_db === null) {
      $('level').textContent = 'silence';
      $('level-bar').style.width = '0';
    }
  }
  $('dropped').textContent = String(dropped);
  // Cues to come, with a countdown at the current tempo.
  const heard = pos && pos.heard != null ? pos.heard : 0;
  const tempo = pos && pos.tempo > 0.05 ? pos.tempo : 1;
  const next = score.cues.filter((c) => c.score_s - c.lead_s > heard).sort((a, b) => a.score_s - b.score_s).slice(0, 5);
  list($('next-cues'), next.map((c) => [c.id, 'in ' + ((c.score_s - c.lead_s - heard) / tempo).toFixed(1) + ' s']));
  if (next.length) {
    $('next-cue').textContent = ((next[0].score_s - next[0].lead_s - heard) / tempo).toFixed(1) + ' s';
    $('next-cue-id').textContent = next[0].id;
  } else { $('next-cue').textContent = '–'; $('next-cue-id').textContent = 'no more cues'; }
  drawRoll();
}

function latencyStats(xs) {
  if (!xs.length) return { n: 0 };
  const s = xs.slice().sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.round(p / 100 * (s.length - 1)))];
  return { n: s.length, p50: q(50), p90: q(90), p99: q(99), max: s[s.length - 1] };
}

function frame() {
  if (dirty && score) {
    dirty = false;
    render();
    if (pos && pos.frame !== latency.lastFrame) {
      latency.lastFrame = pos.frame;
      const t = nowMs();
      if (pos.t_ms) push(latency.drawn, t - pos.t_ms, MAX_SAMPLES);
      if (pos.cap_ms) push(latency.captureDrawn, t - pos.cap_ms, MAX_SAMPLES);
      if (latency.drawn.length % 25 === 0) {
        const l = latencyStats(latency.drawn);
        $('latency').textContent = 'output → page p50 ' + l.p50.toFixed(1) + ' ms, p99 ' + l.p99.toFixed(1) + ' ms';
      }
    }
  }
  requestAnimationFrame(frame);
}

function tuningOfReference() {
  return score && score.kind === 'recording'
    ? '; reference ' + score.info.reference_tuning_cents.toFixed(1) + ' cents' : '';
}

// What the follower assumes now: the key the trial found (or a relocation changed to) and the
// tuning the extractor uses, with what the user asked for.
function showKeyAndTuning(m) {
  if (!score || m.key == null) return;
  const asked = score.info.transpose === 'auto' ? 'auto' : 'fixed';
  const key = m.key < 0 ? 'detecting (first seconds)'
    : (m.key === 0 ? 'as written' : '+' + m.key + ' semitones') + ' (' + asked + ')';
  if ($('key').textContent !== key) $('key').textContent = key;
  if (m.tuning != null) {
    const t = (m.tuning >= 0 ? '+' : '') + m.tuning.toFixed(1) + ' cents ('
      + (score.info.tuning === 'auto' ? 'tracked' : 'fixed') + ')' + tuningOfReference();
    if ($('tuning').textContent !== t) $('tuning').textContent = t;
  }
}

async function init() {
  const r = await fetch(withToken('score.json'));
  if (!r.ok) { $('state').textContent = 'cannot load the score: ' + r.status; return; }
  score = await r.json();
  $('piece').textContent = score.name;
  const info = score.info;
  $('aligner').textContent = info.aligner;
  $('input').textContent = info.input;
  $('key').textContent = info.transpose === 'auto' ? 'detected from the first seconds' : info.transpose;
  $('tuning').textContent = (info.tuning === 'auto' ? 'estimated and tracked' : info.tuning)
    + tuningOfReference();
  const sel = $('fire-id');
  for (const c of score.cues) { const o = document.createElement('option'); o.value = o.textContent = c.id; sel.appendChild(o); }
  $('fire-form').hidden = !score.cues.length;
  if (score.bars.length) { $('seek-bar').min = score.bars[0][0]; $('seek-bar').max = score.bars[score.bars.length - 1][0]; }
  else $('seek-form').hidden = true;
  $('pause').addEventListener('click', () => send('/scorefollow/stop'));
  $('resume').addEventListener('click', () => send('/scorefollow/start'));
  $('seek-form').addEventListener('submit', (e) => { e.preventDefault(); send('/scorefollow/seek_bar', [parseInt($('seek-bar').value, 10)]); });
  $('fire-form').addEventListener('submit', (e) => { e.preventDefault(); send('/scorefollow/fire', [sel.value]); });
  let armed = null;
  $('quit').addEventListener('click', () => {
    // Two clicks, so a stray one does not end the show (no modal dialog: it would block the page).
    if (armed) { clearTimeout(armed); armed = null; $('quit').textContent = 'Quit'; send('/scorefollow/quit'); return; }
    $('quit').textContent = 'Click again to quit';
    armed = setTimeout(() => { armed = null; $('quit').textContent = 'Quit'; }, 3000);
  });
  $('roll').addEventListener('click', (ev) => {
    const cv = $('roll'), rect = cv.getBoundingClientRect();
    const t = parseFloat(cv.dataset.t0) + (ev.clientX - rect.left) / parseFloat(cv.dataset.pxPerS);
    if (isFinite(t)) send('/scorefollow/seek', [Math.max(0, Math.min(score.duration_s, t))]);
  });
  connect();
  requestAnimationFrame(frame);
}

window.scorefollow = {
  latency: () => ({ drawn: latencyStats(latency.drawn), arrived: latencyStats(latency.arrived), captureDrawn: latencyStats(latency.captureDrawn) }),
  state: () => ({ state, paused, pos, fired: fired.length, acks: acks.length }),
  send,
};
init();
