// The live page: uPlot charts of the stats samples. The chosen window (5 min, 15 min, 1 h, or
// 24 h of minute aggregates) is loaded from /api/v1/history, then every sample of the event
// stream (/api/v1/events, one a second; in the 24 h view one a minute) is appended.
// `window.directorCharts` holds the uPlot instances by chart name. The two cache charts (hit
// ratio, bytes stored) are hidden until a cluster with the cache on gives them a series.
//
// Series are clusters (`shop`), buckets (`shop › vip`) and backends (`shop / app01`). The
// kind switches above the charts show or hide every series of a kind; a click on a legend
// entry shows or hides that one series. Both choices are kept in localStorage, so they
// survive new series, a window change and a reload.
'use strict';

(() => {
  const { api, describe, fmt, showError } = window.director;
  const WINDOWS = { '5m': 300, '15m': 900, '1h': 3600, '24h': 86400 };
  const KINDS = ['cluster', 'bucket', 'backend'];
  const STORE_KEY = 'director.live.series';
  const HEIGHT = 220;
  const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569', '#ea580c', '#4f46e5', '#0d9488'];

  /** Utilisation in %, or nothing for an unlimited capacity. */
  const utilisation = (used, capacity) => (capacity ? [Math.round((1000 * used) / capacity) / 10] : []);

  /**
   * What each chart plots: `series(sample)` lists `[label, value]` pairs; `colourKey` groups
   * series that share a colour (p50 and p99 of one cluster).
   */
  const CHARTS = {
    rps: {
      unit: 'req/s',
      series: (s) =>
        s.clusters.flatMap((c) => [
          [c.name, c.rps],
          ...c.buckets.map((b) => [`${c.name} › ${b.name}`, b.rps]),
          ...c.backends.map((b) => [`${c.name} / ${b.name}`, b.rps]),
        ]),
    },
    utilisation: {
      unit: '%',
      min: 100,
      series: (s) =>
        s.clusters.flatMap((c) => [
          ...utilisation(c.in_flight, c.capacity).map((v) => [c.name, v]),
          ...c.buckets.flatMap((b) => utilisation(b.in_use, b.ceiling).map((v) => [`${c.name} › ${b.name}`, v])),
          ...c.backends.flatMap((b) => utilisation(b.in_flight, b.capacity).map((v) => [`${c.name} / ${b.name}`, v])),
        ]),
    },
    queue: {
      unit: 'queued',
      series: (s) => s.clusters.flatMap((c) => [[c.name, c.queued], ...c.buckets.map((b) => [`${c.name} › ${b.name}`, b.queued])]),
    },
    latency: {
      unit: 'ms',
      series: (s) => s.clusters.flatMap((c) => [[`${c.name} p50`, c.p50_ms], [`${c.name} p99`, c.p99_ms]]),
      colourKey: (label) => label.replace(/ p(50|99)$/, ''),
      dash: (label) => (label.endsWith(' p99') ? [6, 4] : undefined),
    },
    errors: {
      unit: '/s',
      series: (s) => s.clusters.flatMap((c) => [[`${c.name} 5xx`, c.responses[4]], [`${c.name} 503/504`, c.dropped]]),
      colourKey: (label) => label.replace(/ (5xx|503\/504)$/, ''),
      dash: (label) => (label.endsWith(' 503/504') ? [6, 4] : undefined),
    },
    // The object caches: only clusters with the cache on have series; the charts stay hidden
    // until one does.
    cache_hit_ratio: {
      unit: '%',
      min: 100,
      optional: true,
      series: (s) =>
        s.clusters.flatMap((c) =>
          c.cache ? [[c.name, c.cache.hit_ratio == null ? null : Math.round(c.cache.hit_ratio * 1000) / 10]] : [],
        ),
    },
    cache_bytes: {
      unit: 'B',
      min: 1024,
      optional: true,
      format: (v) => fmt.bytes(Math.round(v)),
      series: (s) => s.clusters.flatMap((c) => (c.cache ? [[c.name, c.cache.bytes]] : [])),
    },
  };

  const charts = {};
  window.directorCharts = charts;

  // ---- which series are shown ---------------------------------------------------------------

  /** A series label's kind: buckets are `cluster › bucket`, backends `cluster / backend`. */
  const kindOf = (label) => (label.includes(' › ') ? 'bucket' : label.includes(' / ') ? 'backend' : 'cluster');

  /** `{kinds: {cluster: true, ...}, hidden: ['chart\nlabel', ...]}`, from localStorage. */
  const shown = (() => {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(STORE_KEY) || '{}') || {};
    } catch (_) {
      saved = {};
    }
    const kinds = Object.fromEntries(KINDS.map((k) => [k, !saved.kinds || saved.kinds[k] !== false]));
    return { kinds, hidden: new Set(Array.isArray(saved.hidden) ? saved.hidden : []) };
  })();
  window.directorSeries = shown;

  function saveShown() {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify({ kinds: shown.kinds, hidden: [...shown.hidden] }));
    } catch (_) {
      // Storage off (private mode): the choice lasts until the page is left.
    }
  }

  const isShown = (name, label) => shown.kinds[kindOf(label)] && !shown.hidden.has(`${name}\n${label}`);

  /** Set while the page itself shows or hides series, so that only a user's clicks count. */
  let applying = false;

  /** A legend click on chart `name`: remember the series' new state. */
  function seriesToggled(name, u, index, opts) {
    if (applying || index == null || index < 1 || !opts || opts.show === undefined) return;
    const label = u.series[index].label;
    const key = `${name}\n${label}`;
    if (opts.show) {
      shown.hidden.delete(key);
      // Showing one series of a hidden kind shows the kind again.
      if (!shown.kinds[kindOf(label)]) setKind(kindOf(label), true);
    } else {
      shown.hidden.add(key);
    }
    saveShown();
  }

  /** Shows or hides every series of `kind` on every chart. */
  function setKind(kind, on) {
    shown.kinds[kind] = on;
    saveShown();
    const box = document.querySelector(`input[data-kind="${kind}"]`);
    if (box) box.checked = on;
    applying = true;
    try {
      for (const [name, u] of Object.entries(charts)) {
        u.series.forEach((series, i) => {
          if (i > 0 && kindOf(series.label) === kind) u.setSeries(i, { show: isShown(name, series.label) });
        });
      }
    } finally {
      applying = false;
    }
  }

  for (const box of document.querySelectorAll('input[data-kind]')) {
    box.checked = shown.kinds[box.dataset.kind];
    box.addEventListener('change', () => setKind(box.dataset.kind, box.checked));
  }

  // The recorded points: x values (Unix seconds), and per chart one column per series label.
  let windowSeconds = WINDOWS['5m'];
  /** Seconds between points: 1, or 60 for the 24 h view of minute aggregates. */
  let step = 1;
  let times = [];
  let columns = {};
  /** Samples that arrived while a window was loading; null when none is loading. */
  let pending = null;

  function reset() {
    times = [];
    columns = Object.fromEntries(Object.keys(CHARTS).map((name) => [name, new Map()]));
  }

  /** Adds one sample; returns the charts that got a new series (they must be rebuilt). */
  function append(sample) {
    if (times.length > 0 && sample.at < times[times.length - 1] + step) return [];
    times.push(sample.at);
    const grown = [];
    for (const [name, chart] of Object.entries(CHARTS)) {
      const values = new Map(chart.series(sample));
      const cols = columns[name];
      for (const label of values.keys()) {
        if (!cols.has(label)) {
          cols.set(label, new Array(times.length - 1).fill(null));
          grown.push(name);
        }
      }
      for (const [label, col] of cols) col.push(values.has(label) ? values.get(label) : null);
    }
    // Keep up to twice the window, so that the x series grows by one point per sample and
    // is cut back only now and then.
    const points = windowSeconds / step;
    if (times.length > 2 * points) {
      const cut = times.length - points;
      times.splice(0, cut);
      for (const cols of Object.values(columns)) for (const col of cols.values()) col.splice(0, cut);
    }
    return [...new Set(grown)];
  }

  const dataOf = (name) => [times, ...columns[name].values()];

  function format(value, unit) {
    if (value == null) return '–';
    const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
    return `${value.toFixed(digits)} ${unit}`;
  }

  /** One colour per series key on every chart (a cluster is the same colour everywhere). */
  const colours = new Map();
  function colourOf(key) {
    if (!colours.has(key)) colours.set(key, PALETTE[colours.size % PALETTE.length]);
    return colours.get(key);
  }

  /** `14:05` or `14:05:30`, local time. */
  function clock(unixSeconds, withSeconds) {
    const d = new Date(unixSeconds * 1000);
    const two = (n) => String(n).padStart(2, '0');
    return `${two(d.getHours())}:${two(d.getMinutes())}${withSeconds ? `:${two(d.getSeconds())}` : ''}`;
  }

  /** (Re)creates the chart `name` with its current series. */
  function build(name) {
    const chart = CHARTS[name];
    const figure = document.querySelector(`[data-chart="${name}"]`);
    if (chart.optional) figure.hidden = columns[name].size === 0;
    const plot = figure.querySelector('.plot');
    if (charts[name]) charts[name].destroy();
    const text = chart.format ? (v) => (v == null ? '–' : chart.format(v)) : (v) => format(v, chart.unit);
    const series = [...columns[name].keys()].map((label) => ({
      label,
      stroke: colourOf(chart.colourKey ? chart.colourKey(label) : label),
      width: 1.5,
      dash: chart.dash && chart.dash(label),
      show: isShown(name, label),
      value: (u, v) => text(v),
    }));
    const options = {
      width: plot.clientWidth || 600,
      height: HEIGHT,
      series: [{}, ...series],
      scales: {
        // Always the whole window, ending at the newest sample.
        x: { time: true, range: (u, min, max) => [(max ?? Date.now() / 1000) - windowSeconds, max ?? Date.now() / 1000] },
        y: { range: (u, min, max) => [0, Math.max(chart.min || 1, (max || 0) * 1.1)] },
      },
      axes: [
        { space: 70, values: (u, ticks, axis, space, step) => ticks.map((t) => clock(t, step < 60)) },
        chart.format ? { size: 70, values: (u, ticks) => ticks.map(chart.format) } : { size: 60 },
      ],
      hooks: { setSeries: [(u, index, opts) => seriesToggled(name, u, index, opts)] },
    };
    applying = true;
    try {
      charts[name] = new uPlot(options, dataOf(name), plot);
    } finally {
      applying = false;
    }
  }

  function redraw(grown) {
    for (const name of Object.keys(CHARTS)) {
      if (!charts[name] || grown.includes(name)) build(name);
      else charts[name].setData(dataOf(name));
    }
  }

  /** Loads a window's history, then goes on with the samples that came meanwhile. */
  async function load(windowName) {
    windowSeconds = WINDOWS[windowName];
    for (const button of document.querySelectorAll('button[data-window]')) {
      button.setAttribute('aria-pressed', String(button.dataset.window === windowName));
    }
    pending = [];
    step = 1;
    reset();
    try {
      const history = await api('GET', `/api/v1/history?window=${windowName}`);
      step = history.step || 1;
      history.samples.forEach(append);
      showError(null);
    } catch (err) {
      showError(`loading the history failed — ${describe(err)}`);
    }
    const arrived = pending;
    pending = null;
    arrived.forEach(append);
    for (const name of Object.keys(CHARTS)) build(name);
  }

  document.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-window]');
    if (button && WINDOWS[button.dataset.window]) load(button.dataset.window);
  });

  let resizing = false;
  window.addEventListener('resize', () => {
    if (resizing) return;
    resizing = true;
    requestAnimationFrame(() => {
      resizing = false;
      for (const [name, chart] of Object.entries(charts)) {
        const plot = document.querySelector(`[data-chart="${name}"] .plot`);
        chart.setSize({ width: plot.clientWidth, height: HEIGHT });
      }
    });
  });

  function setStatus(state, text) {
    const el = document.getElementById('live-status');
    el.dataset.state = state;
    el.textContent = text;
  }

  reset();
  load('5m');

  const events = new EventSource('/api/v1/events');
  events.onopen = () => setStatus('ok', 'connected');
  events.onerror = () =>
    setStatus('lost', events.readyState === EventSource.CLOSED ? 'disconnected (reload the page)' : 'reconnecting…');
  events.onmessage = (event) => {
    let sample;
    try {
      sample = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (pending) pending.push(sample);
    else redraw(append(sample));
  };
})();
