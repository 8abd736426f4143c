/* Signup form builder: edits the steps JSON (the #id_steps_json textarea) with a small UI.
 * Without JavaScript the textarea itself stays editable; the server validates either way. */
(function () {
  "use strict";
  var textarea = document.getElementById("id_steps_json");
  var root = document.getElementById("builder");
  if (!textarea || !root) return;
  var config = JSON.parse(document.getElementById("builder-config").textContent);
  var steps;
  try { steps = JSON.parse(textarea.value); } catch (e) { return; }  // leave the raw JSON
  if (!Array.isArray(steps)) return;
  var wrapper = textarea.closest(".mb-3") || textarea.parentNode;
  wrapper.style.display = "none";

  var KIND_LABELS = {
    email: "Email address", first_name: "First name", last_name: "Last name",
    attribute: "Custom attribute", topics: "Topic choices", consent: "Consent checkbox",
    hidden: "Hidden field (source, UTM)"
  };

  function sync() { textarea.value = JSON.stringify(steps); }

  function input(value, placeholder, onchange, type) {
    var el = document.createElement("input");
    el.className = "form-control form-control-sm";
    el.type = type || "text";
    el.value = value || "";
    el.placeholder = placeholder;
    el.addEventListener("input", function () { onchange(el.value); sync(); });
    return el;
  }

  function button(text, cls, onclick) {
    var el = document.createElement("button");
    el.type = "button";
    el.className = "btn btn-sm " + cls;
    el.textContent = text;
    el.addEventListener("click", function () { onclick(); sync(); render(); });
    return el;
  }

  function fieldRow(step, field, index) {
    var row = document.createElement("div");
    row.className = "border rounded p-2 mb-2 bg-light";
    row.setAttribute("data-field", field.kind);
    var top = document.createElement("div");
    top.className = "d-flex gap-2 align-items-center mb-2";
    var kind = document.createElement("select");
    kind.className = "form-select form-select-sm w-auto";
    config.kinds.forEach(function (k) {
      var option = document.createElement("option");
      option.value = k; option.textContent = KIND_LABELS[k] || k;
      if (k === field.kind) option.selected = true;
      kind.appendChild(option);
    });
    kind.addEventListener("change", function () { field.kind = kind.value; sync(); render(); });
    top.appendChild(kind);
    if (field.kind === "attribute") {
      var key = document.createElement("select");
      key.className = "form-select form-select-sm w-auto";
      key.appendChild(document.createElement("option"));
      config.custom_fields.forEach(function (f) {
        var option = document.createElement("option");
        option.value = f.key; option.textContent = f.label + " (" + f.type + ")";
        if (f.key === field.key) option.selected = true;
        key.appendChild(option);
      });
      key.addEventListener("change", function () { field.key = key.value; sync(); });
      top.appendChild(key);
    }
    if (field.kind !== "hidden") {
      var required = document.createElement("label");
      required.className = "small d-flex gap-1 align-items-center";
      var box = document.createElement("input");
      box.type = "checkbox"; box.checked = !!field.required || field.kind === "email";
      box.disabled = field.kind === "email";
      box.addEventListener("change", function () { field.required = box.checked; sync(); });
      required.appendChild(box); required.appendChild(document.createTextNode("required"));
      top.appendChild(required);
    }
    var spacer = document.createElement("span"); spacer.className = "ms-auto"; top.appendChild(spacer);
    if (index > 0) top.appendChild(button("↑", "btn-outline-secondary", function () {
      step.fields.splice(index - 1, 0, step.fields.splice(index, 1)[0]);
    }));
    top.appendChild(button("Remove", "btn-outline-danger", function () { step.fields.splice(index, 1); }));
    row.appendChild(top);
    var grid = document.createElement("div");
    grid.className = "row g-2";
    function cell(el) { var c = document.createElement("div"); c.className = "col-md-4"; c.appendChild(el); grid.appendChild(c); }
    if (field.kind === "hidden") {
      cell(input(field.key, "key (e.g. utm_source, source)", function (v) { field.key = v; }));
      cell(input(field.param, "from URL parameter (optional)", function (v) { field.param = v; }));
      cell(input(field.value, "fixed value (optional)", function (v) { field.value = v; }));
    } else {
      cell(input(field.label, "label (default in the form's language)", function (v) { field.label = v; }));
      cell(input(field.help_text, "help text", function (v) { field.help_text = v; }));
      cell(input(field.placeholder, "placeholder", function (v) { field.placeholder = v; }));
    }
    row.appendChild(grid);
    return row;
  }

  function render() {
    root.innerHTML = "";
    steps.forEach(function (step, s) {
      var card = document.createElement("div");
      card.className = "border rounded p-3 mb-3";
      card.setAttribute("data-step", s + 1);
      var head = document.createElement("div");
      head.className = "d-flex gap-2 align-items-center mb-2";
      var title = document.createElement("strong"); title.textContent = "Step " + (s + 1);
      head.appendChild(title);
      head.appendChild(input(step.title, "title (optional)", function (v) { step.title = v; }));
      if (s > 0) head.appendChild(button("Remove step", "btn-outline-danger", function () { steps.splice(s, 1); }));
      card.appendChild(head);
      step.fields.forEach(function (field, i) { card.appendChild(fieldRow(step, field, i)); });
      card.appendChild(button("+ Field", "btn-outline-primary", function () {
        step.fields.push({ kind: s === 0 && !step.fields.length ? "email" : "first_name" });
      }));
      root.appendChild(card);
    });
    root.appendChild(button("+ Step", "btn-outline-primary", function () {
      steps.push({ title: "", fields: [{ kind: "first_name" }] });
    }));
  }
  render();
  sync();
})();
