// The sandbox chat page: be one or more WhatsApp customers writing to the business. Plain modern JavaScript, no
// dependencies; every text goes into the page through textContent, never parsed as HTML. Talks to the sandbox control
// API (/sandbox/api) and follows it live over server-sent events.
"use strict";

(() => {
  const API = "/sandbox/api/";
  const STORAGE = "wabot.sandbox.phones";
  const COUNTRIES = [
    ["US", "United States", "1"], ["CA", "Canada", "1"], ["GB", "United Kingdom", "44"], ["ES", "Spain", "34"],
    ["BR", "Brazil", "55"], ["MX", "Mexico", "52"], ["AR", "Argentina", "54"], ["CO", "Colombia", "57"],
    ["CL", "Chile", "56"], ["PE", "Peru", "51"], ["PT", "Portugal", "351"], ["FR", "France", "33"],
    ["DE", "Germany", "49"], ["IT", "Italy", "39"], ["NL", "Netherlands", "31"], ["IN", "India", "91"],
    ["ID", "Indonesia", "62"], ["NG", "Nigeria", "234"], ["KE", "Kenya", "254"], ["ZA", "South Africa", "27"],
    ["AU", "Australia", "61"], ["SG", "Singapore", "65"],
  ];
  const SAMPLE_NUMBERS = ["+14155550123", "+447700900123", "+34612345678", "+5511987654321", "+5215512345678"];
  const SAMPLE_NAMES = ["Sandbox User", "Alex", "Lucía", "João", "Sam"];
  const TICKS = { accepted: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };
  const STATUS_WORDS = { accepted: "accepted by the Cloud API", sent: "sent", delivered: "delivered", read: "read", failed: "failed" };

  const $ = (sel, root = document) => root.querySelector(sel);
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };

  const businessSelect = $("#business");
  const phonesEl = $("#phones");
  const banner = $("#banner");
  const live = $("#live");
  const toastEl = $("#toast");
  /** @type {{root: HTMLElement, number: string, name: string, bubbles: Map<string, HTMLElement>, refresh: () => Promise<void>}[]} */
  const phones = [];
  let businesses = [];

  // ---- small helpers ------------------------------------------------------------------------------------------
  function showBanner(message) {
    banner.textContent = message;
    banner.hidden = false;
  }
  function clearBanner() {
    banner.hidden = true;
    banner.textContent = "";
  }
  let toastTimer;
  function toast(message) {
    toastEl.textContent = message;
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (toastEl.hidden = true), 2500);
  }
  async function api(path, init) {
    let res;
    try {
      res = await fetch(API + path, init);
    } catch (err) {
      throw new Error(`The sandbox did not answer (${err.message}). Is the demo still running?`);
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body?.error?.message ?? `HTTP ${res.status}`);
    return body;
  }
  const digitsOf = (s) => String(s ?? "").replace(/\D/g, "");
  const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  /** WhatsApp's inline formatting: *bold*, _italic_, ~strike~, ```mono```, as DOM nodes (no HTML parsing). */
  function formatted(text) {
    const frag = document.createDocumentFragment();
    const re = /```([^`]+)```|\*([^*\n]+)\*|_([^_\n]+)_|~([^~\n]+)~/g;
    let last = 0;
    for (const m of String(text).matchAll(re)) {
      if (m.index > last) frag.append(text.slice(last, m.index));
      if (m[1] !== undefined) frag.append(el("code", { text: m[1] }));
      else if (m[2] !== undefined) frag.append(el("strong", { text: m[2] }));
      else if (m[3] !== undefined) frag.append(el("em", { text: m[3] }));
      else frag.append(el("s", { text: m[4] }));
      last = m.index + m[0].length;
    }
    if (last < text.length) frag.append(text.slice(last));
    return frag;
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // older browsers and non-secure origins: a hidden textarea and the copy command
      const area = el("textarea", { "aria-hidden": "true", readonly: "" });
      area.value = text;
      area.style.position = "fixed";
      area.style.left = "-9999px";
      document.body.append(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      return ok;
    }
  }

  // ---- numbers --------------------------------------------------------------------------------------------------
  function countryOf(e164) {
    const d = digitsOf(e164);
    let best = null;
    for (const c of COUNTRIES) if (d.startsWith(c[2]) && (!best || c[2].length > best[2].length)) best = c;
    return best;
  }
  /** A typed number: "+<digits>" is taken as it is; national digits get the picked country's code. */
  function toE164(raw, country) {
    const s = String(raw).trim();
    if (!s) return null;
    const d = digitsOf(s);
    const full = s.startsWith("+") || s.startsWith("00") ? (s.startsWith("00") ? d.slice(2) : d) : (country ? country[2] : "") + d.replace(/^0+/, "");
    return /^[1-9]\d{6,14}$/.test(full) ? `+${full}` : null;
  }

  function savePhones() {
    try {
      localStorage.setItem(STORAGE, JSON.stringify(phones.map((p) => ({ number: p.number, name: p.name }))));
    } catch {
      /* private mode: nothing kept */
    }
  }
  function savedPhones() {
    try {
      const v = JSON.parse(localStorage.getItem(STORAGE) ?? "[]");
      return Array.isArray(v) ? v.filter((p) => typeof p?.number === "string") : [];
    } catch {
      return [];
    }
  }

  // ---- bubbles --------------------------------------------------------------------------------------------------
  function tickNode(status, errorCode) {
    const span = el("span", { class: "ticks", "data-status": status, role: "img", "aria-label": `Status: ${STATUS_WORDS[status] ?? status}${errorCode ? ` (error ${errorCode})` : ""}`, title: STATUS_WORDS[status] ?? status });
    span.textContent = TICKS[status] ?? status;
    return span;
  }

  function setStatus(bubble, status, errorCode) {
    bubble.dataset.status = status;
    const old = bubble.querySelector(".ticks");
    if (old) old.replaceWith(tickNode(status, errorCode));
    bubble.querySelector(".failure")?.remove();
    if (status === "failed") {
      bubble.append(el("span", { class: "failure", text: `Not delivered${errorCode ? `: Meta error ${errorCode}` : ""}` }));
    }
  }

  function interactiveParts(payload) {
    const header = payload?.header?.type === "text" ? payload.header.text : undefined;
    return { header, body: payload?.body?.text ?? "", footer: payload?.footer?.text };
  }

  function bubbleFor(phone, m) {
    const from = m.direction === "outbound" ? "bot" : "customer";
    const li = el("li", { class: "bubble", "data-from": from, "data-wamid": m.wamid, "data-type": m.type });
    const content = el("div", { class: "content" });
    const actions = el("div", { class: "actions" });
    const payload = m.payload ?? {};

    if (m.type === "template") {
      content.append(el("span", { class: "template-tag", text: `template · ${payload.name ?? ""}` }));
      content.append(formatted(m.text));
      for (const b of m.buttons ?? []) {
        if (b.copy !== undefined) {
          actions.append(
            el("button", {
              type: "button", class: "copy-code", "aria-label": `${b.title}: copies the code`,
              onclick: async () => {
                const ok = await copyText(b.copy);
                toast(ok ? "Code copied" : "Could not copy: select the code and copy it");
                if (ok) $(".message", phone.root).focus();
              },
            }, el("span", { class: "icon-copy", "aria-hidden": "true" }), b.title),
          );
        } else {
          actions.append(el("button", { type: "button", disabled: "" }, el("span", { class: "icon-link", "aria-hidden": "true" }), b.title));
        }
      }
    } else if (m.type === "interactive" && m.direction === "outbound") {
      const parts = interactiveParts(payload);
      if (parts.header) content.append(el("strong", { class: "header", text: parts.header }));
      content.append(formatted(parts.body || m.text));
      if (parts.footer) content.append(el("small", { class: "footer", text: parts.footer }));
      if (payload.type === "list") {
        const label = payload.action?.button ?? "Choose";
        actions.append(el("button", { type: "button", class: "open-list", "aria-haspopup": "dialog", onclick: () => openList(phone, payload) }, el("span", { class: "icon-list", "aria-hidden": "true" }), label));
      }
      for (const b of m.buttons ?? []) {
        if (!b.replyId) continue;
        actions.append(
          el("button", { type: "button", class: "reply", onclick: () => sendMessage(phone, { type: "interactive", interactive: { type: "button_reply", button_reply: { id: b.replyId, title: b.title } } }) },
            el("span", { class: "icon-reply", "aria-hidden": "true" }), b.title),
        );
      }
    } else {
      content.append(formatted(m.text));
    }
    li.append(content);
    if (actions.childElementCount) li.append(actions);
    const meta = el("div", { class: "meta" }, el("time", { datetime: new Date(m.at).toISOString(), text: time(m.at) }));
    meta.append(tickNode(m.status));
    li.append(meta);
    const last = m.statuses?.[m.statuses.length - 1];
    setStatus(li, m.status, last?.errorCode);
    return li;
  }

  function openList(phone, payload) {
    const sheet = $("#list-sheet");
    $("#list-title", sheet).textContent = payload.action?.button ?? "Choose";
    const rowsEl = $(".sheet-rows", sheet);
    rowsEl.replaceChildren();
    for (const section of payload.action?.sections ?? []) {
      if (section.title) rowsEl.append(el("h3", { text: section.title }));
      for (const row of section.rows ?? []) {
        rowsEl.append(
          el("button", {
            type: "button", class: "row",
            onclick: () => {
              sheet.close();
              const reply = { id: row.id, title: row.title, ...(row.description ? { description: row.description } : {}) };
              void sendMessage(phone, { type: "interactive", interactive: { type: "list_reply", list_reply: reply } });
            },
          }, el("span", { text: row.title }), row.description ? el("small", { text: row.description }) : null),
        );
      }
    }
    sheet.showModal();
    rowsEl.querySelector("button")?.focus();
  }

  function addBubble(phone, m) {
    if (phone.bubbles.has(m.wamid)) {
      setStatus(phone.bubbles.get(m.wamid), m.status, m.statuses?.[m.statuses.length - 1]?.errorCode);
      return;
    }
    const log = $(".log", phone.root);
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    const li = bubbleFor(phone, m);
    phone.bubbles.set(m.wamid, li);
    log.append(li);
    if (nearBottom || m.direction === "inbound") log.scrollTop = log.scrollHeight;
  }

  function phoneError(phone, message) {
    const box = $(".chat-error", phone.root);
    if (!message) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.textContent = message;
    box.hidden = false;
  }

  // ---- phones (one chat per customer) ---------------------------------------------------------------------------
  function matches(phone, customerDigits, phoneNumberId) {
    return digitsOf(phone.number) === customerDigits && (!phoneNumberId || phoneNumberId === businessSelect.value);
  }

  function addPhone(number, name) {
    const root = $("#phone-template").content.firstElementChild.cloneNode(true);
    const phone = { root, number, name, bubbles: new Map(), refresh: async () => {} };
    const countrySel = $(".country", root);
    const numberBox = $(".number", root);
    const nameBox = $(".name", root);
    const output = $(".e164-value", root);
    for (const [code, label, dial] of COUNTRIES) countrySel.append(el("option", { value: code, text: `${label} (+${dial})` }));
    const listId = `known-${Math.random().toString(36).slice(2)}`;
    root.append(el("datalist", { id: listId }));
    numberBox.setAttribute("list", listId);
    numberBox.setAttribute("aria-label", "Customer number");
    countrySel.setAttribute("aria-label", "Country");
    nameBox.setAttribute("aria-label", "Profile name");
    numberBox.value = number;
    nameBox.value = name;
    countrySel.value = countryOf(number)?.[0] ?? "US";

    const apply = () => {
      const country = COUNTRIES.find((c) => c[0] === countrySel.value);
      const e164 = toE164(numberBox.value, country);
      numberBox.setAttribute("aria-invalid", e164 ? "false" : "true");
      output.textContent = e164 ?? "not a valid number";
      if (!e164) return;
      if (e164 !== phone.number) {
        phone.number = e164;
        phone.bubbles.clear();
        $(".log", root).replaceChildren();
        phoneError(phone, "");
        savePhones();
        void phone.refresh();
      }
      root.setAttribute("aria-label", `Chat of ${e164}`);
    };
    countrySel.addEventListener("change", () => {
      const country = COUNTRIES.find((c) => c[0] === countrySel.value);
      const current = countryOf(numberBox.value);
      const d = digitsOf(numberBox.value);
      if (numberBox.value.trim().startsWith("+") && current) numberBox.value = `+${country[2]}${d.slice(current[2].length)}`;
      apply();
    });
    numberBox.addEventListener("change", () => {
      const c = countryOf(numberBox.value);
      if (numberBox.value.trim().startsWith("+") && c && !COUNTRIES.find((x) => x[0] === countrySel.value && x[2] === c[2])) countrySel.value = c[0];
      apply();
    });
    nameBox.addEventListener("change", () => {
      phone.name = nameBox.value.trim() || "Sandbox User";
      savePhones();
    });
    $(".who", root).addEventListener("submit", (e) => e.preventDefault());
    $(".close-phone", root).addEventListener("click", () => {
      const i = phones.indexOf(phone);
      if (i >= 0 && phones.length > 1) {
        phones.splice(i, 1);
        root.remove();
        savePhones();
        $(".message", phones[Math.max(0, i - 1)].root).focus();
      }
    });
    $(".composer", root).addEventListener("submit", (e) => {
      e.preventDefault();
      const box = $(".message", root);
      const text = box.value;
      if (!text.trim()) return;
      box.value = "";
      void sendMessage(phone, { type: "text", text: { body: text } });
    });

    phone.refresh = async () => {
      if (!businessSelect.value) return;
      const asked = phone.number;
      try {
        const body = await api(`conversations/${encodeURIComponent(asked)}?phoneNumberId=${encodeURIComponent(businessSelect.value)}`);
        if (asked !== phone.number) return;
        for (const m of body.messages) addBubble(phone, m);
      } catch (err) {
        phoneError(phone, err.message);
      }
    };
    phones.push(phone);
    phonesEl.append(root);
    updateBusinessLabels();
    apply();
    root.setAttribute("aria-label", `Chat of ${phone.number}`);
    void phone.refresh();
    return phone;
  }

  async function sendMessage(phone, message) {
    phoneError(phone, "");
    const sendButton = $(".composer button", phone.root);
    sendButton.disabled = true;
    try {
      const result = await api("inbound", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ phoneNumberId: businessSelect.value, from: phone.number, profileName: phone.name || "Sandbox User", message }),
      });
      if (result.status !== 200) {
        phoneError(
          phone,
          result.status === 0
            ? "The bot did not answer the webhook for this message (is it running?). The sandbox retries, as Meta would."
            : `The bot answered HTTP ${result.status} to the webhook for this message. The sandbox redelivers, as Meta would; see the developer panel.`,
        );
      }
      await phone.refresh();
    } catch (err) {
      phoneError(phone, `Message not sent: ${err.message}`);
    } finally {
      sendButton.disabled = false;
    }
  }

  function updateBusinessLabels() {
    const b = businesses.find((p) => p.phoneNumberId === businessSelect.value);
    for (const phone of phones) {
      $(".biz-name", phone.root).textContent = "Business";
      $(".biz-number", phone.root).textContent = b ? `+${digitsOf(b.displayPhoneNumber)} · WhatsApp Business` : "";
    }
  }

  async function refreshKnownCustomers() {
    try {
      const { customers } = await api("customers");
      for (const phone of phones) {
        const list = phone.root.querySelector("datalist");
        list.replaceChildren(...customers.filter((c) => c.phone).map((c) => el("option", { value: c.phone, text: c.profileName ?? "" })));
      }
    } catch {
      /* the picker still takes typed numbers */
    }
  }

  // ---- developer panel ------------------------------------------------------------------------------------------
  const devButton = $("#toggle-dev");
  const devPanel = $("#devpanel");
  devButton.addEventListener("click", () => {
    const open = devPanel.hidden;
    devPanel.hidden = !open;
    devButton.setAttribute("aria-expanded", String(open));
    if (open) devPanel.querySelector("summary")?.focus();
  });
  const MAX_EVENTS = 200;
  function pushEvent(listSel, countSel, item) {
    const list = $(listSel);
    list.prepend(item);
    while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
    const count = $(countSel);
    count.textContent = String(Number(count.textContent) + 1);
  }
  function pretty(body) {
    try {
      return JSON.stringify(typeof body === "string" ? JSON.parse(body) : body, null, 2);
    } catch {
      return String(body);
    }
  }
  function webhookItem(w) {
    const ok = w.responseStatus === 200;
    const details = el("details", { "data-ok": String(ok) });
    details.append(
      el("summary", {},
        `${time(w.at)} · ${w.kind} webhook · attempt ${w.attempt} → `,
        el("span", { class: "status-pill", "data-ok": String(ok), text: w.responseStatus === 0 ? "no answer" : `HTTP ${w.responseStatus}` })),
      el("div", { class: "sig", text: `X-Hub-Signature-256: ${w.signature}` }),
      el("pre", { text: pretty(w.body) }),
    );
    return el("li", {}, details);
  }
  function requestItem(r) {
    const ok = r.responseStatus < 400;
    const details = el("details", { "data-ok": String(ok) });
    details.append(
      el("summary", {},
        `${time(r.at)} · ${r.method} ${r.path} → `,
        el("span", { class: "status-pill", "data-ok": String(ok), text: `HTTP ${r.responseStatus}${r.errorCode ? ` · error ${r.errorCode}` : ""}` })),
      el("div", { class: "sig", text: `Authorization: Bearer ${r.authorization}` }),
      r.errorMessage ? el("div", { class: "sig", text: `Meta's answer: ${r.errorMessage}` }) : null,
      el("pre", { text: pretty(r.body) }),
    );
    return el("li", {}, details);
  }
  function onRequest(r) {
    pushEvent("#requests", "#request-count", requestItem(r));
    if (r.responseStatus >= 400) {
      // the bot's send was refused: show it in that customer's chat, never swallow it
      const to = digitsOf(r.body?.to ?? "");
      const pid = String(r.path ?? "").split("/")[2];
      for (const phone of phones) {
        if (to && matches(phone, to, pid)) {
          phoneError(phone, `The Cloud API refused a message from the bot: HTTP ${r.responseStatus}${r.errorCode ? `, error ${r.errorCode}` : ""}${r.errorMessage ? ` (${r.errorMessage})` : ""}.`);
        }
      }
    }
  }
  function onWebhook(w) {
    pushEvent("#webhooks", "#webhook-count", webhookItem(w));
    if (w.responseStatus !== 200) {
      showBanner(`The bot answered ${w.responseStatus === 0 ? "nothing" : `HTTP ${w.responseStatus}`} to a ${w.kind} webhook (attempt ${w.attempt}); the sandbox redelivers, as Meta would. Details in the developer panel.`);
    } else if (!banner.hidden && banner.dataset.kind !== "fatal") {
      clearBanner();
    }
  }

  // ---- live updates -----------------------------------------------------------------------------------------------
  function connect() {
    const events = new EventSource(API + "events");
    events.addEventListener("open", () => {
      live.textContent = "live";
      live.className = "live ok";
      for (const phone of phones) void phone.refresh();
    });
    events.addEventListener("error", () => {
      live.textContent = "reconnecting…";
      live.className = "live down";
    });
    events.addEventListener("message", (e) => {
      const m = JSON.parse(e.data);
      for (const phone of phones) if (matches(phone, digitsOf(m.customer), m.phoneNumberId)) addBubble(phone, m);
      if (m.direction === "inbound") void refreshKnownCustomers();
    });
    events.addEventListener("status", (e) => {
      const s = JSON.parse(e.data);
      for (const phone of phones) {
        const bubble = phone.bubbles.get(s.wamid);
        if (bubble) setStatus(bubble, s.status, s.errorCode);
      }
    });
    events.addEventListener("request", (e) => onRequest(JSON.parse(e.data)));
    events.addEventListener("webhook", (e) => onWebhook(JSON.parse(e.data)));
  }

  async function start() {
    try {
      const cfg = await api("config");
      businesses = cfg.phoneNumbers;
      for (const p of businesses) businessSelect.append(el("option", { value: p.phoneNumberId, text: `+${digitsOf(p.displayPhoneNumber)}` }));
    } catch (err) {
      banner.dataset.kind = "fatal";
      showBanner(`The sandbox is not reachable: ${err.message}`);
      return;
    }
    businessSelect.addEventListener("change", () => {
      updateBusinessLabels();
      for (const phone of phones) {
        phone.bubbles.clear();
        $(".log", phone.root).replaceChildren();
        void phone.refresh();
      }
    });
    const saved = savedPhones();
    if (saved.length) for (const p of saved) addPhone(p.number, p.name ?? "Sandbox User");
    else addPhone(SAMPLE_NUMBERS[0], SAMPLE_NAMES[0]);
    $("#add-customer").addEventListener("click", () => {
      const used = new Set(phones.map((p) => p.number));
      const i = SAMPLE_NUMBERS.findIndex((n) => !used.has(n));
      const number = i >= 0 ? SAMPLE_NUMBERS[i] : `+1415555${String(1000 + phones.length).slice(-4)}`;
      const phone = addPhone(number, SAMPLE_NAMES[i >= 0 ? i : 0]);
      savePhones();
      void refreshKnownCustomers();
      $(".number", phone.root).focus();
    });
    connect();
    void refreshKnownCustomers();
    api("requests").then((r) => r.requests.forEach((x) => pushEvent("#requests", "#request-count", requestItem(x)))).catch(() => {});
    api("webhooks").then((r) => r.webhooks.forEach((w) => pushEvent("#webhooks", "#webhook-count", webhookItem(w)))).catch(() => {});
  }

  void start();
})();
