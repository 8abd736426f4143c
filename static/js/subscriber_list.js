// Subscriber list: tick every row of the page, then offer "select all N matching" (the whole
// filtered set, which the server selects from the filters, not from the ticked ids).
(function () {
  const form = document.getElementById("bulk-form");
  const pageBox = document.querySelector("[data-select-page]");
  if (!form || !pageBox) return;
  const rows = Array.from(document.querySelectorAll("input[data-row]"));
  const scope = form.querySelector("[data-bulk-scope]");
  const banner = document.getElementById("select-all-banner");
  const selectAll = banner.querySelector("[data-select-all]");
  const allChosen = banner.querySelector("[data-all-chosen]");

  function refresh() {
    const ticked = rows.filter((box) => box.checked).length;
    pageBox.checked = rows.length > 0 && ticked === rows.length;
    pageBox.indeterminate = ticked > 0 && ticked < rows.length;
    const whole = pageBox.checked;
    banner.classList.toggle("d-none", !whole);
    if (!whole && scope.value === "all") scope.value = "selected";
    const everyone = scope.value === "all";
    selectAll.classList.toggle("d-none", everyone);
    allChosen.classList.toggle("d-none", !everyone);
  }

  pageBox.addEventListener("change", () => {
    rows.forEach((box) => { box.checked = pageBox.checked; });
    refresh();
  });
  rows.forEach((box) => box.addEventListener("change", refresh));
  selectAll.addEventListener("click", () => { scope.value = "all"; refresh(); });
  scope.addEventListener("change", () => {
    if (scope.value === "all") rows.forEach((box) => { box.checked = true; });
    refresh();
  });
  refresh();
})();
