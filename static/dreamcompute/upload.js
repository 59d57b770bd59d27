/* Image create/upload: sends the form with XMLHttpRequest so the upload's
   progress events drive the Bootstrap progress bar. The server answers
   like an htmx request (HX-Request header): an HX-Redirect when done, or
   the form again with its errors, which replaces this one. Without
   JavaScript the form posts normally. */
(function () {
  "use strict";

  function bind(form) {
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return;
      event.preventDefault();
      var progress = form.querySelector("[data-upload-progress]");
      var bar = form.querySelector("[data-upload-bar]");
      var status = form.querySelector("[data-upload-status]");
      var submit = form.querySelector("[data-upload-submit]");
      var file = form.querySelector("[data-upload-file]");
      var sending = file && file.files && file.files.length > 0;
      var token = form.querySelector("input[name=csrfmiddlewaretoken]");

      function say(text) {
        status.classList.remove("d-none");
        status.textContent = text;
      }

      function show(percent) {
        progress.classList.remove("d-none");
        progress.setAttribute("aria-valuenow", String(percent));
        bar.style.width = percent + "%"; // CSSOM, which the CSP allows (style attributes it does not)
        bar.textContent = percent + "%";
      }

      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("HX-Request", "true");
      if (token) xhr.setRequestHeader("X-CSRFToken", token.value);
      if (sending) {
        show(0);
        say("Uploading…");
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable && e.total > 0) show(Math.floor((100 * e.loaded) / e.total));
        });
        xhr.upload.addEventListener("load", function () {
          show(100);
          say("Uploaded; the image is being checked and stored…");
        });
      }
      xhr.addEventListener("load", function () {
        var target = xhr.getResponseHeader("HX-Redirect");
        if (target) {
          window.location.assign(target);
          return;
        }
        if (xhr.status === 200) {
          // The form again, with the server's (escaped) error messages.
          var template = document.createElement("template");
          template.innerHTML = xhr.responseText.trim();
          var fresh = template.content.querySelector("[data-upload-form]");
          if (fresh) {
            form.replaceWith(fresh);
            bind(fresh);
            return;
          }
        }
        submit.disabled = false;
        say("The server refused the request (HTTP " + xhr.status + ").");
      });
      xhr.addEventListener("error", function () {
        submit.disabled = false;
        say("The upload failed: the connection was lost. Try again.");
      });
      submit.disabled = true;
      xhr.send(new FormData(form));
    });
  }

  document.querySelectorAll("[data-upload-form]").forEach(bind);
})();
