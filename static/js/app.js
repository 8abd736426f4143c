// Dashboard behaviours declared in the markup, so that no page needs an inline handler
// (the Content-Security-Policy refuses onclick=..., onsubmit=...):
//   <form data-confirm="Delete this?">        asks before the form is sent
//   <select data-autosubmit>                  sends its form when changed
//   <button data-set-field="scope" data-set-value="all">  sets a field of its form first
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.hasAttribute && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-set-field]");
    if (!button || !button.form) return;
    var target = button.form.elements[button.getAttribute("data-set-field")];
    if (target) target.value = button.getAttribute("data-set-value");
  });
})();
