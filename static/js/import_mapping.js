/* The import's column mapping: a column's "new field" name and type show only while
   "New field…" is chosen for it. Without this script they always show (and are used only
   for the columns mapped to "New field…"). */
(function () {
  "use strict";
  document.querySelectorAll("select[data-new-field-select]").forEach(function (select) {
    var extra = document.querySelector('[data-new-field-for="' + select.id + '"]');
    if (!extra) return;
    function update() {
      var isNew = select.value === "new";
      extra.hidden = !isNew;
      extra.querySelectorAll("input, select").forEach(function (input) {
        input.disabled = !isNew;
      });
      if (isNew) {
        var name = extra.querySelector("input");
        if (name && document.activeElement === select) name.select();
      }
    }
    select.addEventListener("change", update);
    update();
  });
})();
