/* Live status: one websocket per signed-in page (body[data-live]).

   The server pushes events (core/events.py); nothing here ever polls.
   - {"kind": "swap", "id": ..., "html": ...}: replace the element with that id
     by the server-rendered partial (escaped by Django's templates), then
     dispatch "dc:swapped" on the new element so charts and the like redraw
     ("dc:before-swap" goes to the old one first).
   - {"kind": "toast", "level": ..., "message": ...}: show a toast (as text).
   Every event is also dispatched on document as "dc:event" (detail: the
   event), and each (re)open of the socket as "dc:socket-open", so a page
   script with its own view of the data (the Network Topology) can fetch it
   again when something it shows changed or may have been missed.
   Each time it connects (first time included, since the page was rendered
   before the socket joined) and after a drop with exponential backoff, it
   asks once for fresh copies of the live partials on the page.

   Tests read window.dcStatus and body[data-ws-state]
   (idle → connecting → open → closed → connecting → …; "off" when not live). */
(function () {
  "use strict";

  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  var body = document.body;
  var status = { connected: false, received: 0, swaps: 0, reconnects: 0 };
  window.dcStatus = status;

  if (!body || !body.hasAttribute("data-live") || !("WebSocket" in window)) return;

  var socket = null;
  var delay = MIN_DELAY;
  var timer = null;
  var opened = false; // has any socket of this page opened before?
  var stopped = false;

  function setState(state) {
    body.setAttribute("data-ws-state", state);
  }

  function url() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/ws/status/";
  }

  function swap(id, html) {
    var old = document.getElementById(id);
    if (!old || typeof html !== "string") return;
    // The partial is parsed inert (scripts in a <template> never run).
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    var fresh = template.content.firstElementChild;
    if (!fresh || fresh.id !== id) return;
    // Lets the old element release what it holds (chart instances) first.
    old.dispatchEvent(new CustomEvent("dc:before-swap", { bubbles: true, detail: { id: id } }));
    old.replaceWith(fresh);
    if (window.htmx) window.htmx.process(fresh);
    status.swaps += 1;
    fresh.dispatchEvent(new CustomEvent("dc:swapped", { bubbles: true, detail: { id: id } }));
  }

  function handle(event) {
    switch (event.kind) {
      case "swap":
        swap(event.id, event.html);
        break;
      case "toast":
        if (window.dc && window.dc.toast) window.dc.toast(event.level, event.message);
        break;
      default:
        break; // hello, pong, and kinds newer than this script
    }
    document.dispatchEvent(new CustomEvent("dc:event", { detail: event }));
  }

  function resync() {
    var ids = [];
    document.querySelectorAll("[data-live-partial][id]").forEach(function (el) { ids.push(el.id); });
    if (ids.length) socket.send(JSON.stringify({ kind: "sync", ids: ids }));
  }

  function connect() {
    timer = null;
    if (stopped) return;
    setState("connecting");
    try {
      socket = new WebSocket(url());
    } catch (err) {
      scheduleReconnect();
      return;
    }
    socket.addEventListener("open", function () {
      status.connected = true;
      delay = MIN_DELAY;
      setState("open");
      // Also on the first open: events published between the page's render
      // and the socket joining its group would otherwise be lost.
      resync();
      document.dispatchEvent(new CustomEvent("dc:socket-open", { detail: { reopened: opened } }));
      opened = true;
    });
    socket.addEventListener("message", function (message) {
      var event;
      try {
        event = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      status.received += 1;
      if (event && typeof event === "object") handle(event);
    });
    socket.addEventListener("close", function (close) {
      status.connected = false;
      socket = null;
      setState("closed");
      // 4401: the session is gone; reconnecting cannot help until the user
      // logs in again, which loads a new page anyway.
      if (close.code === 4401) {
        stopped = true;
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (timer || stopped) return;
    // Jitter, so the many pages a server restart drops do not all return at once.
    var wait = Math.round(delay / 2 + Math.random() * delay / 2);
    delay = Math.min(delay * 2, MAX_DELAY);
    status.reconnects += 1;
    timer = window.setTimeout(connect, wait);
  }

  // Coming back online is a good moment to try at once instead of waiting.
  window.addEventListener("online", function () {
    if (!socket && !stopped) {
      if (timer) window.clearTimeout(timer);
      delay = MIN_DELAY;
      connect();
    }
  });
  // Close cleanly when the page goes away so the server drops the group at once.
  window.addEventListener("pagehide", function () {
    stopped = true;
    if (timer) window.clearTimeout(timer);
    if (socket) socket.close(1000);
  });
  // A page restored from the back/forward cache comes back without its socket.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && !socket) {
      stopped = false;
      delay = MIN_DELAY;
      connect();
    }
  });

  connect();
})();
