/* Copy buttons: <button data-copy="#some-field" data-copied-text="Copied">. Copies the field's
   text to the clipboard (or, where the clipboard API is refused, selects it for Ctrl+C). */
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var label = button.textContent;
    button.addEventListener("click", function () {
      var source = document.querySelector(button.getAttribute("data-copy"));
      if (!source) return;
      var text = "value" in source ? source.value : source.textContent;
      function done() {
        button.textContent = button.getAttribute("data-copied-text") || "Copied";
        window.setTimeout(function () { button.textContent = label; }, 2000);
      }
      function fallback() {
        source.focus();
        if (source.select) source.select();
        try {
          if (document.execCommand("copy")) done();
        } catch (e) { /* selected: the user can press Ctrl+C */ }
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, fallback);
      } else {
        fallback();
      }
    });
  });
})();
