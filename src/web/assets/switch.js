'use strict';
// The interpretation switcher: one <audio> per version; a version's time maps to the common
// timeline (the score, or the first recording) through its knots, exactly as
// scorefollow::align::warp::WarpMap does (piecewise linear, slope 1 outside the knots).

const token = new URLSearchParams(location.search).get('token');
const withToken = (u) => token ? u + (u.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : u;
const $ = (id) => document.getElementById(id);

let data = null;
let maps = [];
let audios = [];
let cur = 0;

function interp(xs, ys, x) {
  const n = xs.length;
  if (n === 0) return x;
  if (x <= xs[0] || n === 1) return ys[0] + (x - xs[0]);
  if (x >= xs[n - 1]) return ys[n - 1] + (x - xs[n - 1]);
  let lo = 0, hi = n - 1; // xs[lo] <= x < xs[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid; else hi = mid;
  }
  return ys[lo] + (ys[hi] - ys[lo]) * (x - xs[lo]) / (xs[hi] - xs[lo]);
}
const clamp = (x, a, b) => Math.min(Math.max(x, a), b);
const duration = (i) => data.versions[i].duration_s;
const toCommon = (i, t) => interp(maps[i].xs, maps[i].ys, t);
const fromCommon = (i, c) => clamp(interp(maps[i].ys, maps[i].xs, c), 0, duration(i));
/** Time in version `to` of time `t` in version `from` (the library's Versions::map). */
const mapTime = (from, to, t) => fromCommon(to, toCommon(from, t));

function fmt(t) {
  if (!isFinite(t)) return '–';
  const m = Math.floor(t / 60), s = t - 60 * m;
  return m + ':' + (s < 10 ? '0' : '') + s.toFixed(1);
}

function barAt(c) {
  const bars = data.timeline.bars;
  if (!bars.length) return null;
  let k = 0;
  while (k + 1 < bars.length && bars[k + 1][1] <= c + 1e-6) k++;
  return { index: k, number: bars[k][0], start: bars[k][1] };
}

function seekAudio(el, t) {
  if (el.readyState >= 1) el.currentTime = t;
  else el.addEventListener('loadedmetadata', () => { el.currentTime = t; }, { once: true });
}

/** Continue in version j at the same musical moment, playing if we were playing. */
function switchTo(j) {
  if (!data || j === cur || j < 0 || j >= audios.length) return;
  const a = audios[cur], b = audios[j];
  const t = a.currentTime, playing = !a.paused;
  const tb = mapTime(cur, j, t);
  a.pause();
  seekAudio(b, tb);
  const from = cur;
  cur = j;
  if (playing) b.play().catch(() => {});
  const msg = `switched from ${data.versions[from].name} at ${fmt(t)} to ${data.versions[j].name} at ${fmt(tb)}` + (playing ? ', playing' : '');
  $('last-switch').textContent = msg;
  $('last-switch').dataset.from = from;
  $('last-switch').dataset.to = j;
  $('last-switch').dataset.tFrom = t.toFixed(4);
  $('last-switch').dataset.tTo = tb.toFixed(4);
  renderVersions();
}

function seekCommon(c) {
  seekAudio(audios[cur], fromCommon(cur, clamp(c, 0, data.timeline.duration_s)));
}

function stepBar(dir) {
  const c = toCommon(cur, audios[cur].currentTime);
  const bars = data.timeline.bars;
  if (!bars.length) { seekCommon(c + 5 * dir); return; }
  const b = barAt(c);
  let k = b.index + dir;
  // Going back from well inside a bar goes to its start first, as players do.
  if (dir < 0 && c - b.start > 0.5) k = b.index;
  k = clamp(k, 0, bars.length - 1);
  seekCommon(bars[k][1] + 1e-3);
}

function togglePlay() {
  const a = audios[cur];
  if (a.paused) a.play().catch((e) => { $('state').textContent = 'cannot play: ' + e.message; });
  else a.pause();
}

function renderVersions() {
  const box = $('versions');
  box.querySelectorAll('.version').forEach((el, i) => el.classList.toggle('active', i === cur));
}

function update() {
  if (!data) return;
  const a = audios[cur];
  const t = a.currentTime;
  const c = toCommon(cur, t);
  const b = barAt(c);
  $('bar').textContent = b ? b.number : '–';
  $('timeline-pos').textContent = (data.timeline.kind === 'score' ? 'score ' : 'first recording ') + fmt(c);
  $('time').textContent = fmt(t);
  $('time').dataset.t = t.toFixed(4);
  $('duration').textContent = 'of ' + fmt(duration(cur));
  $('version').textContent = String(cur + 1);
  $('version').dataset.index = cur;
  $('version-name').textContent = data.versions[cur].name;
  $('play').textContent = a.paused ? '▶ Play' : '❚❚ Pause';
  document.body.dataset.playing = a.paused ? 'no' : 'yes';
  const st = $('state');
  if (!st.textContent.startsWith('cannot')) {
    st.textContent = a.paused ? 'paused' : 'playing';
    st.className = 'badge ' + (a.paused ? '' : 'ok');
  }
  $('versions').querySelectorAll('.version .t').forEach((el, i) => { el.textContent = fmt(fromCommon(i, c)); });
  draw(c);
}

// The shared timeline: a ruler of the common time with bar numbers, then one lane per version
// with ticks every 10 s of that version's own time (closer ticks: a faster performance).
const RULER = 34, LANE = 30;
function layout() {
  const cv = $('timeline');
  const w = cv.clientWidth, h = RULER + LANE * data.versions.length + 8;
  const dpr = window.devicePixelRatio || 1;
  cv.style.height = h + 'px';
  cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr);
  return { cv, w, h, dpr, left: 150, right: w - 16 };
}
let geom = null;
function draw(c) {
  if (!geom) return;
  const { cv, w, h, dpr, left, right } = geom;
  const g = cv.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const D = Math.max(data.timeline.duration_s, 1e-3);
  const X = (t) => left + (right - left) * clamp(t / D, 0, 1);
  g.font = '12px system-ui, sans-serif';
  g.textBaseline = 'middle';
  // Ruler.
  const bars = data.timeline.bars;
  const marks = bars.length ? bars.map((b) => [b[1], String(b[0])]) : [];
  if (!bars.length) for (let t = 0; t <= D; t += 10) marks.push([t, fmt(t).replace(/\.0$/, '')]);
  let lastLabel = -1e9;
  g.strokeStyle = '#3a4350';
  g.fillStyle = '#8c96a3';
  for (const [t, label] of marks) {
    const x = X(t);
    g.beginPath(); g.moveTo(x + 0.5, RULER - 12); g.lineTo(x + 0.5, h); g.stroke();
    if (x - lastLabel > 26) { g.fillText(label, x + 3, RULER - 20); lastLabel = x; }
  }
  g.fillText(bars.length ? 'bar' : 's', 8, RULER - 20);
  // Lanes.
  data.versions.forEach((v, i) => {
    const y = RULER + i * LANE;
    g.fillStyle = i === cur ? '#1f4a66' : '#232a33';
    g.fillRect(left, y + 3, right - left, LANE - 6);
    g.fillStyle = i === cur ? '#e8ecf1' : '#8c96a3';
    const name = (i + 1) + '  ' + v.name;
    g.fillText(name.length > 22 ? name.slice(0, 21) + '…' : name, 8, y + LANE / 2);
    g.strokeStyle = i === cur ? '#5cc8ff' : '#556070';
    for (let t = 0; t <= v.duration_s; t += 10) {
      const x = X(toCommon(i, t));
      g.beginPath(); g.moveTo(x + 0.5, y + 8); g.lineTo(x + 0.5, y + LANE - 8); g.stroke();
    }
  });
  // Where every version is now: the same musical moment.
  const x = X(c);
  g.strokeStyle = '#ffd166'; g.lineWidth = 2;
  g.beginPath(); g.moveTo(x, RULER - 14); g.lineTo(x, h - 4); g.stroke();
  g.lineWidth = 1;
}

function hit(ev) {
  const r = $('timeline').getBoundingClientRect();
  const px = ev.clientX - r.left, py = ev.clientY - r.top;
  const { left, right } = geom;
  const c = clamp((px - left) / (right - left), 0, 1) * data.timeline.duration_s;
  const lane = Math.floor((py - RULER) / LANE);
  return { c, lane: py >= RULER && lane < data.versions.length ? lane : -1 };
}

function onKey(ev) {
  if (ev.target && ev.target.tagName === 'INPUT') return;
  const k = ev.key;
  if (k === ' ') togglePlay();
  else if (k === 'n' || k === 'N' || k === 'ArrowDown') switchTo((cur + 1) % audios.length);
  else if (k === 'p' || k === 'P' || k === 'ArrowUp') switchTo((cur + audios.length - 1) % audios.length);
  else if (k === 'ArrowRight') stepBar(1);
  else if (k === 'ArrowLeft') stepBar(-1);
  else if (k >= '1' && k <= '9' && +k <= audios.length) switchTo(+k - 1);
  else return;
  ev.preventDefault();
}

async function init() {
  const r = await fetch(withToken('versions.json'));
  if (!r.ok) { $('state').textContent = 'cannot load: ' + r.status; return; }
  data = await r.json();
  maps = data.versions.map((v) => ({ xs: v.knots.map((k) => k[0]), ys: v.knots.map((k) => k[1]) }));
  $('piece').textContent = (data.timeline.kind === 'score' ? 'score ' : 'aligned to ') + data.timeline.name;
  const box = $('versions');
  data.versions.forEach((v, i) => {
    const a = document.createElement('audio');
    a.preload = 'auto';
    a.src = withToken(v.url);
    a.addEventListener('ended', update);
    $('audios').appendChild(a);
    audios.push(a);
    const b = document.createElement('button');
    b.className = 'version';
    b.dataset.index = i;
    b.innerHTML = '<span class="n"></span><span class="t"></span>';
    b.querySelector('.n').textContent = (i + 1) + '. ' + v.name;
    b.addEventListener('click', () => switchTo(i));
    box.appendChild(b);
  });
  $('play').addEventListener('click', togglePlay);
  $('next-bar').addEventListener('click', () => stepBar(1));
  $('prev-bar').addEventListener('click', () => stepBar(-1));
  $('next-version').addEventListener('click', () => switchTo((cur + 1) % audios.length));
  $('prev-version').addEventListener('click', () => switchTo((cur + audios.length - 1) % audios.length));
  $('timeline').addEventListener('click', (ev) => {
    const h = hit(ev);
    if (h.lane >= 0 && h.lane !== cur) switchTo(h.lane);
    else seekCommon(h.c);
  });
  document.addEventListener('keydown', onKey);
  geom = layout();
  window.addEventListener('resize', () => { geom = layout(); });
  renderVersions();
  const loop = () => { update(); requestAnimationFrame(loop); };
  requestAnimationFrame(loop);
}

// For other scripts on the page (and the tests): the same mapping the server does.
window.scorefollow = { mapTime, toCommon, fromCommon, switchTo, current: () => cur };
init();
