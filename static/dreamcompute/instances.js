/* Instances list and detail: statuses and row actions follow the pushes.

   - status.js swaps #instance-status-<id> when the server pushes a state
     change. When a swap changes the instance's state (data-state:
     vm_state/task_state/locked), the actions partial of that instance
     (#instance-actions-<id>) is fetched once from its data-actions-url, so
     the menu offers what the new state allows.
   - Events published before the socket joined the project's group never
     reach the page (a build can finish between rendering the page and
     opening the socket), so each time the socket opens the page asks once
     for fresh copies of the statuses it shows (#instance-live's
     data-statuses-url) and swaps those that changed.
   Both are reactions to the socket, never polls. Also: the bulk actions'
   "select all" checkbox. */
(function () {
  "use strict";

  var PREFIX = "instance-status-";
  var BATCH = 100;
  var before = {};
  var pushes = {}; // element id → number of the last swap that touched it
  var swapCount = 0;

  function isStatus(element) {
    return element && element.id && element.id.indexOf(PREFIX) === 0;
  }

  document.addEventListener("dc:before-swap", function (event) {
    if (isStatus(event.target)) before[event.target.id] = event.target.getAttribute("data-state");
  });

  document.addEventListener("dc:swapped", function (event) {
    var status = event.target;
    if (!isStatus(status)) return;
    swapCount += 1;
    pushes[status.id] = swapCount;
    var previous = before[status.id];
    delete before[status.id];
    if (previous === status.getAttribute("data-state")) return; // only the progress moved
    var actions = document.getElementById("instance-actions-" + status.id.slice(PREFIX.length));
    if (!actions || !window.htmx) return;
    // A deleted instance has no actions, and asking for them would answer 404.
    if (status.getAttribute("data-state").indexOf("deleted/") === 0) actions.replaceChildren();
    else window.htmx.ajax("GET", actions.getAttribute("data-actions-url"), { target: actions, swap: "outerHTML" });
  });

  function replace(old, fresh) {
    // The same steps and events as status.js, so the handler above runs too.
    old.dispatchEvent(new CustomEvent("dc:before-swap", { bubbles: true, detail: { id: old.id } }));
    old.replaceWith(fresh);
    fresh.dispatchEvent(new CustomEvent("dc:swapped", { bubbles: true, detail: { id: fresh.id, resync: true } }));
  }

  function resync() {
    var live = document.getElementById("instance-live");
    if (!live || !window.fetch) return;
    var ids = [];
    document.querySelectorAll(".instance-status[id^='" + PREFIX + "']").forEach(function (element) {
      ids.push(element.id.slice(PREFIX.length));
    });
    for (var start = 0; start < ids.length; start += BATCH) {
      fetchBatch(live.getAttribute("data-statuses-url"), ids.slice(start, start + BATCH));
    }
  }

  function fetchBatch(url, ids) {
    var asked = swapCount;
    var query = ids.map(function (id) { return "id=" + encodeURIComponent(id); }).join("&");
    window.fetch(url + "?" + query, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        var template = document.createElement("template");
        template.innerHTML = html; // our own server-rendered (escaped) partials, parsed inert
        Array.prototype.forEach.call(template.content.querySelectorAll(".instance-status[id]"), function (fresh) {
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

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("input[data-select-all]")) return;
    var form = box.getAttribute("data-select-all");
    document.querySelectorAll("input[type=checkbox][form]").forEach(function (row) {
      if (row.getAttribute("form") === form) row.checked = box.checked;
    });
  });
})();
