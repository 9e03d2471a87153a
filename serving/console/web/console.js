// The operations console (docs/operations.md, "Console and metrics"). No framework, no build.
// Rules (as the chat page): server data is only ever set as textContent; the session lives
// in the HttpOnly cookie; nothing is kept in the browser's storage.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let me = null;

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      const response = await fetch(path, init);
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      return { ok: response.ok, status: response.status, data };
    } catch (e) {
      return { ok: false, status: 0, data: null };
    }
  }

  function when(epoch) {
    if (epoch === null || epoch === undefined) return "—";
    const d = new Date(epoch * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${i ? v.toFixed(1) : v} ${units[i]}`;
  }

  function secs(s) {
    return s === null || s === undefined ? "—" : `${Number(s).toFixed(1)} s`;
  }

  function statusCell(status) {
    const good = ["succeeded", "pass", "ok", "running"].includes(status);
    const bad = ["failed", "fail", "error"].includes(status);
    return { text: status, cls: good ? "ok" : bad ? "bad" : "" };
  }

  // A table: headers and rows of cells (a cell is a value or {text, cls, num}).
  function table(headers, rows, className) {
    const t = make("table", className);
    const head = make("tr");
    for (const h of headers) head.appendChild(make("th", null, h));
    t.appendChild(head);
    for (const row of rows) {
      const tr = make("tr");
      for (const cell of row) {
        const c = cell !== null && typeof cell === "object" ? cell : { text: cell };
        const td = make("td", [c.cls, typeof c.text === "number" ? "num" : ""].join(" ").trim(),
          c.text === null || c.text === undefined ? "—" : c.text);
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    return t;
  }

  const RENDER = {
    health(d, body) {
      body.appendChild(table(["Component", "State", "Detail"], d.components.map((c) => [
        c.component,
        c.up === null ? { text: "not configured", cls: "" }
          : { text: c.up ? "up" : "down", cls: c.up ? "ok" : "bad" },
        c.detail,
      ]), "health"));
    },
    runs(d, body) {
      body.appendChild(make("p", "summary", `Last ${d.days} days, per job:`));
      body.appendChild(table(["Job", "Runs", "Failed", "Last run", "Status", "Duration", "Records"],
        d.jobs.map((j) => [
          j.job, j.runs, { text: j.failed, cls: j.failed ? "bad" : "" }, when(j.last.started),
          statusCell(j.last.status), secs(j.last.duration_s),
          Object.entries(j.last.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ") +
            (j.last.error_code ? ` ${j.last.error_code}` : ""),
        ]), "jobs"));
    },
    quality(d, body) {
      if (!d.runs.length) { body.appendChild(make("p", "summary", "No data-quality run yet.")); return; }
      const last = d.runs[0];
      body.appendChild(make("p", "summary",
        `Newest run ${when(last.executed)}: ${last.pass} pass, ${last.fail} fail, ` +
        `${last.error} error, ${last.not_applicable} not applicable.`));
      body.appendChild(table(["Run", "Rules", "Pass", "Fail", "Error"], d.runs.map((r) => [
        when(r.executed), r.rules, r.pass, { text: r.fail, cls: r.fail ? "bad" : "" }, r.error,
      ]), "trend"));
      if (d.failing.length) {
        body.appendChild(make("p", "summary", "Failing rules of the newest run:"));
        body.appendChild(table(["Rule", "Table", "Severity", "% failing", "Threshold"],
          d.failing.map((f) => [f.rule_id, f.table_name, f.severity,
            f.percent_failing === null ? "—" : Number(f.percent_failing.toFixed(3)), f.threshold]),
          "failing"));
      }
    },
    backups(d, body) {
      const drill = d.last_restore;
      body.appendChild(make("p", "summary restore",
        drill ? `Last restore (drill): ${when(drill.started)}, ${drill.status}, ` +
          `${secs(drill.duration_s)}` : "No restore (drill) recorded yet."));
      body.appendChild(table(["Backup", "Kind", "Taken", "Tables", "Files", "Size"],
        d.backups.map((b) => [b.id, b.kind, when(b.created), b.tables, b.files, bytes(b.bytes)]),
        "backups"));
    },
    standby(d, body) {
      if (!d.configured) { body.appendChild(make("p", "summary", "No standby status (lakehouse standby is not running here).")); return; }
      const lag = d.lag || {};
      body.appendChild(make("p", `summary ${d.healthy ? "ok" : "bad"}`,
        `${d.state}, ${d.healthy ? "in sync" : "lagging or in error"}; lag p50 ${secs(lag.p50_s)}, ` +
        `p99 ${secs(lag.p99_s)}, max ${secs(lag.max_s)} (limit ${d.max_lag_s} s); status ${secs(d.age_s)} old.`));
      body.appendChild(table(["Table", "Lag", "Primary", "Standby", "Error"], d.tables.map((t) => [
        t.table, secs(t.lag_s), t.primary_version, t.standby_version,
        { text: t.error || "", cls: t.error ? "bad" : "" },
      ]), "standby-tables"));
    },
    models(d, body) {
      body.appendChild(table(["Model", "Latest version", "Champion", "Updated"], d.models.map((m) => [
        m.name, m.latest_version, m.champion_version, when(m.updated),
      ]), "models"));
    },
    alerts(d, body) {
      if (!d.per_day.length) { body.appendChild(make("p", "summary", `No break-glass access, refusal or lockout in ${d.days} days.`)); return; }
      body.appendChild(table(["Day", "Break-glass", "First", "Last", "Refusals", "Lockouts"],
        d.per_day.map((r) => [r.day, { text: r.break_glass, cls: r.break_glass ? "warn" : "" },
          r.break_glass ? when(r.break_glass_first).slice(11) : "—",
          r.break_glass ? when(r.break_glass_last).slice(11) : "—", r.access_denied, r.lockout]),
        "alerts"));
    },
    tables(d, body) {
      body.appendChild(make("p", "summary",
        `${d.listed} tables, ${bytes(d.total_bytes)}` + (d.truncated ? ` (first ${d.listed} of ${d.found})` : "")));
      body.appendChild(table(["Table", "Version", "Size", "Files", "Last commit"], d.tables.map((t) => [
        t.table, t.version, bytes(t.size_bytes), t.files, when(t.modified),
      ]), "tables"));
    },
  };

  async function loadPanel(article, allowed) {
    const name = article.dataset.panel;
    const body = article.querySelector(".body");
    body.replaceChildren(make("p", "summary", "Loading…"));
    article.classList.remove("error");
    if (!allowed) {
      body.replaceChildren(make("p", "summary", "Not available for your role."));
      return;
    }
    const r = await api("GET", `/api/console/${name}`);
    body.replaceChildren();
    if (!r.ok || !r.data || r.data.status !== "ok") {
      article.classList.add("error");
      const e = r.data && (r.data.error || r.data);
      body.appendChild(make("p", "bad code", e && e.code ? `${e.code}: ${e.message}` : `HTTP ${r.status}`));
      return;
    }
    RENDER[name](r.data.data, body);
    body.appendChild(make("p", "meta", `read ${when(r.data.read_at)}, ${r.data.age_s.toFixed(0)} s ago`));
    article.dataset.loaded = "true";
  }

  // The auditors' review of break-glass events: read through the guarded, audited path.
  async function loadReview(article) {
    const body = article.querySelector(".body");
    const r = await api("GET", "/api/console/break-glass");
    body.replaceChildren();
    if (!r.ok) {
      const e = (r.data && r.data.error) || {};
      body.appendChild(make("p", "bad code", e.code ? `${e.code}: ${e.message}` : `HTTP ${r.status}`));
      return;
    }
    body.appendChild(table(["Time", "User", "Role", "Reason", "Patient (pseudonym)"],
      r.data.events.map((e) => [when(e.ts), e.actor, e.role, e.reason, e.patient_ref]), "breakglass"));
    article.dataset.loaded = "true";
  }

  async function show() {
    const who = await api("GET", "/api/me");
    if (!who.ok) {
      $("login-view").hidden = false;
      $("console-view").hidden = true;
      $("refused-view").hidden = true;
      $("sign-out").hidden = true;
      $("refresh").hidden = true;
      $("who").textContent = "";
      return;
    }
    me = who.data;
    $("who").textContent = `${me.username} (${me.role})`;
    $("login-view").hidden = true;
    $("sign-out").hidden = false;
    const index = await api("GET", "/api/console");
    if (!index.ok) {
      const e = (index.data && index.data.error) || {};
      $("refused-message").textContent = e.message || `HTTP ${index.status}`;
      $("refused-code").textContent = e.code || "";
      $("refused-view").hidden = false;
      $("console-view").hidden = true;
      return;
    }
    $("refused-view").hidden = true;
    $("console-view").hidden = false;
    $("refresh").hidden = false;
    const allowed = Object.fromEntries(index.data.panels.map((p) => [p.panel, p.allowed]));
    const review = $("panel-breakglass");
    review.hidden = !index.data.break_glass_events;
    await Promise.all([...document.querySelectorAll(".panel")].map(
      (a) => loadPanel(a, allowed[a.dataset.panel])).concat(
      index.data.break_glass_events ? [loadReview(review)] : []));
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { username: $("username").value, password: $("password").value };
    if ($("totp").value) body.totp = $("totp").value;
    const r = await api("POST", "/api/login", body);
    $("password").value = "";
    $("totp").value = "";
    if (!r.ok) {
      const e = (r.data && r.data.error) || {};
      $("login-error").textContent = e.code ? `${e.code}: ${e.message}` : "The service cannot be reached.";
      $("login-error").hidden = false;
      return;
    }
    $("login-error").hidden = true;
    await show();
  });
  $("sign-out").addEventListener("click", async () => {
    await api("POST", "/api/logout");
    me = null;
    await show();
  });
  $("refresh").addEventListener("click", () => show());
  show();
})();
