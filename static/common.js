// Shared by the dashboard pages: calls to the admin JSON API and the number formats, which
// match the server's (src/admin/dashboard/view.rs) so refreshed values look like rendered ones.
'use strict';

window.director = (() => {
  const NONE = '–';

  /** An API refusal: the `{error, detail}` body of a 4xx/5xx answer. */
  class ApiError extends Error {
    constructor(status, error, detail) {
      super(`${error}: ${detailText(detail)}`);
      this.status = status;
      this.error = error;
      this.detail = detail;
    }
  }

  /** `detail` of an API error as one line: a message, or `path: message; ...`. */
  function detailText(detail) {
    if (Array.isArray(detail)) {
      return detail.map((d) => (d && d.path ? `${d.path}: ${d.message}` : (d && d.message) || JSON.stringify(d))).join('; ');
    }
    return typeof detail === 'string' ? detail : JSON.stringify(detail);
  }

  /** Calls the API; resolves to the parsed answer, rejects with an ApiError. */
  async function api(method, path, body) {
    const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 401) {
      // The session ended (token changed, cookie gone): log in again.
      window.location.assign('/login');
    }
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (!res.ok) {
      throw new ApiError(res.status, (json && json.error) || `HTTP ${res.status}`, json ? json.detail : text);
    }
    return json;
  }

  /** An error of any kind as one line. */
  function describe(err) {
    return err instanceof ApiError ? err.message : String((err && err.message) || err);
  }

  const nowSeconds = () => Date.now() / 1000;

  /** Rounded half up to one decimal, printed without a trailing `.0` (like the server). */
  const oneDecimal = (v) => Math.round(v * 10) / 10;

  const fmt = {
    rate: (v) => (v == null ? NONE : v.toFixed(1)),
    millis(v) {
      if (v == null) return NONE;
      if (v >= 100) return `${v.toFixed(0)} ms`;
      if (v >= 10) return `${v.toFixed(1)} ms`;
      return `${v.toFixed(2)} ms`;
    },
    load: (inUse, capacity) => `${inUse} / ${capacity ? capacity : '∞'}`,
    percent: (share) => `${Math.round(share * 100)} %`,
    /** A ratio in percent with at most one decimal (`80 %`, `66.7 %`), or `–`. */
    ratio: (r) => (r == null ? NONE : `${oneDecimal(r * 100)} %`),
    /** A size: `512 B`, `1.5 KiB`, `256 MiB`. */
    bytes(n) {
      if (n < 1024) return `${n} B`;
      const units = ['KiB', 'MiB', 'GiB', 'TiB'];
      let value = n / 1024;
      let unit = 0;
      while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit += 1;
      }
      return `${oneDecimal(value)} ${units[unit]}`;
    },
    tokens: (n) => (n == null ? '∞' : String(n)),
    ago(at) {
      const s = Math.max(0, Math.floor(nowSeconds() - at));
      if (s === 0) return 'just now';
      if (s < 60) return `${s} s ago`;
      if (s < 3600) return `${Math.floor(s / 60)} min ago`;
      if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
      return `${Math.floor(s / 86400)} d ago`;
    },
    duration(secs) {
      const t = Math.floor(secs);
      const [d, h, m, s] = [Math.floor(t / 86400), Math.floor(t / 3600) % 24, Math.floor(t / 60) % 60, t % 60];
      if (d > 0) return `${d} d ${h} h`;
      if (h > 0) return `${h} h ${m} min`;
      if (m > 0) return `${m} min ${s} s`;
      return `${s} s`;
    },
  };

  /** Shows `message` in the page's `#error` banner, or hides it for `null`. */
  function showError(message) {
    const box = document.getElementById('error');
    if (!box) return;
    box.textContent = message || '';
    box.hidden = !message;
  }

  return { api, ApiError, describe, detailText, fmt, showError, NONE };
})();
