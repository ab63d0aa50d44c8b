// The business console. Plain modern JavaScript, no framework; text goes into the page through textContent only.
// Data comes from /console/api (the admin API under /console/api/admin, plus the console's own read models); every
// state-changing call carries the session's CSRF token in X-CSRF-Token.
"use strict";

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
    return node;
  };
  const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "–");
  const VIEWS = ["overview", "verifications", "conversations", "flows", "tenants", "audit", "queues"];

  const state = { session: null, tenantId: null, view: "overview", timer: null, charts: {}, queueSeries: null, flow: null, auditCursor: null };

  // ---- feedback -----------------------------------------------------------------------------------------------------
  const banner = $("#banner");
  function showError(err) {
    banner.textContent = err instanceof ApiFailure ? `${err.message}${err.code ? ` (${err.code})` : ""}` : `Something went wrong: ${err?.message ?? err}`;
    banner.hidden = false;
  }
  function clearError() {
    banner.hidden = true;
  }
  let toastTimer;
  function toast(message) {
    const t = $("#toast");
    t.textContent = message;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (t.hidden = true), 3000);
  }

  // ---- API ----------------------------------------------------------------------------------------------------------
  class ApiFailure extends Error {
    constructor(status, error) {
      super(error?.message ?? `HTTP ${status}`);
      this.status = status;
      this.code = error?.code;
      this.details = error?.details;
    }
  }
  function withTenant(path) {
    if (!state.session?.superAdmin || !state.tenantId || state.tenantId === state.session.tenantId) return path;
    return `${path}${path.includes("?") ? "&" : "?"}tenantId=${encodeURIComponent(state.tenantId)}`;
  }
  async function api(path, { method = "GET", json, text, contentType } = {}) {
    const headers = {};
    if (method !== "GET") headers["x-csrf-token"] = state.session?.csrfToken ?? "";
    let body;
    if (json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(json);
    } else if (text !== undefined) {
      headers["content-type"] = contentType;
      body = text;
    }
    let res;
    try {
      res = await fetch(`/console/api/${path}`, { method, headers, body, credentials: "same-origin" });
    } catch (err) {
      throw new ApiFailure(0, { message: `The server did not answer (${err.message})` });
    }
    if (res.status === 401) {
      location.reload(); // the session ended: back to the sign-in form
      throw new ApiFailure(401, { message: "Signed out" });
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new ApiFailure(res.status, data?.error);
    return data;
  }

  // ---- navigation ---------------------------------------------------------------------------------------------------
  function show(view) {
    if (!VIEWS.includes(view)) view = "overview";
    state.view = view;
    for (const v of VIEWS) $(`#${v}`).hidden = v !== view;
    for (const a of document.querySelectorAll(".tabs a")) {
      if (a.getAttribute("href") === `#${view}`) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    clearInterval(state.timer);
    const load = LOADERS[view];
    const run = () => load().then(clearError, showError);
    void run();
    if (POLL[view]) state.timer = setInterval(() => document.visibilityState === "visible" && run(), POLL[view]);
  }
  const POLL = { overview: 5000, verifications: 3000, conversations: 4000, queues: 5000 };

  // ---- overview: charts ----------------------------------------------------------------------------------------------
  function chartWidth(node) {
    return Math.max(260, node.clientWidth - 8);
  }
  function lineChart(node, series, data) {
    if (!window.uPlot) {
      node.textContent = "Charts need uPlot (served from /console/vendor/uplot).";
      return null;
    }
    const chart = new uPlot(
      {
        width: chartWidth(node),
        height: 220,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.fill, points: { show: false } }))],
        axes: [{}, { size: 40, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000] }],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        legend: { live: false },
      },
      data,
      node,
    );
    return chart;
  }
  window.addEventListener("resize", () => {
    for (const [id, chart] of Object.entries(state.charts)) if (chart) chart.setSize({ width: chartWidth($(`#${id}`)), height: 220 });
  });

  async function loadOverview() {
    // queue depths are deployment-wide: only the deployment's admin reads them
    const [stats, queues] = await Promise.all([api(withTenant("stats")), state.session.superAdmin ? api("queues") : null]);
    const pm = stats.perMinute;
    const data = [pm.t, pm.requested, pm.approved];
    if (!state.charts["chart-per-minute"]) {
      state.charts["chart-per-minute"] = lineChart($("#chart-per-minute"), [
        { label: "requested", color: "#027eb5", fill: "#027eb522" },
        { label: "approved", color: "#00a884", fill: "#00a88422" },
      ], data);
    } else state.charts["chart-per-minute"].setData(data);

    const c = stats.conversion;
    $("#conversion-rate").textContent = c.rate === null ? "–" : `${Math.round(c.rate * 1000) / 10}%`;
    $("#conversion-meter").value = c.rate ?? 0;
    $("#conversion-detail").textContent = `${c.approved} approved of ${c.requested} requested`;

    const list = $("#failures");
    const max = Math.max(1, ...stats.deliveryFailures.map((f) => f.count));
    list.replaceChildren(
      ...stats.deliveryFailures.map((f) => {
        const bar = el("span", { class: "bar" });
        bar.style.width = `${Math.max(4, (f.count / max) * 100)}%`;
        return el("li", {}, el("span", { class: "bar-label", text: `${f.code ?? "no code"}${f.title ? ` · ${f.title}` : ""}` }), el("span", { class: "bar-track" }, bar), el("span", { class: "bar-value", text: String(f.count) }));
      }),
    );
    $("#failures-empty").hidden = stats.deliveryFailures.length > 0;

    if (queues) pushQueueSample(queues);
  }

  function pushQueueSample(sample) {
    const t = Math.floor(new Date(sample.at).getTime() / 1000);
    if (!state.queueSeries) state.queueSeries = { names: sample.queues.map((q) => q.name), data: [[], ...sample.queues.map(() => [])] };
    const s = state.queueSeries;
    s.data[0].push(t);
    sample.queues.forEach((q, i) => s.data[i + 1]?.push(q.waiting + q.delayed + q.active));
    if (s.data[0].length > 120) for (const arr of s.data) arr.shift();
    const colors = ["#027eb5", "#00a884", "#f59e0b", "#e53935", "#7c3aed", "#0ea5e9"];
    if (!state.charts["chart-queues"]) {
      state.charts["chart-queues"] = lineChart($("#chart-queues"), s.names.map((n, i) => ({ label: n, color: colors[i % colors.length] })), s.data);
    } else state.charts["chart-queues"].setData(s.data);
  }

  // ---- verifications -------------------------------------------------------------------------------------------------
  function badge(status) {
    return el("span", { class: `badge status-${status}`, text: status });
  }
  function deliveryOf(v) {
    const last = v.sendCodeAttempts[v.sendCodeAttempts.length - 1];
    if (!last) return "–";
    return `${last.channel} · ${last.status}${last.errorCode ? ` (error ${last.errorCode})` : ""}${v.sendCodeAttempts.length > 1 ? ` · ${v.sendCodeAttempts.length} sends` : ""}`;
  }
  async function loadVerifications() {
    const status = $("#verification-status").value;
    const { verifications } = await api(withTenant(`verifications?limit=100${status ? `&status=${status}` : ""}`));
    const tbody = $("#verification-table tbody");
    tbody.replaceChildren(
      ...verifications.map((v) =>
        el("tr", { "data-id": v.id, "data-status": v.status },
          el("td", { text: fmtTime(v.createdAt) }),
          el("td", { class: "mono", text: v.to }),
          el("td", { text: v.purpose }),
          el("td", { text: v.channel }),
          el("td", {}, badge(v.status)),
          el("td", { text: `${v.attempts} / ${v.maxAttempts}` }),
          el("td", { text: deliveryOf(v) }),
          el("td", { text: fmtTime(v.endedAt ?? v.expiresAt) }),
        ),
      ),
    );
    $("#verifications-empty").hidden = verifications.length > 0;
  }
  $("#verification-status").addEventListener("change", () => loadVerifications().then(clearError, showError));

  // ---- conversations -------------------------------------------------------------------------------------------------
  const TICKS = { queued: "🕓", sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!", received: "" };
  async function loadConversations() {
    const { conversations } = await api(withTenant("conversations"));
    const list = $("#conversation-list");
    const open = new Set([...list.querySelectorAll("details[open]")].map((d) => d.dataset.contact));
    list.replaceChildren(
      ...conversations.map((c, i) => {
        const details = el("details", { class: "conversation", "data-contact": c.contactId, open: open.has(c.contactId) || (open.size === 0 && i === 0) });
        details.append(
          el("summary", {},
            el("strong", { class: "mono", text: c.phone ?? c.userId ?? "unknown" }),
            c.name ? ` · ${c.name}` : "",
            c.verifiedAt ? el("span", { class: "badge status-approved", text: "verified" }) : null,
            c.flow ? el("span", { class: "badge", text: `flow ${c.flow}${c.step ? ` · ${c.step}` : ""}` }) : null,
            c.handedOff ? el("span", { class: "badge status-pending", text: "with a person" }) : null,
          ),
          el("ol", { class: "messages" },
            ...c.messages.map((m) =>
              el("li", { class: `msg ${m.direction}`, "data-status": m.status },
                el("span", { class: "msg-text", text: m.preview }),
                el("span", { class: "msg-meta" },
                  fmtTime(m.at), " ",
                  m.direction === "outbound" ? el("span", { class: "ticks", "data-status": m.status, title: m.status, text: TICKS[m.status] ?? "" }) : null,
                  " ", el("span", { class: "muted", text: m.status }),
                  m.errorCode ? el("span", { class: "error-text", text: ` error ${m.errorCode}${m.errorTitle ? `: ${m.errorTitle}` : ""}` }) : null,
                ),
              ),
            ),
          ),
        );
        return details;
      }),
    );
    $("#conversations-empty").hidden = conversations.length > 0;
  }

  // ---- flows -----------------------------------------------------------------------------------------------------------
  const flowText = $("#flow-text");
  const gutter = $("#flow-gutter");
  let errorLines = new Set();
  function renderGutter() {
    const n = flowText.value.split("\n").length;
    gutter.textContent = Array.from({ length: n }, (_, i) => `${errorLines.has(i + 1) ? "●" : " "}${String(i + 1).padStart(4)}`).join("\n");
    gutter.scrollTop = flowText.scrollTop;
  }
  flowText.addEventListener("input", () => {
    errorLines = new Set();
    renderGutter();
  });
  flowText.addEventListener("scroll", () => (gutter.scrollTop = flowText.scrollTop));
  // Tab inserts two spaces (Escape then Tab leaves the editor, as in most code editors on the web)
  let escaped = false;
  flowText.addEventListener("keydown", (e) => {
    if (e.key === "Escape") escaped = true;
    else if (e.key === "Tab" && !e.shiftKey && !escaped) {
      e.preventDefault();
      flowText.setRangeText("  ", flowText.selectionStart, flowText.selectionEnd, "end");
      renderGutter();
    } else escaped = false;
  });

  function goToLine(line) {
    const lines = flowText.value.split("\n");
    let start = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    flowText.focus();
    flowText.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
    const lineHeight = parseFloat(getComputedStyle(flowText).lineHeight) || 18;
    flowText.scrollTop = Math.max(0, (line - 4) * lineHeight);
  }

  function showFlowErrors(title, errors) {
    const result = $("#flow-result");
    result.className = "flow-result error";
    result.textContent = title;
    errorLines = new Set(errors.map((e) => e.line).filter(Boolean));
    renderGutter();
    $("#flow-errors").replaceChildren(
      ...errors.map((e) =>
        el("li", { class: "flow-error" },
          e.line ? el("button", { type: "button", class: "line-link", onclick: () => goToLine(e.line), text: `Line ${e.line}` }) : el("span", { class: "line-link", text: "—" }),
          el("code", { class: "path", text: e.path }),
          el("span", { class: "message", text: e.message }),
        ),
      ),
    );
  }
  function showFlowOk(message) {
    const result = $("#flow-result");
    result.className = "flow-result ok";
    result.textContent = message;
    errorLines = new Set();
    renderGutter();
    $("#flow-errors").replaceChildren();
  }

  async function validateFlow() {
    const name = $("#flow-name").value.trim();
    return api("flows/validate", { method: "POST", json: { text: flowText.value, format: $("#flow-format").value, ...(name ? { name } : {}) } });
  }

  $("#flow-validate").addEventListener("click", async () => {
    try {
      const r = await validateFlow();
      if (r.ok) showFlowOk(`Valid: flow “${r.name}” can be published.`);
      else showFlowErrors(`Not valid: ${r.errors.length} error${r.errors.length === 1 ? "" : "s"}`, r.errors);
    } catch (err) {
      showError(err);
    }
  });

  $("#flow-editor").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("#flow-name").value.trim();
    if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name)) {
      showFlowErrors("Give the flow a name: lowercase letters, digits, _ and -", []);
      $("#flow-name").focus();
      return;
    }
    const format = $("#flow-format").value;
    try {
      // the same validation the API runs on publish, first: its errors come with their lines, and nothing is sent
      const checked = await validateFlow();
      if (!checked.ok) {
        return showFlowErrors(`Refused: the flow definition is not valid: ${checked.errors.length} error${checked.errors.length === 1 ? "" : "s"}`, checked.errors);
      }
      const r = await api(withTenant(`admin/flows/${encodeURIComponent(name)}`), { method: "PUT", text: flowText.value, contentType: format === "yaml" ? "application/yaml" : "application/json" });
      showFlowOk(`Published: ${r.name} version ${r.version} is live.`);
      toast(`${r.name} v${r.version} published`);
      await loadFlowList();
      await loadVersions(name);
    } catch (err) {
      if (!(err instanceof ApiFailure) || (err.status !== 422 && err.status !== 400)) return showError(err);
      // the API refused it: its errors, each placed at its line in the text
      let located = [];
      try {
        const v = await validateFlow();
        located = v.ok ? [] : v.errors;
      } catch {
        /* lines are a convenience */
      }
      const details = Array.isArray(err.details) && err.details.length ? err.details : located;
      const errors = details.map((d) => ({ path: d.path, message: d.message, line: d.line ?? located.find((l) => l.path === d.path)?.line ?? null }));
      showFlowErrors(`Refused: ${err.message}`, errors.length ? errors : [{ path: "(root)", message: err.message, line: null }]);
    }
  });

  async function loadFlowList() {
    const { flows } = await api(withTenant("admin/flows"));
    $("#flow-list").replaceChildren(
      ...flows.map((f) =>
        el("li", {},
          el("button", { type: "button", class: "flow-item", "aria-current": state.flow === f.name ? "true" : null, onclick: () => openFlow(f.name) },
            el("strong", { text: f.name }), el("span", { class: "muted", text: ` v${f.version} · ${f.source}` }),
            f.description ? el("small", { text: f.description }) : null,
          ),
        ),
      ),
    );
  }
  async function loadVersions(name) {
    const list = $("#flow-versions");
    if (!name) return list.replaceChildren();
    let versions = [];
    try {
      versions = (await api(withTenant(`admin/flows/${encodeURIComponent(name)}/versions`))).versions;
    } catch (err) {
      if (err.status === 404) return list.replaceChildren(el("li", { class: "muted", text: "Not published yet." }));
      throw err;
    }
    $("#flow-live").textContent = versions.find((v) => v.live) ? `live: version ${versions.find((v) => v.live).version}` : "";
    list.replaceChildren(
      ...versions
        .slice()
        .sort((a, b) => b.version - a.version)
        .map((v) =>
          el("li", {},
            el("span", { text: `v${v.version}` }),
            v.live ? el("span", { class: "badge status-approved", text: "live" }) : null,
            el("span", { class: "muted", text: ` ${fmtTime(v.createdAt)} · ${v.publishedBy ?? ""}` }),
            v.live || !state.session.canWrite
              ? null
              : el("button", { type: "button", class: "small", onclick: () => rollback(name, v.version), text: `Roll back to v${v.version}` }),
          ),
        ),
    );
  }
  async function rollback(name, version) {
    if (!confirm(`Make version ${version} of ${name} live again (as a new version)?`)) return;
    try {
      const r = await api(withTenant(`admin/flows/${encodeURIComponent(name)}/rollback`), { method: "POST", json: { version } });
      toast(`${name}: version ${r.version} is live (a copy of v${version})`);
      await openFlow(name);
      await loadFlowList();
    } catch (err) {
      showError(err);
    }
  }
  async function openFlow(name) {
    const f = await api(withTenant(`admin/flows/${encodeURIComponent(name)}`));
    state.flow = name;
    $("#flow-name").value = f.name;
    $("#flow-format").value = "json";
    flowText.value = JSON.stringify(f.definition, null, 2);
    $("#flow-result").textContent = "";
    $("#flow-errors").replaceChildren();
    errorLines = new Set();
    renderGutter();
    await loadVersions(name);
    for (const b of document.querySelectorAll(".flow-item")) b.toggleAttribute("aria-current", b.querySelector("strong")?.textContent === name);
  }
  $("#new-flow").addEventListener("click", () => {
    state.flow = null;
    $("#flow-name").value = "";
    $("#flow-format").value = "json";
    flowText.value = JSON.stringify({ triggers: [{ type: "keyword", keywords: ["ping-42"] }], steps: [{ id: "answer", type: "send", text: "pong from a custom flow" }] }, null, 2);
    $("#flow-live").textContent = "";
    $("#flow-versions").replaceChildren();
    $("#flow-result").textContent = "";
    $("#flow-errors").replaceChildren();
    renderGutter();
    $("#flow-name").focus();
  });
  async function loadFlows() {
    await loadFlowList();
    if (state.flow) await loadVersions(state.flow);
    else if (!flowText.value) {
      const first = document.querySelector(".flow-item strong")?.textContent;
      if (first) await openFlow(first);
    }
    renderGutter();
  }

  // ---- step-up: confirm a held change with the code sent to the tenant's admin number ---------------------------------
  function stepUpForm(stepUp, onApplied) {
    const code = el("input", { type: "text", inputmode: "numeric", autocomplete: "one-time-code", pattern: "\\d{4,10}", "aria-label": "Step-up code", placeholder: "123456", class: "step-up-code" });
    const status = el("span", { role: "status" });
    const confirm = el("button", {
      type: "button",
      text: "Confirm",
      onclick: async () => {
        try {
          await api(`admin/step-ups/${encodeURIComponent(stepUp.id)}/confirm`, { method: "POST", json: { code: code.value.trim() } });
          status.textContent = "Applied.";
          await onApplied();
        } catch (err) {
          const left = err.details && typeof err.details.attemptsLeft === "number" ? ` (${err.details.attemptsLeft} attempts left)` : "";
          status.textContent = `${err.message}${left}`;
        }
      },
    });
    return el("span", { class: "step-up" },
      el("span", { text: `Held: a code went to ${stepUp.sentTo ?? "the admin number"} on WhatsApp. Enter it to apply. ` }),
      code, confirm, status);
  }

  // ---- tenants ---------------------------------------------------------------------------------------------------------
  async function loadTenants() {
    const { tenants } = await api("admin/tenants");
    $("#tenant-list").replaceChildren(
      ...tenants.map((t) => {
        const patch = el("textarea", { class: "settings-patch", "aria-label": `Settings change for ${t.name}`, rows: "4", spellcheck: "false", placeholder: '{"otp": {"codeLength": 8}}' });
        const result = el("p", { class: "settings-result", role: "status" });
        const save = el("button", {
          type: "button", disabled: !state.session.canWrite,
          onclick: async () => {
            let body;
            try {
              body = JSON.parse(patch.value || "{}");
            } catch (err) {
              result.className = "settings-result error";
              result.textContent = `Not JSON: ${err.message}`;
              return;
            }
            try {
              const answer = await api(`admin/tenants/${t.id}/settings`, { method: "PATCH", json: body });
              if (answer?.stepUp) {
                // a security-sensitive change is held until the code sent to the tenant's admin number is confirmed
                result.className = "settings-result";
                result.replaceChildren(stepUpForm(answer.stepUp, async () => {
                  toast(`Settings of ${t.name} saved`);
                  await loadTenants();
                }));
                return;
              }
              toast(`Settings of ${t.name} saved`);
              await loadTenants();
            } catch (err) {
              result.className = "settings-result error";
              result.textContent = `${err.message}${Array.isArray(err.details) ? ": " + err.details.map((d) => `${d.path}: ${d.message}`).join("; ") : ""}`;
            }
          },
          text: "Save settings",
        });
        return el("article", { class: "card tenant" },
          el("h3", { text: t.name }),
          el("dl", {},
            el("dt", { text: "Number" }), el("dd", { class: "mono", text: `+${t.displayPhoneNumber}` }),
            el("dt", { text: "Phone number id" }), el("dd", { class: "mono", text: t.phoneNumberId }),
            el("dt", { text: "Tenant id" }), el("dd", { class: "mono", text: t.id }),
            el("dt", { text: "Events callback" }), el("dd", { text: t.settings?.events?.url ?? "none" }),
          ),
          el("details", {}, el("summary", { text: "Settings" }), el("pre", { text: JSON.stringify(t.settings, null, 2) })),
          el("details", {}, el("summary", { text: "Change settings" }),
            el("p", { class: "muted", text: "A JSON object of sections to change (otp, phonePolicy, limits, flows, pin, retention); fields left out keep their values." }),
            patch, save, result),
        );
      }),
    );
  }

  // ---- audit -----------------------------------------------------------------------------------------------------------
  async function loadAudit(more = false) {
    const type = $("#audit-type").value.trim();
    const q = `admin/audit?limit=50${type ? `&type=${encodeURIComponent(type)}` : ""}${more && state.auditCursor ? `&cursor=${encodeURIComponent(state.auditCursor)}` : ""}`;
    const { items, nextCursor } = await api(withTenant(q));
    state.auditCursor = nextCursor;
    const rows = items.map((a) =>
      el("tr", {},
        el("td", { text: fmtTime(a.createdAt) }),
        el("td", { class: "mono", text: a.type }),
        el("td", { text: a.actor }),
        el("td", { class: "mono", text: a.subject ?? "" }),
        el("td", { class: "mono small", text: Object.keys(a.data ?? {}).length ? JSON.stringify(a.data) : "" }),
      ),
    );
    const tbody = $("#audit-table tbody");
    if (more) tbody.append(...rows);
    else tbody.replaceChildren(...rows);
    $("#audit-more").hidden = !nextCursor;
  }
  $("#audit-filter").addEventListener("click", () => loadAudit().then(clearError, showError));
  $("#audit-type").addEventListener("keydown", (e) => e.key === "Enter" && loadAudit().then(clearError, showError));
  $("#audit-more").addEventListener("click", () => loadAudit(true).then(clearError, showError));

  // ---- queues ----------------------------------------------------------------------------------------------------------
  async function loadQueues() {
    if (!state.session.superAdmin) return; // deployment-wide figures: the note says who may see them
    const sample = await api("queues");
    $("#queue-table tbody").replaceChildren(
      ...sample.queues.map((q) => el("tr", {}, el("td", { text: q.queue }), el("td", { text: String(q.waiting) }), el("td", { text: String(q.active) }), el("td", { text: String(q.delayed) }), el("td", { text: String(q.failed) }))),
    );
  }

  const LOADERS = { overview: loadOverview, verifications: loadVerifications, conversations: loadConversations, flows: loadFlows, tenants: loadTenants, audit: () => loadAudit(), queues: loadQueues };

  // ---- start -----------------------------------------------------------------------------------------------------------
  async function start() {
    try {
      state.session = await api("session");
    } catch (err) {
      showError(err);
      return;
    }
    const s = state.session;
    state.tenantId = s.tenantId;
    $("#who").textContent = `${s.superAdmin ? "deployment admin" : s.actor} · ${s.canWrite ? "admin" : "read only"}`;
    if (s.superAdmin && s.tenants.length > 1) {
      $("#tenant-field").hidden = false;
      const sel = $("#tenant");
      for (const t of s.tenants) sel.append(el("option", { value: t.id, text: `${t.name} (+${t.displayPhoneNumber})` }));
      sel.value = s.tenantId;
      sel.addEventListener("change", () => {
        state.tenantId = sel.value;
        state.flow = null;
        flowText.value = "";
        show(state.view);
      });
    }
    if (!s.canWrite) {
      $("#flow-publish").disabled = true;
      $("#flow-publish").title = "This key has the read scope only";
    }
    if (!s.superAdmin) {
      $("#board-link").hidden = true;
      $("#board-note").textContent = "The queues hold every tenant's jobs: their depths and the queue dashboard open with the deployment's ADMIN_API_KEY only.";
      $("#queue-table").closest(".table-wrap").hidden = true;
      $("#chart-queues").closest("figure").hidden = true;
    }
    $("#signout").addEventListener("click", async () => {
      try {
        await fetch("/console/logout", { method: "POST", headers: { "x-csrf-token": s.csrfToken }, credentials: "same-origin" });
      } finally {
        location.href = "/console";
      }
    });
    window.addEventListener("hashchange", () => show(location.hash.slice(1)));
    show(location.hash.slice(1) || "overview");
  }
  void start();
})();
