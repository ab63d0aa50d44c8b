/**
 * The sandbox chat page: be the customer. Pick a number, type, send; bubbles update live over server-sent events.
 * No dependencies, no build step; all text goes in through textContent (never innerHTML).
 */
export const CHAT_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>WhatsApp sandbox</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #efeae2; display: flex; flex-direction: column; height: 100vh; }
  header { background: #075e54; color: #fff; padding: .6rem 1rem; display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; }
  header input, header select { padding: .3rem; }
  #log { flex: 1; overflow-y: auto; padding: 1rem; display: flex; flex-direction: column; gap: .4rem; }
  .bubble { max-width: 70%; padding: .5rem .7rem; border-radius: .6rem; white-space: pre-wrap; box-shadow: 0 1px 1px #0002; }
  .bubble[data-from="customer"] { align-self: flex-end; background: #d9fdd3; }
  .bubble[data-from="bot"] { align-self: flex-start; background: #fff; }
  .bubble button { display: block; width: 100%; margin-top: .4rem; border: 0; border-top: 1px solid #ddd; background: none; color: #027eb5; padding: .3rem; cursor: pointer; }
  .meta { font-size: .7rem; color: #667; text-align: right; }
  form { display: flex; gap: .5rem; padding: .6rem; background: #f0f2f5; }
  form input { flex: 1; padding: .6rem; border-radius: 1rem; border: 1px solid #ccc; }
</style>
</head>
<body>
<header>
  <strong>WhatsApp sandbox</strong>
  <label>Business <select id="business" aria-label="Business number"></select></label>
  <label>Customer <input id="customer" aria-label="Customer number" value="+14155550123" size="16"></label>
  <label>Name <input id="name" aria-label="Profile name" value="Sandbox User" size="12"></label>
</header>
<main id="log" aria-live="polite"></main>
<form id="composer">
  <input id="text" type="text" aria-label="Message" placeholder="Type a message" autocomplete="off">
  <button type="submit">Send</button>
</form>
<script>
(function () {
  var log = document.getElementById("log"), business = document.getElementById("business");
  var customer = document.getElementById("customer"), nameBox = document.getElementById("name");
  var ticks = { accepted: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓ read", failed: "⚠ failed" };
  function api(path) { return location.pathname.replace(/\\/?$/, "/") + "api/" + path; }
  function bubble(m) {
    var div = document.createElement("div");
    div.className = "bubble";
    div.setAttribute("data-from", m.direction === "outbound" ? "bot" : "customer");
    div.appendChild(document.createTextNode(m.text));
    (m.buttons || []).forEach(function (b) {
      var btn = document.createElement("button");
      btn.type = "button";
      btn.textContent = b.title;
      btn.onclick = function () {
        if (b.copy !== undefined && navigator.clipboard) navigator.clipboard.writeText(b.copy);
        if (b.replyId) inject({ type: "interactive", interactive: { type: "button_reply", button_reply: { id: b.replyId, title: b.title } } });
      };
      div.appendChild(btn);
    });
    var meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = new Date(m.at).toLocaleTimeString() + (m.direction === "outbound" ? " " + (ticks[m.status] || m.status) : "");
    div.appendChild(meta);
    return div;
  }
  function render() {
    var c = customer.value.trim();
    if (!c) return;
    fetch(api("conversations/" + encodeURIComponent(c) + "?phoneNumberId=" + encodeURIComponent(business.value)))
      .then(function (r) { return r.json(); })
      .then(function (body) {
        log.replaceChildren.apply(log, body.messages.map(bubble));
        log.scrollTop = log.scrollHeight;
      });
  }
  function inject(message) {
    return fetch(api("inbound"), {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ phoneNumberId: business.value, from: customer.value.trim(), profileName: nameBox.value, message: message })
    }).then(render);
  }
  document.getElementById("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var box = document.getElementById("text"), text = box.value;
    if (!text.trim()) return;
    box.value = "";
    inject({ type: "text", text: { body: text } });
  });
  customer.addEventListener("change", render);
  business.addEventListener("change", render);
  fetch(api("config")).then(function (r) { return r.json(); }).then(function (cfg) {
    cfg.phoneNumbers.forEach(function (p) {
      var o = document.createElement("option");
      o.value = p.phoneNumberId;
      o.textContent = p.displayPhoneNumber;
      business.appendChild(o);
    });
    render();
  });
  var events = new EventSource(api("events"));
  events.addEventListener("message", render);
  events.addEventListener("status", render);
})();
</script>
</body>
</html>
`;
