/* The campaign's schedule form: show only the fields of the chosen kind (once / recurring /
   now), and offer the browser's own time zone while none was chosen. Without this script every
   field shows, and the server ignores those the kind does not use. */
(function () {
  "use strict";

  function wrapperOf(input) {
    return document.getElementById("div_" + input.id) || input.closest(".mb-3") || input.parentElement;
  }

  document.querySelectorAll("select[data-schedule-kind]").forEach(function (select) {
    var form = select.form;
    function update() {
      form.querySelectorAll("[data-schedule-kinds]").forEach(function (input) {
        var used = input.getAttribute("data-schedule-kinds").split(" ").indexOf(select.value) !== -1;
        wrapperOf(input).hidden = !used;
        // Not posted when hidden: what it holds cannot stand in the way.
        input.disabled = !used;
      });
    }
    select.addEventListener("change", update);
    update();
  });

  document.querySelectorAll("input[data-browser-zone]").forEach(function (input) {
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return;
    }
    var list = input.list;
    if (!zone || !list) return;
    for (var i = 0; i < list.options.length; i++) {
      if (list.options[i].value === zone) {
        input.value = zone;
        return;
      }
    }
  });
})();
