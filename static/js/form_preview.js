/* The form builder's live preview: the builder form is posted (as it stands, unsaved) to the
   preview view into the iframe, a moment after each change. Without JavaScript the preview card
   stays hidden: the hosted page shows the saved form. */
(function () {
  "use strict";
  var frame = document.getElementById("form-preview");
  var form = document.getElementById("signup-form-builder");
  if (!frame || !form) return;
  document.getElementById("preview-card").classList.remove("d-none");
  var timer = null;

  function refresh() {
    var action = form.getAttribute("action");
    var target = form.getAttribute("target");
    form.setAttribute("action", frame.getAttribute("data-preview-url"));
    form.setAttribute("target", frame.name);
    HTMLFormElement.prototype.submit.call(form);
    if (action === null) form.removeAttribute("action"); else form.setAttribute("action", action);
    if (target === null) form.removeAttribute("target"); else form.setAttribute("target", target);
  }

  function soon() {
    window.clearTimeout(timer);
    // After the builder's own listeners have written the steps into their field.
    timer = window.setTimeout(refresh, 300);
  }

  ["input", "change", "click"].forEach(function (type) {
    form.addEventListener(type, soon);
  });
  refresh();
})();
