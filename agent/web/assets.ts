/**
 * The status page's files (agent/web/page.ts), kept as strings so that `tsc` carries them into
 * `dist/` with the agent and nothing is read from disk at run time. Plain HTML, CSS and
 * JavaScript for the kiosk browser: no framework, no build step, no inline script or style (the
 * Content-Security-Policy forbids them). Every text the page shows about a payment comes from
 * the agent (agent/texts.ts through the events stream): the page formats no money and words no
 * decline itself. Data is written with `textContent` only, never parsed as HTML.
 *
 * Made for 800×480 and up: large type, and every state said by colour and in words.
 */

/** `GET /` with a session. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>POS terminal status</title>
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/app.js" defer></script>
</head>
<body>
<header>
  <span id="device" class="device">POS terminal</span>
  <span id="link" class="badge" data-tone="idle">Connecting…</span>
</header>
<main>
  <section id="payment" class="panel payment" data-tone="idle" aria-live="polite">
    <div id="payment-label" class="label">Ready</div>
    <div id="prompt" class="prompt">Waiting for the next payment</div>
    <div id="amount" class="amount"></div>
  </section>
  <section class="panel side">
    <h2>Devices</h2>
    <ul id="devices" class="devices"></ul>
    <h2>Offline queue</h2>
    <dl class="queue">
      <dt>Waiting to send</dt><dd id="queue-depth">–</dd>
      <dt>Oldest</dt><dd id="queue-oldest">–</dd>
      <dt>Stored offline</dt><dd id="queue-exposure">–</dd>
      <dt>Send before</dt><dd id="queue-deadline">–</dd>
    </dl>
    <h2>Batch</h2>
    <dl class="queue">
      <dt>Open batch</dt><dd id="batch-open">–</dd>
      <dt>Last close</dt><dd id="batch-last">–</dd>
      <dt>Exceptions</dt><dd id="batch-exceptions">–</dd>
    </dl>
  </section>
  <section class="panel recent">
    <h2>Last payments</h2>
    <table><tbody id="recent"></tbody></table>
  </section>
</main>
<div id="banner" class="banner" hidden></div>
</body>
</html>
`;

/** `GET /` without a session, and `/login` with a bad code. */
export const SIGN_IN_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>POS terminal status — sign in</title>
<link rel="stylesheet" href="/ui/app.css">
</head>
<body class="signin">
<main>
  <h1>Sign in to the terminal status</h1>
  <p>This link is used up, expired, or you are not signed in.</p>
  <p>On this terminal, run</p>
  <pre>pos-agent open --config /etc/pos-agent/config.json</pre>
  <p>and open the one-time link it prints (valid for 60 seconds).</p>
</main>
</body>
</html>
`;

/** `GET /ui/app.css`. */
export const APP_CSS = `:root {
  --bg: #101418; --panel: #1b2128; --text: #f2f4f6; --muted: #a9b4be;
  --ok: #1f9d55; --stored: #d68a00; --bad: #d2342c; --busy: #2f6fd6; --idle: #4a5561;
  font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: var(--bg); color: var(--text); }
body { display: flex; flex-direction: column; font-size: 18px; line-height: 1.25; }
header { display: flex; justify-content: space-between; align-items: center; padding: 6px 12px; }
.device { font-size: 20px; color: var(--muted); }
.badge { font-size: 22px; font-weight: bold; padding: 4px 14px; border-radius: 6px; }
main { flex: 1; display: grid; gap: 8px; padding: 0 8px 8px;
  grid-template-columns: 3fr 2fr; grid-template-rows: 1fr auto; min-height: 0; }
.panel { background: var(--panel); border-radius: 8px; padding: 8px 12px; overflow: hidden; }
.payment { display: flex; flex-direction: column; justify-content: center; gap: 6px; }
.payment .label { font-size: 22px; font-weight: bold; letter-spacing: 0.05em; text-transform: uppercase; }
.payment .prompt { font-size: 34px; font-weight: bold; }
.payment .prompt.long { font-size: 28px; }
.payment .amount { font-size: 30px; }
.side { font-size: 17px; overflow: auto; }
h2 { font-size: 15px; margin: 4px 0; color: var(--muted); text-transform: uppercase; letter-spacing: 0.05em; }
.devices { list-style: none; margin: 0 0 6px; padding: 0; }
.devices li { display: flex; justify-content: space-between; gap: 8px; }
.devices .state { font-weight: bold; padding: 0 6px; border-radius: 4px; }
.queue { display: grid; grid-template-columns: auto 1fr; gap: 2px 10px; margin: 0; }
.queue dt { color: var(--muted); }
.queue dd { margin: 0; font-weight: bold; }
.recent { grid-column: 1 / 3; font-size: 16px; max-height: 150px; overflow: hidden; }
.recent table { width: 100%; border-collapse: collapse; }
.recent td { padding: 2px 6px; white-space: nowrap; }
/* One line per payment, the sentence cut with an ellipsis, so whole rows fit at 480 px. */
.recent td.msg { overflow: hidden; text-overflow: ellipsis; max-width: 0; width: 100%; }
.recent td.time { border-left: 8px solid var(--idle); }
.recent td.time[data-tone="ok"] { border-left-color: var(--ok); }
.recent td.time[data-tone="stored"] { border-left-color: var(--stored); }
.recent td.time[data-tone="bad"] { border-left-color: var(--bad); }
.recent td.time[data-tone="busy"] { border-left-color: var(--busy); }
/* State by colour (and always also in words): the payment panel, the link badge, the device
   states and the bar in front of each recent payment. Declared last so they win over .panel. */
.panel[data-tone="ok"], .badge[data-tone="ok"], .state[data-tone="ok"] { background: var(--ok); color: #fff; }
.panel[data-tone="stored"], .badge[data-tone="stored"] { background: var(--stored); color: #111; }
.panel[data-tone="bad"], .badge[data-tone="bad"], .state[data-tone="bad"] { background: var(--bad); color: #fff; }
.panel[data-tone="busy"], .badge[data-tone="busy"] { background: var(--busy); color: #fff; }
.badge[data-tone="idle"] { background: var(--idle); color: #fff; }
.banner { position: fixed; left: 0; right: 0; bottom: 0; padding: 10px; font-size: 22px;
  font-weight: bold; text-align: center; background: var(--bad); }
.signin main { display: block; padding: 24px; font-size: 22px; }
.signin pre { background: var(--panel); padding: 12px; font-size: 18px; white-space: pre-wrap; }
`;

/** `GET /ui/app.js`. */
export const APP_JS = `'use strict';
// The terminal status page: one EventSource, the agent's own texts, textContent only.
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var TONE = {
    present_card: 'busy', enter_pin: 'busy', authorizing: 'busy',
    approved_online: 'ok', approved_offline: 'stored', declined: 'bad', failed: 'bad',
    reversed: 'bad', canceled: 'idle', warning: 'stored'
  };
  var LABEL = {
    present_card: 'Payment in progress', enter_pin: 'Payment in progress',
    authorizing: 'Payment in progress', approved_online: 'Approved',
    approved_offline: 'Approved offline — stored', declined: 'Declined', failed: 'Not completed',
    reversed: 'Reversed', canceled: 'Canceled', warning: 'Warning'
  };
  var STATE_TONE = {
    approved: 'ok', confirmed: 'ok', stored: 'stored', forwarded: 'stored', declined: 'bad',
    reversed: 'bad', failed: 'bad', canceled: 'idle'
  };
  function time(iso) {
    if (!iso) return '–';
    var d = new Date(iso);
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  function ago(iso) {
    var minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
    return minutes < 1 ? 'just now' : minutes + ' min ago';
  }
  function showPrompt(p) {
    var panel = $('payment');
    panel.dataset.tone = TONE[p.kind] || 'idle';
    panel.dataset.kind = p.kind;
    $('payment-label').textContent = LABEL[p.kind] || p.kind;
    $('prompt').textContent = p.text;
    $('prompt').classList.toggle('long', p.text.length > 48);
    $('amount').textContent = p.amount || '';
  }
  function showStatus(s) {
    $('device').textContent = s.deviceId + ' · agent ' + s.version;
    var link = $('link');
    var online = s.link.state === 'online';
    link.dataset.tone = online ? 'ok' : 'bad';
    link.textContent = online ? 'Online' : 'Offline — payments are stored';
    var devices = $('devices');
    devices.replaceChildren();
    s.devices.forEach(function (d) {
      var li = document.createElement('li');
      var name = document.createElement('span');
      name.textContent = d.name === 'pinPad' ? 'PIN pad' : d.name;
      var state = document.createElement('span');
      state.className = 'state';
      state.dataset.tone = d.state === 'connected' ? 'ok' : 'bad';
      state.textContent = d.state;
      li.append(name, state);
      devices.append(li);
    });
    $('queue-depth').textContent = String(s.queue.depth) + (s.queue.dead > 0 ? ' (' + s.queue.dead + ' failed)' : '');
    $('queue-oldest').textContent = s.queue.oldestAt ? time(s.queue.oldestAt) + ', ' + ago(s.queue.oldestAt) : '–';
    var exposure = s.exposureText || [];
    $('queue-exposure').textContent = exposure.length === 0 ? 'nothing'
      : exposure.map(function (e) { return e.amount + ' (' + e.count + ')'; }).join(', ');
    var deadline = s.offline && s.offline.exposure.earliestDeadlineAt;
    $('queue-deadline').textContent = deadline ? new Date(deadline).toLocaleString() : '–';
    var batch = s.batchText;
    if (batch) {
      $('batch-open').textContent = batch.count + ' payments' + (batch.open.length ? ': ' + batch.open.join(', ') : '');
      $('batch-last').textContent = batch.lastClosed || 'none yet';
      $('batch-exceptions').textContent = batch.openExceptions === 0 ? 'none'
        : batch.openExceptions + ' open: pos-agent batch exceptions';
    }
    var rows = $('recent');
    rows.replaceChildren();
    (s.recent || []).slice(0, 4).forEach(function (p) {
      var tr = document.createElement('tr');
      var cells = [
        time(p.createdAt), p.amountText,
        p.card ? p.card.brand + ' ••••' + p.card.last4 : '–', p.message
      ];
      tr.title = p.message;
      cells.forEach(function (text, i) {
        var td = document.createElement('td');
        if (i === 0) {
          td.className = 'time';
          td.dataset.tone = STATE_TONE[p.state] || 'busy';
        }
        if (i === 3) td.className = 'msg';
        td.textContent = text;
        tr.append(td);
      });
      tr.dataset.state = p.state;
      rows.append(tr);
    });
  }
  var source = new EventSource('/v1/events?include=status');
  source.addEventListener('status', function (e) {
    $('banner').hidden = true;
    showStatus(JSON.parse(e.data));
  });
  Object.keys(TONE).forEach(function (kind) {
    source.addEventListener(kind, function (e) { showPrompt(JSON.parse(e.data)); });
  });
  source.onerror = function () {
    var banner = $('banner');
    banner.textContent = 'The agent is not answering — retrying. If this stays, sign in again with pos-agent open.';
    banner.hidden = false;
  };
})();
`;
