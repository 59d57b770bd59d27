/* Network Topology: the project's networks, routers and instances drawn with
   Cytoscape (window.cytoscape, from npm via scripts/vendor-assets).

   The graph comes from the JSON endpoint in #topology-graph[data-url]
   (network.views.topology_data: Cytoscape elements, every label escaped by
   being drawn on a canvas as text). It is fetched again, never polled:
   - when status.js reports an event (document "dc:event") about a network,
     subnet, port, router or floating IP, or an instance's status;
   - each time the status socket (re)opens ("dc:socket-open"), since events
     sent before it joined the project's group never reached this page.
   Fetches are coalesced (a launch sends several events at once).

   Tests read window.dcTopology ({cy, fetches, nodeIds()}) and the graph
   element's data-state ("loading" → "ready"), data-fetches and data-nodes
   (the node ids, space-separated). */
(function () {
  "use strict";

  var container = document.getElementById("topology-graph");
  if (!container || !window.cytoscape) return;

  var COALESCE_MS = 200;
  var COLORS = { external: "#198754", network: "#0d6efd", router: "#fd7e14", instance: "#6c757d",
                 error: "#dc3545" };
  var summary = document.getElementById("topology-summary");
  var state = { cy: null, fetches: 0, nodeIds: function () { return []; } };
  window.dcTopology = state;

  var cy = window.cytoscape({
    container: container,
    elements: [],
    minZoom: 0.2,
    maxZoom: 3,
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: {
        "label": "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4,
        "text-wrap": "ellipsis", "text-max-width": 160, "color": "#212529",
        "background-color": COLORS.instance, "width": 26, "height": 26 } },
      { selector: "node[kind = 'network']", style: {
        "shape": "round-rectangle", "width": 200, "height": 22, "background-color": COLORS.network,
        "label": "data(caption)", "text-valign": "center", "text-margin-y": 0, "color": "#fff",
        "font-weight": "bold", "text-max-width": 194 } },
      { selector: "node[kind = 'network'][?external]", style: { "background-color": COLORS.external } },
      { selector: "node[kind = 'router']", style: {
        "shape": "diamond", "width": 34, "height": 34, "background-color": COLORS.router } },
      { selector: "node[kind = 'instance']", style: { "shape": "ellipse" } },
      { selector: "node[status = 'ERROR']", style: { "border-width": 3, "border-color": COLORS.error } },
      { selector: "node[status = 'BUILD']", style: { "border-width": 2, "border-style": "dashed",
                                                     "border-color": "#0dcaf0" } },
      { selector: "edge", style: {
        "width": 2, "line-color": "#adb5bd", "curve-style": "bezier", "label": "data(label)",
        "font-size": 9, "color": "#495057", "text-rotation": "autorotate", "text-background-color": "#fff",
        "text-background-opacity": 0.8, "text-background-padding": 1 } },
      { selector: "edge[kind = 'gateway']", style: { "line-color": COLORS.external, "line-style": "dashed",
                                                     "width": 3 } },
      { selector: "edge[kind = 'interface']", style: { "line-color": COLORS.router, "width": 3 } },
      { selector: "node:selected", style: { "overlay-opacity": 0.15 } }
    ],
    layout: { name: "preset" }
  });
  state.cy = cy;
  state.nodeIds = function () { return cy.nodes().map(function (n) { return n.id(); }).sort(); };

  function caption(data) {
    var cidrs = data.cidrs && data.cidrs.length ? " " + data.cidrs.join(", ") : "";
    return String(data.label) + cidrs;
  }

  function layout() {
    // External networks on top, then routers, the private networks and their instances.
    cy.layout({
      name: "breadthfirst", directed: false, spacingFactor: 1.1, padding: 30, animate: false,
      roots: cy.nodes("[kind = 'network'][?external]").length ? cy.nodes("[kind = 'network'][?external]")
                                                              : undefined
    }).run();
  }

  /* Bring the graph to ``graph`` ({nodes, edges}): keep what stays (so the
     picture moves only when its shape changes), update data, add and remove
     the rest. */
  function apply(graph) {
    var wanted = {};
    var changedShape = false;
    (graph.nodes || []).concat(graph.edges || []).forEach(function (element) {
      wanted[element.data.id] = true;
    });
    cy.batch(function () {
      cy.elements().forEach(function (element) {
        if (!wanted[element.id()]) {
          element.remove();
          changedShape = true;
        }
      });
      (graph.nodes || []).forEach(function (node) {
        node.data.caption = caption(node.data);
        var existing = cy.getElementById(node.data.id);
        if (existing.length) existing.data(node.data);
        else {
          cy.add({ group: "nodes", data: node.data });
          changedShape = true;
        }
      });
      (graph.edges || []).forEach(function (edge) {
        var existing = cy.getElementById(edge.data.id);
        if (existing.length) existing.data(edge.data);
        else {
          cy.add({ group: "edges", data: edge.data });
          changedShape = true;
        }
      });
    });
    if (changedShape) layout();
    var ids = state.nodeIds();
    container.setAttribute("data-nodes", ids.join(" "));
    container.setAttribute("data-edges", cy.edges().map(function (e) { return e.id(); }).sort().join(" "));
    if (summary) {
      var count = function (kind) {
        var n = cy.nodes("[kind = '" + kind + "']").length;
        return n + " " + kind + (n === 1 ? "" : "s");
      };
      summary.textContent = [count("network"), count("router"), count("instance")].join(", ");
    }
  }

  var inFlight = false;
  var again = false;
  var timer = null;

  function fetchGraph() {
    timer = null;
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    window.fetch(container.getAttribute("data-url"), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) throw new Error("topology: HTTP " + response.status);
      return response.json();
    }).then(function (graph) {
      apply(graph);
      state.fetches += 1;
      container.setAttribute("data-fetches", String(state.fetches));
      container.setAttribute("data-state", "ready");
    }).catch(function () {
      container.setAttribute("data-state", "failed");
      if (summary) summary.textContent = "The topology could not be loaded.";
    }).then(function () {
      inFlight = false;
      if (again) {
        again = false;
        schedule();
      }
    });
  }

  function schedule() {
    if (!timer) timer = window.setTimeout(fetchGraph, COALESCE_MS);
  }

  var RESOURCES = { network: true, subnet: true, port: true, router: true, floating_ip: true };

  document.addEventListener("dc:event", function (event) {
    var data = event.detail || {};
    if ((data.kind === "network" && RESOURCES[data.resource]) || (data.kind === "swap" && data.instance)) {
      schedule();
    }
  });
  document.addEventListener("dc:socket-open", schedule);

  // A click on a node opens its page (the URL comes from the server, same origin).
  cy.on("tap", "node", function (event) {
    var url = event.target.data("url");
    if (typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/") window.location.assign(url);
  });

  fetchGraph();
})();
