// Hygeia operator dashboard: polls the admin JSON routes of the node that served
// this page and shows status, peers, consensus, recent blocks and a commit-rate
// chart drawn on a canvas. The bearer token comes from the URL fragment
// (#token=...) or the form and lives only in this tab's sessionStorage. Every
// value from the node is put into the page with textContent (never as HTML).
"use strict";

(function () {
  const POLL_MS = 1500;
  const WINDOW_S = 300; // the chart's longest time span (s)
  const VALIDATORS_EVERY_MS = 30000;
  const TOKEN_KEY = "hygeia.adminToken";
  const BLOCKS_SHOWN = 15;

  const $ = (id) => document.getElementById(id);

  let token = null;
  let timer = null;
  let generation = 0; // bumps when the token changes: late answers of an old poll are dropped
  let names = {}; // validator index -> name
  let validatorsAt = 0;
  const samples = []; // {t (s), txs, blocks}: committed counters from /metrics

  class AuthError extends Error {}

  // ------------------------------------------------------------------ token
  function takeFragmentToken() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const fromUrl = params.get("token");
    if (fromUrl) {
      sessionStorage.setItem(TOKEN_KEY, fromUrl.trim());
      // keep the token out of the address bar, history and screenshots
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showAuth(message, isError) {
    stop();
    $("dashboard").hidden = true;
    $("forget-token").hidden = true;
    $("auth").hidden = false;
    const msg = $("auth-message");
    if (message) {
      msg.textContent = message;
    }
    msg.classList.toggle("error", Boolean(isError));
    setBadge("unknown", "no token");
    $("updated").textContent = "";
    $("token-input").focus();
  }

  function useToken(value) {
    token = value;
    generation += 1;
    samples.length = 0;
    validatorsAt = 0;
    $("auth").hidden = true;
    $("dashboard").hidden = false;
    $("forget-token").hidden = false;
    stop();
    poll();
  }

  function stop() {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
  }

  // ------------------------------------------------------------------ fetching
  async function get(path, kind, okStatuses) {
    const resp = await fetch(path, {
      headers: { Authorization: "Bearer " + token },
      cache: "no-store",
    });
    if (resp.status === 401) {
      throw new AuthError("401");
    }
    if (!(okStatuses || [200]).includes(resp.status)) {
      throw new Error(path + " answered HTTP " + resp.status);
    }
    return kind === "text" ? resp.text() : resp.json();
  }

  // URLs are relative to /ui, so the page also works behind a path prefix.
  async function poll() {
    const mine = generation;
    try {
      const now = Date.now();
      const wantValidators = now - validatorsAt > VALIDATORS_EVERY_MS;
      const [status, health, peers, cons, blocks, metrics, validators] = await Promise.all([
        get("status"),
        get("health", "json", [200, 503]),
        get("peers"),
        get("consensus"),
        get("blocks/recent?limit=" + BLOCKS_SHOWN),
        get("metrics", "text"),
        wantValidators ? get("validators") : Promise.resolve(null),
      ]);
      if (mine !== generation) {
        return;
      }
      if (validators) {
        names = {};
        for (const v of validators.validators) {
          names[v.index] = v.name;
        }
        validatorsAt = now;
      }
      renderStatus(status, health);
      renderPeers(peers.peers);
      renderConsensus(cons);
      renderBlocks(blocks.blocks);
      addSample(metrics);
      drawChart();
      $("error").hidden = true;
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (err) {
      if (mine !== generation) {
        return;
      }
      if (err instanceof AuthError) {
        sessionStorage.removeItem(TOKEN_KEY);
        token = null;
        showAuth(
          "The node refused this token (401 unauthorized). Enter the node's current admin token.",
          true,
        );
        return;
      }
      const banner = $("error");
      banner.textContent = "Cannot read the node (" + err.message + "); retrying. Values shown may be stale.";
      banner.hidden = false;
      setBadge("bad", "unreachable");
    }
    if (mine === generation) {
      timer = setTimeout(poll, POLL_MS);
    }
  }

  // ------------------------------------------------------------------ rendering
  function text(id, value) {
    $(id).textContent = value === null || value === undefined ? "-" : String(value);
  }

  function setBadge(kind, label) {
    const badge = $("health-badge");
    badge.className = "badge " + kind;
    badge.textContent = label;
  }

  function validatorName(index) {
    if (index === null || index === undefined) {
      return "-";
    }
    return names[index] ? names[index] + " (#" + index + ")" : "#" + index;
  }

  function shortHex(hex, keep) {
    const n = keep || 16;
    return typeof hex === "string" && hex.length > n ? hex.slice(0, n) + "…" : hex;
  }

  function timeText(ms) {
    if (typeof ms !== "number" || ms <= 0) {
      return "-";
    }
    const iso = new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
    const ago = Math.max(0, Math.round((Date.now() - ms) / 1000));
    return iso + " (" + ago + " s ago)";
  }

  function renderStatus(st, health) {
    text("node-name", st.name || "node");
    text("chain-id", st.chain_id);
    document.title = (st.name || "node") + " · Hygeia dashboard";
    text("height", st.height);
    text("epoch", st.epoch);
    text("role", st.role);
    text("view", st.view);
    text("primary", validatorName(st.primary));
    text("syncing", st.syncing ? "yes" : "no");
    text("mempool", st.mempool_size);
    text("peers-count", st.peers + " of " + Math.max(0, st.validators - 1) + " validators");
    text("last-block-time", timeText(st.last_block_time));
    text("last-block-hash", st.last_block_hash);
    text("node-id", st.node_id);
    text("version", st.version);
    const ok = Boolean(health.ok);
    const h = $("health");
    h.textContent = ok ? "healthy" : "unhealthy";
    h.className = ok ? "ok-text" : "bad-text";
    text("health-reasons", health.reasons && health.reasons.length ? health.reasons.join("; ") : "none");
    setBadge(ok ? "ok" : "bad", ok ? "healthy" : "unhealthy");
  }

  function cell(row, value, cls) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "-" : String(value);
    if (cls) {
      td.className = cls;
    }
    row.appendChild(td);
    return td;
  }

  function fillTable(bodyId, rows, columns, emptyText) {
    const body = $(bodyId);
    const fresh = document.createDocumentFragment();
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(tr, emptyText);
      td.colSpan = columns;
      fresh.appendChild(tr);
    }
    for (const fill of rows) {
      const tr = document.createElement("tr");
      fill(tr);
      fresh.appendChild(tr);
    }
    body.replaceChildren(fresh);
  }

  function renderPeers(peers) {
    const sorted = peers.slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    fillTable(
      "peers-body",
      sorted.map((p) => (tr) => {
        tr.dataset.nodeId = p.node_id;
        cell(tr, p.name || "(unknown)");
        cell(tr, shortHex(p.node_id, 12), "mono").title = p.node_id;
        const c = cell(tr, p.connected ? "yes" : "no");
        c.className = p.connected ? "ok-text" : "bad-text";
        cell(tr, p.address || p.dial_address, "mono");
        cell(tr, p.direction);
        cell(tr, p.height, "num");
        cell(tr, p.frames_in + " / " + p.frames_out, "num");
        cell(tr, p.queued, "num");
        cell(tr, p.dropped, "num");
      }),
      9,
      "no peers",
    );
  }

  function renderConsensus(c) {
    if (!c.validator) {
      text("cons-view", "not a validator");
      fillTable("inflight-body", [], 5, "not a validator");
      return;
    }
    text("cons-view", c.view);
    text("cons-primary", validatorName(c.primary));
    text("cons-in-view-change", c.in_view_change ? "in progress" : "no");
    text("cons-height", c.height);
    text("cons-watermarks", c.low_watermark + " – " + c.high_watermark);
    text("cons-pending", c.pending_requests);
    text("cons-view-changes", c.view_changes);
    const last = c.last_view_change;
    text(
      "last-view-change",
      last && last.view !== undefined ? "to view " + last.view + (last.cause ? " (" + last.cause + ")" : "") : "none",
    );
    fillTable(
      "inflight-body",
      c.in_flight.map((s) => (tr) => {
        tr.title = s.digest ? "proposal digest " + s.digest : "no proposal accepted yet";
        cell(tr, s.height, "num");
        cell(tr, s.view, "num");
        cell(tr, s.prepares, "num");
        cell(tr, s.commits, "num");
        cell(tr, s.prepared ? "yes" : "no");
      }),
      5,
      "nothing in flight",
    );
  }

  function renderBlocks(blocks) {
    fillTable(
      "blocks-body",
      blocks.map((b) => (tr) => {
        cell(tr, b.height, "num");
        cell(tr, shortHex(b.hash), "mono").title = b.hash;
        cell(tr, timeText(b.time));
        cell(tr, b.txs, "num");
        cell(tr, validatorName(b.proposer));
        cell(tr, b.view, "num");
      }),
      6,
      "no blocks yet",
    );
  }

  // ------------------------------------------------------------------ chart
  function counter(metrics, name) {
    const m = metrics.match(new RegExp("^" + name + "(?:\\{[^}]*\\})?\\s+(\\S+)", "m"));
    return m ? Number(m[1]) : NaN;
  }

  function addSample(metrics) {
    const s = {
      t: performance.now() / 1000,
      txs: counter(metrics, "hygeia_txs_committed_total"),
      blocks: counter(metrics, "hygeia_blocks_committed_total"),
    };
    if (!Number.isFinite(s.txs) || !Number.isFinite(s.blocks)) {
      return;
    }
    const last = samples[samples.length - 1];
    if (last && (s.txs < last.txs || s.blocks < last.blocks)) {
      samples.length = 0; // the node restarted: its counters began again
    }
    samples.push(s);
    while (samples.length > 2 && samples[0].t < s.t - WINDOW_S - 5) {
      samples.shift();
    }
  }

  function rates() {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      const dt = b.t - a.t;
      if (dt > 0) {
        out.push({ t: b.t, tx: (b.txs - a.txs) / dt, blocks: (b.blocks - a.blocks) / dt });
      }
    }
    return out;
  }

  function niceMax(v) {
    if (!(v > 0)) {
      return 1;
    }
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * p >= v) {
        return m * p;
      }
    }
    return 10 * p;
  }

  function fmt(v) {
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  function drawChart() {
    const canvas = $("chart");
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 640;
    const h = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const colTx = css.getPropertyValue("--tx").trim() || "#0b6e99";
    const colBlocks = css.getPropertyValue("--blocks").trim() || "#c2410c";
    const pad = { l: 48, r: 48, t: 10, b: 22 };
    const pw = w - pad.l - pad.r;
    const ph = h - pad.t - pad.b;
    const pts = rates();
    const now = samples.length ? samples[samples.length - 1].t : 0;
    // the span grows with the samples seen, from one minute up to WINDOW_S
    const since = samples.length ? now - samples[0].t : 0;
    const span = Math.min(WINDOW_S, Math.max(60, Math.ceil(since / 60) * 60));
    const maxTx = niceMax(Math.max(0, ...pts.map((p) => p.tx)));
    const maxBlocks = niceMax(Math.max(0, ...pts.map((p) => p.blocks)));
    const x = (t) => pad.l + pw * (1 - (now - t) / span);

    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    g.strokeStyle = "#dde3e9";
    g.fillStyle = "#6b7785";
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + ph - (ph * i) / 4;
      g.beginPath();
      g.moveTo(pad.l, y + 0.5);
      g.lineTo(pad.l + pw, y + 0.5);
      g.stroke();
      g.textAlign = "right";
      g.fillStyle = colTx;
      g.fillText(fmt((maxTx * i) / 4), pad.l - 6, y + 4);
      g.textAlign = "left";
      g.fillStyle = colBlocks;
      g.fillText(fmt((maxBlocks * i) / 4), pad.l + pw + 6, y + 4);
    }
    g.fillStyle = "#6b7785";
    g.textAlign = "center";
    const step = span <= 60 ? 10 : span <= 180 ? 30 : 60;
    for (let ago = span; ago >= 0; ago -= step) {
      const label = ago === 0 ? "now" : ago % 60 === 0 ? "-" + ago / 60 + " min" : "-" + ago + " s";
      g.fillText(label, x(now - ago), h - 6);
    }

    function line(key, max, color) {
      const shown = pts.filter((p) => now - p.t <= span);
      if (shown.length < 1) {
        return;
      }
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.beginPath();
      shown.forEach((p, i) => {
        const y = pad.t + ph - (ph * Math.min(p[key], max)) / max;
        if (i === 0) {
          g.moveTo(x(p.t), y);
        } else {
          g.lineTo(x(p.t), y);
        }
      });
      g.stroke();
    }
    line("blocks", maxBlocks, colBlocks);
    line("tx", maxTx, colTx);

    // averages over the last 30 s, and what the tests read
    const recent = pts.filter((p) => now - p.t <= 30);
    const avg = (key) => (recent.length ? recent.reduce((s, p) => s + p[key], 0) / recent.length : 0);
    text("rate-tx", pts.length ? fmt(avg("tx")) : "-");
    text("rate-blocks", pts.length ? fmt(avg("blocks")) : "-");
    canvas.dataset.points = String(pts.length);
    canvas.dataset.maxTx = String(Math.max(0, ...pts.map((p) => p.tx)));
  }

  // ------------------------------------------------------------------ start
  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) {
        return;
      }
      $("token-input").value = "";
      sessionStorage.setItem(TOKEN_KEY, value);
      useToken(value);
    });
    $("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      token = null;
      generation += 1;
      showAuth("Token forgotten. Enter an admin token to open the dashboard again.", false);
    });
    window.addEventListener("hashchange", () => {
      const fresh = takeFragmentToken();
      if (fresh && fresh !== token) {
        useToken(fresh);
      }
    });
    window.addEventListener("resize", drawChart);
    const stored = takeFragmentToken();
    if (stored) {
      useToken(stored);
    } else {
      showAuth(null, false);
    }
  });
})();
