/* Volumes and Volume Snapshots: statuses and row actions follow the pushes.

   - status.js swaps #volume-status-<id> / #snapshot-status-<id> when the
     server pushes a change (storage/events.py). When a swap changes the
     status (data-status), every element whose data-refresh-for names that
     status (the row's actions) is fetched once again from its
     data-actions-url; for a volume the answer also carries the "attached
     to" cell, swapped out of band by htmx. A row being deleted just loses
     its actions.
   - Events published before the socket joined the project's group never
     reach the page, so each time the socket opens the page asks once for
     fresh copies of the statuses it shows (#storage-live's
     data-statuses-url) and swaps those that changed.
   Both are reactions to the socket, never polls. Also: the forms' quota
   bars follow the size and the chosen source. */
(function () {
  "use strict";

  var PREFIXES = { "volume-status-": "volume", "snapshot-status-": "snapshot" };
  var BATCH = 100;
  var GONE = { deleting: true, deleted: true };
  var before = {};
  var pushes = {}; // element id → number of the last swap that touched it
  var swapCount = 0;

  function kindOf(element) {
    if (!element || !element.id) return null;
    for (var prefix in PREFIXES) {
      if (element.id.indexOf(prefix) === 0) return PREFIXES[prefix];
    }
    return null;
  }

  document.addEventListener("dc:before-swap", function (event) {
    if (kindOf(event.target)) before[event.target.id] = event.target.getAttribute("data-status");
  });

  document.addEventListener("dc:swapped", function (event) {
    var status = event.target;
    if (!kindOf(status)) return;
    swapCount += 1;
    pushes[status.id] = swapCount;
    var previous = before[status.id];
    delete before[status.id];
    var now = status.getAttribute("data-status");
    if (previous === now || !window.htmx) return;
    document.querySelectorAll("[data-refresh-for='" + status.id + "']").forEach(function (target) {
      // Going or gone: nothing is left to act on, and the row may already
      // be gone from the server (asking would answer 404).
      if (GONE[now]) target.replaceChildren();
      else window.htmx.ajax("GET", target.getAttribute("data-actions-url"), { target: target, swap: "outerHTML" });
    });
  });

  function replace(old, fresh) {
    // The same steps and events as status.js, so the handler above runs too.
    old.dispatchEvent(new CustomEvent("dc:before-swap", { bubbles: true, detail: { id: old.id } }));
    old.replaceWith(fresh);
    fresh.dispatchEvent(new CustomEvent("dc:swapped", { bubbles: true, detail: { id: fresh.id, resync: true } }));
  }

  function resync() {
    var live = document.getElementById("storage-live");
    if (!live || !window.fetch) return;
    var params = [];
    document.querySelectorAll(".volume-status[id], .snapshot-status[id]").forEach(function (element) {
      var kind = kindOf(element);
      if (kind) params.push(kind + "=" + encodeURIComponent(element.id.slice(kind.length + "-status-".length)));
    });
    for (var start = 0; start < params.length; start += BATCH) {
      fetchBatch(live.getAttribute("data-statuses-url"), params.slice(start, start + BATCH));
    }
  }

  function fetchBatch(url, params) {
    var asked = swapCount;
    window.fetch(url + "?" + params.join("&"), { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        var template = document.createElement("template");
        template.innerHTML = html; // our own server-rendered (escaped) partials, parsed inert
        template.content.querySelectorAll(".volume-status[id], .snapshot-status[id]").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          // A push that landed while we asked is newer than our answer: keep it.
          if (!old || (pushes[fresh.id] || 0) > asked || old.outerHTML === fresh.outerHTML) return;
          replace(old, fresh);
        });
      })
      .catch(function () { /* the next (re)open asks again */ });
  }

  new MutationObserver(function () {
    if (document.body.getAttribute("data-ws-state") === "open") resync();
  }).observe(document.body, { attributes: true, attributeFilter: ["data-ws-state"] });
  if (document.body.getAttribute("data-ws-state") === "open") resync();

  // --- The forms' quota bars -----------------------------------------------------------

  function chosenSize(form) {
    var input = form.querySelector("[data-volume-size]");
    var typed = input ? parseInt(input.value, 10) : NaN;
    if (typed >= 0) return typed;
    var source = form.querySelector("[data-volume-source]");
    if (!source) return 0;
    var field = { image: "image", snapshot: "snapshot", volume: "source_volume" }[source.value];
    var select = field ? form.querySelector("[data-volume-source-field='" + field + "']") : null;
    var option = select && select.selectedIndex >= 0 ? select.options[select.selectedIndex] : null;
    return option ? parseInt(option.getAttribute("data-size"), 10) || 0 : 0;
  }

  function showSourceFields(form) {
    var source = form.querySelector("[data-volume-source]");
    if (!source) return;
    var wanted = { image: "image", snapshot: "snapshot", volume: "source_volume" }[source.value];
    form.querySelectorAll("[data-volume-source-field]").forEach(function (select) {
      var group = select.closest(".mb-3");
      if (group) group.classList.toggle("d-none", select.getAttribute("data-volume-source-field") !== wanted);
    });
  }

  function update(form) {
    showSourceFields(form);
    var size = chosenSize(form);
    form.querySelectorAll("[data-quota-bar]").forEach(function (bar) {
      var per = bar.getAttribute("data-per");
      if (per !== "size" || !form.querySelector("[data-volume-size]")) return; // fixed by the server
      var used = parseInt(bar.getAttribute("data-used"), 10) || 0;
      var limit = parseInt(bar.getAttribute("data-limit"), 10);
      var after = used + size;
      var text = bar.querySelector("[data-quota-after]");
      if (text) text.textContent = String(after);
      if (bar.hasAttribute("data-unlimited")) return;
      var over = after > limit;
      var progress = bar.querySelector("[data-quota-after-bar]");
      if (progress) {
        progress.value = Math.min(after, progress.max);
        progress.textContent = String(after);
        progress.classList.toggle("dc-progress-danger", over);
        progress.classList.toggle("dc-progress-warning", !over);
      }
      var warning = bar.querySelector("[data-quota-over]");
      if (warning) warning.classList.toggle("d-none", !over);
    });
  }

  document.querySelectorAll("[data-volume-form]").forEach(function (form) {
    form.addEventListener("change", function () { update(form); });
    form.addEventListener("input", function () { update(form); });
    update(form);
  });
})();
