/* The VNC console page (compute/templates/compute/vnc.html): noVNC's RFB
   client, served from static/vendor/novnc (scripts/vendor-assets copies it
   from the npm package; never a CDN), talking RFB through the websocket
   proxy /ws/vnc/?token=… (compute/vncproxy.py).

   The token is single-use: the socket spends it, so there is no automatic
   reconnect, and the token is removed from the address bar at once so that
   it stays out of the history and bookmarks. A dropped console is opened
   again from the instance's page, which issues a new link.

   Tests read #vnc-state[data-vnc-state]: idle → connecting → connected →
   disconnected, or connecting → failed. */
import RFB from "../vendor/novnc/core/rfb.js";

const screen = document.getElementById("vnc-screen");
const state = document.getElementById("vnc-state");
const ctrlAltDel = document.getElementById("vnc-ctrl-alt-del");
const BADGES = { connecting: "text-bg-info", connected: "text-bg-success", disconnected: "text-bg-secondary",
                 failed: "text-bg-danger" };

function setState(name, text) {
  state.setAttribute("data-vnc-state", name);
  state.textContent = text;
  state.className = "badge " + (BADGES[name] || "text-bg-secondary");
  state.title = text;
}

function start() {
  const path = screen.getAttribute("data-vnc-socket");
  screen.removeAttribute("data-vnc-socket");
  window.history.replaceState(null, "", window.location.pathname);
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  let connected = false;
  let refusal = null;

  setState("connecting", "Connecting…");
  // noVNC offers no subprotocol unless asked; the proxy answers "binary".
  const rfb = new RFB(screen, scheme + "//" + window.location.host + path, { wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;

  rfb.addEventListener("connect", () => {
    connected = true;
    setState("connected", "Connected");
    ctrlAltDel.disabled = false;
    rfb.focus();
  });
  rfb.addEventListener("disconnect", () => {
    ctrlAltDel.disabled = true;
    if (connected) {
      setState("disconnected", "Disconnected: open the console again from the instance's page.");
    } else if (refusal) {
      setState("failed", refusal);
    } else {
      setState("failed", "Could not connect: the link was already used or has expired, or the instance is not " +
                         "running. Open the console again from the instance's page.");
    }
  });
  rfb.addEventListener("securityfailure", (event) => {
    refusal = "The VNC server refused the session: " + (event.detail.reason || "security failure");
  });
  rfb.addEventListener("desktopname", (event) => {
    if (event.detail.name) document.title = event.detail.name + " · DreamCompute";
  });
  ctrlAltDel.addEventListener("click", () => {
    rfb.sendCtrlAltDel();
    rfb.focus();
  });
}

if (screen && state && ctrlAltDel) start();
