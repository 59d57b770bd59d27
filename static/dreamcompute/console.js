/* Console Log tab: follows the guest's serial console live.

   The server tails the console file and pushes what is appended over
   /ws/console/<id>/ ({"kind": "reset"|"append", "text": ...}); the page only
   listens. Text goes in with textContent / text nodes, never as HTML.
   Following starts when the tab is shown (or at load when it is the open
   tab) and reconnects with backoff after a drop; refusals (4401 signed out,
   4403 not a member, 4404 no such instance here) are final.

   Tests read #console-state[data-console-state] (idle → connecting →
   following → closed | refused). */
(function () {
  "use strict";

  var pre = document.getElementById("console-log");
  if (!pre || !("WebSocket" in window)) return;
  var state = document.getElementById("console-state");
  var tab = document.getElementById("tab-console");
  var MAX_CHARS = 512 * 1024;
  var FINAL = { 4401: "Signed out: log in again to follow the console.",
                4403: "You are not a member of this instance's project.",
                4404: "This instance is not in your current project." };
  var socket = null;
  var started = false;
  var stopped = false;
  var delay = 1000;
  var chars = pre.textContent.length;

  function setState(name, text) {
    if (!state) return;
    state.setAttribute("data-console-state", name);
    state.textContent = text;
  }

  function atBottom() {
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 32;
  }

  function write(reset, text) {
    var follow = reset || atBottom();
    if (reset) {
      pre.textContent = text;
      chars = text.length;
    } else if (text) {
      pre.appendChild(document.createTextNode(text));
      chars += text.length;
      if (chars > MAX_CHARS) { // keep the page light on a chatty guest
        pre.textContent = pre.textContent.slice(-MAX_CHARS / 2);
        chars = pre.textContent.length;
      }
    }
    if (follow) pre.scrollTop = pre.scrollHeight;
  }

  function connect() {
    if (stopped) return;
    setState("connecting", "Connecting…");
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(scheme + "//" + window.location.host + pre.getAttribute("data-console-socket"));
    socket.addEventListener("open", function () {
      delay = 1000;
      setState("following", "Following the console live.");
    });
    socket.addEventListener("message", function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (err) { return; }
      if (!event || typeof event.text !== "string") return;
      if (event.kind === "reset") write(true, event.text);
      else if (event.kind === "append") write(false, event.text);
    });
    socket.addEventListener("close", function (close) {
      socket = null;
      if (FINAL[close.code]) {
        stopped = true;
        setState("refused", FINAL[close.code]);
        return;
      }
      if (stopped) return;
      setState("closed", "Connection lost; reconnecting…");
      var wait = Math.round(delay / 2 + Math.random() * delay / 2);
      delay = Math.min(delay * 2, 30000);
      window.setTimeout(connect, wait);
    });
  }

  function start() {
    if (started) return;
    started = true;
    pre.scrollTop = pre.scrollHeight;
    connect();
  }

  if (tab) tab.addEventListener("shown.bs.tab", start);
  var pane = pre.closest(".tab-pane");
  if (!pane || pane.classList.contains("active")) start();

  window.addEventListener("pagehide", function () {
    stopped = true;
    if (socket) socket.close(1000);
  });
})();
