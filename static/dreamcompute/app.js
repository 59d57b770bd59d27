/* DreamCompute dashboard behaviour that every page shares. Loaded from a
   file (no inline scripts: the page's CSP forbids them). */
(function () {
  "use strict";

  var LEVELS = { success: "success", info: "info", warning: "warning", danger: "danger", error: "danger" };

  function showToast(element) {
    if (window.bootstrap && window.bootstrap.Toast) {
      window.bootstrap.Toast.getOrCreateInstance(element, { delay: 6000 }).show();
    }
  }

  /* A toast from untrusted text: the message goes in with textContent, never
     as HTML, and the level is picked from a fixed list. */
  function toast(level, message) {
    var template = document.getElementById("toast-template");
    var container = document.getElementById("toasts");
    if (!template || !container) return null;
    var element = template.content.firstElementChild.cloneNode(true);
    element.classList.add("text-bg-" + (LEVELS[level] || "info"));
    if (LEVELS[level] === "danger") element.setAttribute("role", "alert");
    element.querySelector(".toast-body").textContent = String(message == null ? "" : message);
    element.addEventListener("hidden.bs.toast", function () { element.remove(); });
    container.appendChild(element);
    showToast(element);
    return element;
  }

  window.dc = window.dc || {};
  window.dc.toast = toast;

  document.addEventListener("DOMContentLoaded", function () {
    // Django's messages arrive rendered and visible (readable without
    // JavaScript); here they just get Bootstrap's auto-hide.
    document.querySelectorAll("#toasts [data-dc-toast]").forEach(showToast);
  });
})();
