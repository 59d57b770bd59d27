/* Overview: one Chart.js doughnut per quota, drawn from the data attributes
   of the server-rendered #quota-usage partial, and drawn again each time the
   websocket swaps that partial in (status.js dispatches "dc:swapped"). */
(function () {
  "use strict";

  var PARTIAL_ID = "quota-usage";

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function colourFor(percent) {
    if (percent >= 90) return cssVar("--bs-danger", "#dc3545");
    if (percent >= 70) return cssVar("--bs-warning", "#ffc107");
    return cssVar("--bs-success", "#198754");
  }

  function draw(card, animate) {
    var canvas = card.querySelector("canvas");
    if (!canvas || card.hasAttribute("data-unlimited")) return;
    var used = Number(card.dataset.used) || 0;
    var limit = Number(card.dataset.limit) || 0;
    var percent = Number(card.dataset.percent) || 0;
    var free = Math.max(limit - used, 0);
    var existing = window.Chart.getChart(canvas);
    if (existing) existing.destroy();
    new window.Chart(canvas, {
      type: "doughnut",
      data: {
        labels: ["Used", "Available"],
        datasets: [{
          // A zero limit with nothing used still draws an (empty) ring.
          data: used === 0 && free === 0 ? [0, 1] : [used, free],
          backgroundColor: [colourFor(percent), cssVar("--bs-secondary-bg", "#e9ecef")],
          borderWidth: 0,
        }],
      },
      options: {
        cutout: "70%",
        maintainAspectRatio: false,
        animation: animate ? { duration: 400 } : false,
        plugins: { legend: { display: false }, tooltip: { enabled: true } },
      },
    });
  }

  function drawAll(root, animate) {
    if (!root || !window.Chart) return;
    root.querySelectorAll(".quota[data-resource]").forEach(function (card) { draw(card, animate); });
    root.setAttribute("data-charts", "drawn");
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document.getElementById(PARTIAL_ID), true);
  });
  document.addEventListener("dc:before-swap", function (event) {
    if (!event.target || event.target.id !== PARTIAL_ID || !window.Chart) return;
    event.target.querySelectorAll("canvas").forEach(function (canvas) {
      var chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  });
  document.addEventListener("dc:swapped", function (event) {
    if (event.target && event.target.id === PARTIAL_ID) drawAll(event.target, false);
  });
})();
