/* Launch dialog: the quota bars' "after" values follow the chosen flavor and
   count. Each flavor <option> carries data-vcpus and data-ram; each bar
   carries data-used, data-limit and data-size (which option attribute one
   instance adds; empty means one per instance). The server rendered the
   same numbers for the initial choice, so the form reads fine without this. */
(function () {
  "use strict";

  function update(form) {
    var select = form.querySelector("[data-launch-flavor]");
    var countInput = form.querySelector("[data-launch-count]");
    var option = select && select.selectedIndex >= 0 ? select.options[select.selectedIndex] : null;
    var count = parseInt(countInput ? countInput.value : "1", 10);
    if (!(count >= 1)) count = 1;
    form.querySelectorAll("[data-quota-bar]").forEach(function (bar) {
      var used = parseInt(bar.getAttribute("data-used"), 10) || 0;
      var limit = parseInt(bar.getAttribute("data-limit"), 10);
      var size = bar.getAttribute("data-size");
      var each = size ? (option ? parseInt(option.getAttribute("data-" + size), 10) || 0 : 0) : 1;
      var after = used + each * count;
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

  function bind(root) {
    var forms = [];
    if (root.matches && root.matches("[data-launch-form]")) forms.push(root);
    if (root.querySelectorAll) forms = forms.concat(Array.prototype.slice.call(root.querySelectorAll("[data-launch-form]")));
    forms.forEach(function (form) {
      if (form.hasAttribute("data-launch-bound")) return;
      form.setAttribute("data-launch-bound", "");
      form.addEventListener("change", function () { update(form); });
      form.addEventListener("input", function () { update(form); });
      update(form);
    });
  }

  // htmx.onLoad runs for the page and for every piece htmx swaps in (the dialog's form).
  if (window.htmx) window.htmx.onLoad(bind);
  else document.addEventListener("DOMContentLoaded", function () { bind(document); });
})();
