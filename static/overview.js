// The overview page: buttons and forms call the JSON API (backends, clusters, routes); every second the page refreshes its
// values from /api/v1/clusters and /api/v1/status, and the rates (and the caches' hit ratio
// of the last second) from the event stream. When clusters, buckets or backends come or go (or
// a cache is turned on or off), the affected part is re-rendered by the server (the page is
// fetched again), so the markup lives in one place: templates/overview.html.
'use strict';

(() => {
  const { api, describe, fmt, showError } = window.director;
  const enc = encodeURIComponent;
  const REFRESH_MS = 1000;

  const byData = (root, selector, key) => new Map([...root.querySelectorAll(selector)].map((el) => [el.dataset[key], el]));
  const field = (root, name) => root.querySelector(`[data-field="${name}"]`);
  const part = (root, name) => root && root.querySelector(`[data-part="${name}"]`);
  const statusField = (name) => document.querySelector(`[data-status="${name}"]`);
  const isDirectRoute = (name) => name.includes('://');

  function setText(el, text) {
    if (el && el.textContent !== String(text)) el.textContent = text;
  }

  function setMeter(meter, value, capacity) {
    if (!meter) return;
    meter.max = capacity || 1;
    meter.value = capacity ? value : 0;
  }

  /** A whole number >= 0 from an input's text, else null. */
  function wholeNumber(text) {
    return /^\s*\d+\s*$/.test(text) ? Number(text) : null;
  }

  // ---- actions ------------------------------------------------------------------------------

  /** Runs one API call for `what`; shows its error or clears the last one; refreshes. */
  async function run(what, button, call, onSuccess) {
    if (button) button.disabled = true;
    try {
      await call();
      showError(null);
      if (onSuccess) onSuccess();
    } catch (err) {
      showError(`${what} failed — ${describe(err)}`);
    } finally {
      if (button) button.disabled = false;
    }
    await refresh();
  }

  document.addEventListener('click', (event) => {
    const button = event.target.closest('tr.backend button[data-action]');
    if (!button) return;
    const row = button.closest('tr.backend');
    const cluster = button.closest('section.cluster').dataset.cluster;
    const backend = row.dataset.backend;
    const path = `/api/v1/clusters/${enc(cluster)}/backends/${enc(backend)}`;
    const action = button.dataset.action;
    const what = `${action} ${cluster}/${backend}`;
    if (action === 'enable' || action === 'disable') {
      run(what, button, () => api('PATCH', path, { enabled: action === 'enable' }));
    } else if (action === 'set-capacity') {
      const input = field(row, 'capacity');
      const capacity = wholeNumber(input.value);
      if (capacity === null) {
        showError(`${what} failed — capacity must be a whole number (0 = unlimited)`);
        return;
      }
      run(what, button, () => api('PATCH', path, { capacity }), () => delete input.dataset.edited);
    } else if (action === 'remove') {
      run(what, button, () => api('DELETE', path));
    }
  });

  // The cluster's maintenance switch: a disabled cluster answers 503 to every request.
  document.addEventListener('click', (event) => {
    const button = event.target.closest(
      '.cluster-head button[data-action="disable-cluster"], .cluster-head button[data-action="enable-cluster"]',
    );
    if (!button) return;
    const cluster = button.closest('section.cluster').dataset.cluster;
    const enabled = button.dataset.action === 'enable-cluster';
    run(`${enabled ? 'enable' : 'disable'} cluster ${cluster}`, button, () =>
      api('PATCH', `/api/v1/clusters/${enc(cluster)}`, { enabled }),
    );
  });

  /** POSTs `what` to the cluster's purge endpoint and shows how many objects went. */
  function purge(card, button, description, what) {
    const cluster = card.closest('section.cluster').dataset.cluster;
    const output = field(card, 'cache-purged');
    setText(output, '');
    run(`purge ${description} from the cache of ${cluster}`, button, async () => {
      const answer = await api('POST', `/api/v1/clusters/${enc(cluster)}/cache/purge`, what);
      setText(output, `purged ${answer.purged} object${answer.purged === 1 ? '' : 's'}`);
    });
  }

  document.addEventListener('click', (event) => {
    const button = event.target.closest('.cache-card button[data-action="purge-cache"]');
    if (!button) return;
    purge(button.closest('.cache-card'), button, 'everything', { all: true });
  });

  // Purge by URL, path prefix or tag: the form's kind names the API field; a host narrows a
  // URL or prefix (a tag has none, so none is sent then).
  document.addEventListener('submit', (event) => {
    const form = event.target.closest('form.cache-purge-some');
    if (!form) return;
    event.preventDefault();
    const kind = form.elements.kind.value;
    const value = form.elements.value.value.trim();
    const host = form.elements.host.value.trim();
    const what = { [kind]: value };
    if (host && kind !== 'tag') what.host = host;
    purge(form.closest('.cache-card'), form.querySelector('button'), `${kind} ${value}`, what);
  });

  document.addEventListener('input', (event) => {
    if (event.target.matches('input[data-field="capacity"]')) event.target.dataset.edited = 'yes';
  });

  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && event.target.matches('input[data-field="capacity"]')) {
      event.target.closest('tr').querySelector('button[data-action="set-capacity"]').click();
    }
  });

  document.addEventListener('submit', (event) => {
    const form = event.target.closest('form.add-backend');
    if (!form) return;
    event.preventDefault();
    const cluster = form.dataset.cluster;
    const value = (name) => (form.elements[name] ? form.elements[name].value.trim() : '');
    const backend = { name: value('name'), url: value('url') };
    if (value('capacity') !== '') backend.capacity = wholeNumber(value('capacity')) ?? value('capacity');
    if (value('role') !== '') backend.role = value('role');
    const submit = form.querySelector('button[type="submit"]');
    run(`add backend to ${cluster}`, submit, () => api('POST', `/api/v1/clusters/${enc(cluster)}/backends`, backend), () =>
      form.reset(),
    );
  });

  // ---- clusters: create and delete ----------------------------------------------------------

  document.addEventListener('click', (event) => {
    const button = event.target.closest('.cluster-head button[data-action="delete-cluster"]');
    if (!button) return;
    const cluster = button.closest('section.cluster').dataset.cluster;
    if (!window.confirm(`Delete cluster ${cluster}? Its backends drain. (Refused while a route points at it.)`)) return;
    run(`delete cluster ${cluster}`, button, () => api('DELETE', `/api/v1/clusters/${enc(cluster)}`));
  });

  // A new cluster: a name and, optionally, its first backend (named after the cluster).
  document.addEventListener('submit', (event) => {
    const form = event.target.closest('form.new-cluster');
    if (!form) return;
    event.preventDefault();
    const name = form.elements.name.value.trim();
    const url = form.elements.url.value.trim();
    const cluster = { name };
    if (url) cluster.backends = [{ name: `${name}-1`, url }];
    const submit = form.querySelector('button[type="submit"]');
    run(`create cluster ${name}`, submit, () => api('POST', '/api/v1/clusters', cluster), () => form.reset());
  });

  // ---- routes: change, move, delete, add ----------------------------------------------------

  /** A route's target from its text: an address (`scheme://...`) or a cluster's name. */
  const routeTarget = (text) => (text.includes('://') ? { backend: text } : { cluster: text });

  document.addEventListener('click', (event) => {
    const button = event.target.closest('tr.route button[data-action]');
    if (!button) return;
    const row = button.closest('tr.route');
    const index = Number(row.dataset.index);
    const path = `/api/v1/routes/${index}`;
    const value = (name) => row.querySelector(`input[name="${name}"]`).value.trim();
    const action = button.dataset.action;
    if (action === 'save-route') {
      // An empty host or prefix removes the key: any host, prefix `/`.
      const patch = { host: value('host') || null, path_prefix: value('path_prefix') || null, ...routeTarget(value('target')) };
      run(`change route ${index}`, button, () => api('PATCH', path, patch));
    } else if (action === 'route-up' || action === 'route-down') {
      const to = action === 'route-up' ? index - 1 : index + 1;
      run(`move route ${index}`, button, () => api('POST', `${path}/move`, { to }));
    } else if (action === 'delete-route') {
      run(`delete route ${index}`, button, () => api('DELETE', path));
    }
  });

  document.addEventListener('submit', (event) => {
    const form = event.target.closest('form.add-route');
    if (!form) return;
    event.preventDefault();
    const value = (name) => form.elements[name].value.trim();
    const route = routeTarget(value('target'));
    if (value('host')) route.host = value('host');
    if (value('path_prefix')) route.path_prefix = value('path_prefix');
    if (value('index') !== '') route.index = wholeNumber(value('index')) ?? value('index');
    const submit = form.querySelector('button[type="submit"]');
    run('add route', submit, () => api('POST', '/api/v1/routes', route), () => form.reset());
  });

  const reloadButton = document.getElementById('reload');
  reloadButton.addEventListener('click', () => run('reload', reloadButton, () => api('POST', '/api/v1/reload')));

  // ---- refreshing ---------------------------------------------------------------------------

  /** The last structure seen per cluster: what makes a re-render necessary when it changes. */
  const structures = new Map();

  function structure(c) {
    return JSON.stringify([
      c.settings,
      c.cache.enabled,
      c.buckets.map((b) => [b.name, b.parent]),
      c.backends.map((b) => [b.name, b.url, b.role, b.draining]),
    ]);
  }

  /** Whether the section of `c` no longer shows its buckets and backends. */
  function structureChanged(c, section) {
    const before = structures.get(c.name);
    const now = structure(c);
    structures.set(c.name, now);
    if (before !== undefined && before !== now) return true;
    const live = c.backends.filter((b) => !b.draining).map((b) => b.name);
    const rows = [...section.querySelectorAll('tr.backend')].map((r) => r.dataset.backend);
    const buckets = [...section.querySelectorAll('tr.bucket')].map((r) => r.dataset.bucket);
    return (
      live.join('\n') !== rows.join('\n') ||
      c.buckets.length !== buckets.length ||
      c.backends.length - live.length !== section.querySelectorAll('tr.draining-backend').length ||
      Boolean(section.querySelector('.cache-card')) !== c.cache.enabled
    );
  }

  /** Where a form control is: the same key finds it again in a re-rendered copy. */
  function controlKey(el) {
    const cluster = el.closest('[data-cluster]');
    const row = el.closest('tr[data-backend]');
    return [cluster && cluster.dataset.cluster, row && row.dataset.backend, el.name || el.dataset.field || el.dataset.action].join('\n');
  }

  /** Replaces `old` with `fresh`, keeping what the user was typing and where the focus was. */
  function replaceKeepingInput(old, fresh) {
    const controls = new Map([...fresh.querySelectorAll('input, button')].map((el) => [controlKey(el), el]));
    for (const input of old.querySelectorAll('form.add-backend input, input[data-edited]')) {
      const twin = controls.get(controlKey(input));
      if (twin) {
        twin.value = input.value;
        if (input.dataset.edited) twin.dataset.edited = input.dataset.edited;
      }
    }
    const focused = old.contains(document.activeElement) ? controls.get(controlKey(document.activeElement)) : null;
    old.replaceWith(fresh);
    if (focused) focused.focus();
  }

  /** Fetches the page again and swaps in the server's rendering of `names` (all when null). */
  async function rerender(names) {
    const res = await fetch('/', { credentials: 'same-origin' });
    const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
    const fresh = doc.getElementById('clusters');
    if (!res.ok || !fresh) {
      window.location.assign('/');
      return;
    }
    if (names === null) {
      replaceKeepingInput(document.getElementById('clusters'), fresh);
      document.getElementById('cluster-names').replaceWith(doc.getElementById('cluster-names'));
      const oldRoutes = document.querySelector('section.direct-routes');
      const newRoutes = doc.querySelector('section.direct-routes');
      if (oldRoutes && newRoutes) oldRoutes.replaceWith(newRoutes);
      else if (newRoutes) document.querySelector('main').append(newRoutes);
      else if (oldRoutes) oldRoutes.remove();
      return;
    }
    const freshSections = byData(doc, 'section.cluster', 'cluster');
    const oldSections = byData(document, 'section.cluster', 'cluster');
    for (const name of names) {
      if (oldSections.has(name) && freshSections.has(name)) replaceKeepingInput(oldSections.get(name), freshSections.get(name));
    }
  }

  /** The route list last shown, as JSON: the panel is re-rendered when it changes. */
  let shownRoutes = null;

  /** Fetches the page again and swaps in the server's routes panel, keeping the add form's text. */
  async function rerenderRoutes() {
    const res = await fetch('/', { credentials: 'same-origin' });
    const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
    const fresh = doc.querySelector('section.routes');
    const old = document.querySelector('section.routes');
    if (!res.ok || !fresh || !old) return;
    for (const input of old.querySelectorAll('form.add-route input')) {
      const twin = fresh.querySelector(`form.add-route input[name="${input.name}"]`);
      if (twin) twin.value = input.value;
    }
    old.replaceWith(fresh);
  }

  async function updateRoutes(routes) {
    const now = JSON.stringify(routes);
    if (shownRoutes !== null && shownRoutes !== now) await rerenderRoutes();
    shownRoutes = now;
  }

  function updateStatus(s) {
    setText(statusField('uptime'), fmt.duration(s.uptime_seconds));
    setText(statusField('generation'), s.generation);
    setText(statusField('config_path'), s.config_path || '–');
    setText(statusField('state_file'), s.state_file || '–');

    const reload = s.last_reload;
    const box = document.getElementById('reload-status');
    box.dataset.state = reload ? (reload.ok ? 'ok' : 'failed') : 'none';
    setText(statusField('reload-summary'), reload ? `${reload.ok ? 'ok' : 'failed'} (${reload.trigger}, ${fmt.ago(reload.at)})` : 'no reload yet');
    const errors = reload ? reload.errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)) : [];
    const list = statusField('reload-errors');
    if ([...list.children].map((li) => li.textContent).join('\n') !== errors.join('\n')) {
      list.replaceChildren(...errors.map((text) => Object.assign(document.createElement('li'), { textContent: text })));
    }

    const stateFileError = document.getElementById('state-file-error');
    stateFileError.hidden = !s.state_file_error;
    setText(statusField('state_file_error'), s.state_file_error || '');

    const shared = document.getElementById('cluster-state');
    if (shared && s.cluster_state) {
      shared.className = s.cluster_state.connected ? 'hint' : 'problem';
      setText(statusField('cluster_state'), s.cluster_state.summary + (s.cluster_state.apply_error ? ` · ${s.cluster_state.apply_error}` : ''));
    }
  }

  function updateBackendRow(row, b) {
    const health = field(row, 'health');
    if (health) {
      health.dataset.health = b.health;
      health.title = `${b.health} since ${fmt.ago(b.health_changed_at)}${b.health_reason ? ` (${b.health_reason})` : ''}`;
      setText(part(health, 'health'), b.health);
      setText(part(health, 'probe'), b.last_probe ? `${b.last_probe.detail} · ${fmt.ago(b.last_probe.at)}` : 'no active checks');
    }
    const enabled = field(row, 'enabled');
    if (enabled) {
      setText(enabled, b.enabled ? 'enabled' : 'disabled');
      enabled.dataset.enabled = b.enabled;
      row.classList.toggle('is-disabled', !b.enabled);
      const toggle = row.querySelector('button[data-action="enable"], button[data-action="disable"]');
      const wanted = b.enabled ? 'disable' : 'enable';
      if (toggle && toggle.dataset.action !== wanted) {
        toggle.dataset.action = wanted;
        toggle.textContent = b.enabled ? 'Disable' : 'Enable';
      }
    }
    const load = field(row, 'load');
    setText(part(load, 'load'), fmt.load(b.stats.in_flight.current, b.capacity));
    setMeter(part(load, 'meter'), b.stats.in_flight.current, b.capacity);
    setText(field(row, 'queued'), b.stats.queued.current);
    setText(field(row, 'requests'), b.stats.in_flight.total);
    setText(part(row, 'http_5xx'), b.stats.responses[4]);
    const capacity = field(row, 'capacity');
    if (capacity && !capacity.dataset.edited && document.activeElement !== capacity) capacity.value = b.capacity;
  }

  function updateCluster(c, section) {
    setText(field(section, 'cluster-load'), fmt.load(c.in_use, c.capacity));
    setMeter(field(section, 'cluster-meter'), c.in_use, c.capacity);
    setText(field(section, 'cluster-queued'), c.stats.queued.current);
    const buckets = new Map(c.buckets.map((b) => [b.name, b]));
    for (const [name, row] of byData(section, 'tr.bucket', 'bucket')) {
      const b = buckets.get(name);
      if (!b) continue;
      setText(field(row, 'share'), `${fmt.percent(b.rate)} … ${fmt.percent(b.ceil)}`);
      setText(field(row, 'tokens'), `${fmt.tokens(b.assured)} … ${fmt.tokens(b.ceiling)}`);
      setText(field(row, 'in_use'), b.in_use);
      setText(field(row, 'queued'), b.queued);
    }
    const backends = new Map(c.backends.filter((b) => !b.draining).map((b) => [b.name, b]));
    for (const [name, row] of byData(section, 'tr.backend', 'backend')) {
      if (backends.has(name)) updateBackendRow(row, backends.get(name));
    }
    const card = section.querySelector('.cache-card');
    if (card && c.cache.enabled) updateCache(card, c.cache);
  }

  /** The cache card from the cluster's cache counters. */
  function updateCache(card, cache) {
    setText(field(card, 'cache-hit-ratio'), fmt.ratio(cache.lookups > 0 ? cache.hit_ratio : null));
    setText(field(card, 'cache-hits'), `${cache.hits} / ${cache.lookups}`);
    setText(field(card, 'cache-objects'), cache.objects);
    setText(field(card, 'cache-memory'), `${fmt.bytes(cache.bytes)} / ${fmt.bytes(cache.max_memory)}`);
    setText(field(card, 'cache-stale'), cache.stale);
    const meter = field(card, 'cache-meter');
    if (meter) {
      meter.max = cache.max_memory || 1;
      meter.value = cache.bytes;
    }
  }

  async function updateClusters(clusters) {
    const balanced = clusters.filter((c) => !isDirectRoute(c.name));
    let sections = byData(document, 'section.cluster', 'cluster');
    const routesShown = document.querySelectorAll('tr.route-backend').length;
    const routesNow = clusters.filter((c) => isDirectRoute(c.name)).reduce((n, c) => n + c.backends.length, 0);
    const sameClusters = balanced.length === sections.size && balanced.every((c) => sections.has(c.name));
    const changed = balanced.filter((c) => sections.has(c.name) && structureChanged(c, sections.get(c.name))).map((c) => c.name);
    if (!sameClusters || routesShown !== routesNow) {
      balanced.forEach((c) => structures.set(c.name, structure(c)));
      await rerender(null);
    } else if (changed.length > 0) {
      await rerender(changed);
    }
    sections = byData(document, 'section.cluster', 'cluster');
    for (const c of clusters) {
      if (sections.has(c.name)) updateCluster(c, sections.get(c.name));
    }
    const routeRows = byData(document, 'tr.route-backend', 'route');
    for (const c of clusters.filter((c) => isDirectRoute(c.name))) {
      if (routeRows.has(c.name) && c.backends.length > 0) updateBackendRow(routeRows.get(c.name), c.backends[0]);
    }
  }

  function setConnection(state, text) {
    const el = document.getElementById('refresh-status');
    el.dataset.state = state;
    setText(el, text);
  }

  async function poll() {
    try {
      const [clusters, status, routes] = await Promise.all([
        api('GET', '/api/v1/clusters'),
        api('GET', '/api/v1/status'),
        api('GET', '/api/v1/routes'),
      ]);
      updateStatus(status);
      await updateClusters(clusters);
      await updateRoutes(routes);
      setConnection('ok', 'live');
    } catch (err) {
      setConnection('lost', `not updating: ${describe(err)}`);
    }
  }

  /** Polls now, after any poll in progress (so an action's effect is never missed). */
  let polling = Promise.resolve();
  function refresh() {
    polling = polling.then(poll);
    return polling;
  }

  (async function loop() {
    await refresh();
    setTimeout(loop, REFRESH_MS);
  })();

  // ---- rates from the event stream ----------------------------------------------------------

  // ---- sparklines: each backend's requests per second over the last 5 minutes -------------

  const SPARK_POINTS = 300;
  /** `cluster\nbackend` → its recent rates, oldest first. */
  const sparks = new Map();
  let sparkSeen = 0;

  function recordSpark(sample) {
    if (sample.at <= sparkSeen) return;
    sparkSeen = sample.at;
    for (const c of sample.clusters) {
      for (const b of c.backends) {
        const key = `${c.name}\n${b.name}`;
        const values = sparks.get(key) || [];
        values.push(b.rps);
        if (values.length > SPARK_POINTS) values.splice(0, values.length - SPARK_POINTS);
        sparks.set(key, values);
      }
    }
  }

  /** Draws `values` into the sparkline `svg` (60 × 16, newest at the right), scaled to their maximum. */
  function drawSpark(svg, values) {
    if (!svg) return;
    const max = Math.max(1, ...values);
    const x = (i) => 60 - (60 * (values.length - 1 - i)) / (SPARK_POINTS - 1);
    const points = values.map((v, i) => `${x(i).toFixed(1)},${(15 - (14 * v) / max).toFixed(1)}`).join(' ');
    svg.querySelector('polyline').setAttribute('points', points);
    svg.dataset.points = values.length;
    svg.dataset.max = Math.max(0, ...values);
  }

  function drawSparks() {
    for (const [name, section] of byData(document, 'section.cluster', 'cluster')) {
      for (const [backend, row] of byData(section, 'tr.backend', 'backend')) {
        drawSpark(part(row, 'spark'), sparks.get(`${name}\n${backend}`) || []);
      }
    }
  }

  // The last 5 minutes from the recorded history first, so the lines start full; samples of
  // the event stream that arrive meanwhile wait for it.
  let sparkQueue = [];
  api('GET', '/api/v1/history?window=5m')
    .then((history) => history.samples.forEach(recordSpark))
    .catch(() => {
      // No history: the lines fill from the event stream.
    })
    .finally(() => {
      sparkQueue.forEach(recordSpark);
      sparkQueue = null;
      drawSparks();
    });

  function applySample(sample) {
    if (sparkQueue) sparkQueue.push(sample);
    else {
      recordSpark(sample);
      drawSparks();
    }
    const sections = byData(document, 'section.cluster', 'cluster');
    const routeRows = byData(document, 'tr.route-backend', 'route');
    for (const c of sample.clusters) {
      const rows = [];
      const section = sections.get(c.name);
      if (section) {
        setText(field(section, 'cluster-rps'), fmt.rate(c.rps));
        const card = section.querySelector('.cache-card');
        if (card && c.cache) setText(field(card, 'cache-recent-hit-ratio'), fmt.ratio(c.cache.hit_ratio));
        const buckets = byData(section, 'tr.bucket', 'bucket');
        for (const b of c.buckets) if (buckets.has(b.name)) setText(field(buckets.get(b.name), 'rps'), fmt.rate(b.rps));
        const backendRows = byData(section, 'tr.backend', 'backend');
        for (const b of c.backends) if (backendRows.has(b.name)) rows.push([backendRows.get(b.name), b]);
      } else if (routeRows.has(c.name) && c.backends.length > 0) {
        rows.push([routeRows.get(c.name), c.backends[0]]);
      }
      for (const [row, b] of rows) {
        setText(field(row, 'rps'), fmt.rate(b.rps));
        setText(part(row, 'http_5xx_rate'), fmt.rate(b.http_5xx));
        setText(field(row, 'p50'), fmt.millis(b.p50_ms));
        setText(field(row, 'p99'), fmt.millis(b.p99_ms));
      }
    }
  }

  if (window.EventSource) {
    const events = new EventSource('/api/v1/events');
    events.onmessage = (event) => {
      try {
        applySample(JSON.parse(event.data));
      } catch (_) {
        // A malformed sample: the next one comes in a second.
      }
    };
  }
})();
