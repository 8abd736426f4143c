/*! NoFailMail signup form embed (handwritten, no build step).
 *
 * <script src="https://APP/static/signup/embed.js" data-nofailmail-form="PUBLIC_ID" async></script>
 *
 * Renders the form in a shadow root right after the script tag (the host page's CSS cannot
 * break it), fetches its definition and a signed form token from the app (CORS, no cookies),
 * and posts each step across origins. With data-enhance="1" it only solves the proof-of-work
 * challenge of server-rendered forms (hosted page and iframe).
 */
(function () {
  "use strict";

  // --- SHA-256 (for the optional proof-of-work; crypto.subtle needs a secure context) --------
  var K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ];

  function sha256Words(ascii) {
    var bytes = [], i;
    for (i = 0; i < ascii.length; i++) bytes.push(ascii.charCodeAt(i) & 0xff);
    var bitLength = bytes.length * 8;
    bytes.push(0x80);
    while (bytes.length % 64 !== 56) bytes.push(0);
    for (i = 7; i >= 0; i--) bytes.push(i > 3 ? 0 : (bitLength >>> (i * 8)) & 0xff);
    var h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    var w = new Array(64);
    for (var chunk = 0; chunk < bytes.length; chunk += 64) {
      for (i = 0; i < 16; i++) {
        var j = chunk + i * 4;
        w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
      }
      for (i = 16; i < 64; i++) {
        var x = w[i - 15], y = w[i - 2];
        var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
      for (i = 0; i < 64; i++) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var ch = (e & f) ^ (~e & g);
        var t1 = (hh + S1 + ch + K[i] + w[i]) | 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var maj = (a & b) ^ (a & c) ^ (b & c);
        var t2 = (S0 + maj) | 0;
        hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
      h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
    }
    return h;
  }

  function leadingZeroBits(words, bits) {
    for (var i = 0; bits > 0; i++, bits -= 32) {
      var need = Math.min(bits, 32);
      if ((words[i] >>> (32 - need)) !== 0) return false;
    }
    return true;
  }

  // Solve in slices so the page stays responsive; calls done(nonce).
  function solve(token, bits, done) {
    var n = 0;
    function slice() {
      for (var k = 0; k < 4000; k++, n++) {
        if (leadingZeroBits(sha256Words(token + ":" + n.toString(36)), bits)) {
          done(n.toString(36));
          return;
        }
      }
      setTimeout(slice, 0);
    }
    slice();
  }

  // --- Enhance server-rendered forms (hosted page, iframe) ------------------------------------
  function enhance() {
    var forms = document.querySelectorAll("form.nfm-form[data-pow]");
    Array.prototype.forEach.call(forms, function (form) {
      form.addEventListener("submit", function (event) {
        var input = form.querySelector("input[name=pow]");
        if (input.value) return;
        event.preventDefault();
        var token = form.querySelector("input[name=token]").value;
        solve(token, parseInt(form.getAttribute("data-pow"), 10), function (nonce) {
          input.value = nonce;
          form.submit();
        });
      });
    });
  }

  // --- Render a form from its configuration ---------------------------------------------------
  var CSS =
    ":host{all:initial;display:block}" +
    ".nfm{box-sizing:border-box;max-width:32rem;padding:1rem;font-family:var(--font);color:var(--text);" +
    "background:var(--bg);border-radius:var(--radius)}" +
    ".nfm label{display:block;font-weight:600;margin:.75rem 0 .25rem}" +
    ".nfm label.check{font-weight:normal;display:flex;gap:.5rem;align-items:flex-start}" +
    ".nfm input[type=email],.nfm input[type=text],.nfm input[type=number],.nfm input[type=date],.nfm select{" +
    "width:100%;box-sizing:border-box;padding:.55rem .7rem;font:inherit;border:1px solid #ced4da;border-radius:var(--radius)}" +
    ".nfm .help{font-size:.85em;opacity:.75;margin-top:.2rem}" +
    ".nfm .error{color:#b02a37;font-size:.9em;margin-top:.2rem}" +
    ".nfm .alert{background:#f8d7da;color:#58151c;padding:.6rem .8rem;border-radius:var(--radius)}" +
    ".nfm button{margin-top:1rem;background:var(--primary);color:#fff;border:0;font:inherit;padding:.6rem 1.2rem;" +
    "border-radius:var(--radius);cursor:pointer}.nfm button[disabled]{opacity:.6}" +
    ".nfm .step{font-size:.85em;opacity:.7}" +
    ".nfm .hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var key in attrs || {}) {
      if (attrs[key] !== undefined && attrs[key] !== null && attrs[key] !== false) node.setAttribute(key, attrs[key]);
    }
    if (text) node.textContent = text;
    return node;
  }

  function queryParam(name) {
    var match = new RegExp("[?&]" + name.replace(/[^\w-]/g, "") + "=([^&#]*)").exec(location.search);
    return match ? decodeURIComponent(match[1].replace(/\+/g, " ")) : "";
  }

  function mount(script) {
    var publicId = script.getAttribute("data-nofailmail-form");
    var base = new URL(script.src).origin;
    var host = el("div", { "class": "nofailmail-form", "data-form": publicId });
    script.parentNode.insertBefore(host, script.nextSibling);
    var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    var style = el("style");
    style.textContent = CSS;
    root.appendChild(style);
    var box = el("div", { "class": "nfm", part: "form" });
    root.appendChild(box);
    var state = { step: 0, signup: "", config: null };

    fetch(base + "/forms/f/" + encodeURIComponent(publicId) + "/config.json?page=" + encodeURIComponent(location.href), {
      credentials: "omit",
      mode: "cors"
    })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (config) {
        state.config = config;
        var t = config.theme;
        box.style.setProperty("--primary", t.primary_color);
        box.style.setProperty("--bg", t.background_color);
        box.style.setProperty("--text", t.text_color);
        box.style.setProperty("--font", t.font_family);
        box.style.setProperty("--radius", t.border_radius + "px");
        render();
      })
      .catch(function () { box.textContent = "This form could not be loaded."; });

    function render(errors, alert) {
      var config = state.config, step = config.steps[state.step];
      box.innerHTML = "";
      var form = el("form", { novalidate: "novalidate" });
      if (config.steps.length > 1) {
        box.appendChild(el("div", { "class": "step" },
          config.texts.step.replace("{n}", state.step + 1).replace("{total}", config.steps.length)));
      }
      if (step.title) box.appendChild(el("h3", {}, step.title));
      if (alert) box.appendChild(el("p", { "class": "alert", role: "alert" }, alert));
      var hp = el("div", { "class": "hp", "aria-hidden": "true" });
      hp.appendChild(el("input", { type: "text", name: config.honeypot, tabindex: "-1", autocomplete: "off" }));
      form.appendChild(hp);
      step.fields.forEach(function (f) {
        var id = "nfm-" + publicId + "-" + f.name;
        if (f.input === "hidden") {
          form.appendChild(el("input", { type: "hidden", name: f.name, value: (f.param && queryParam(f.param)) || f.value || "" }));
          return;
        }
        if (f.input === "checkbox") {
          var label = el("label", { "class": "check" });
          label.appendChild(el("input", { type: "checkbox", name: f.name, value: "1", id: id, required: f.required }));
          label.appendChild(el("span", {}, f.label));
          form.appendChild(label);
        } else if (f.input === "checkboxes") {
          var set = el("fieldset", { style: "border:0;padding:0;margin:.75rem 0 0" });
          set.appendChild(el("legend", { style: "font-weight:600" }, f.label));
          f.choices.forEach(function (choice) {
            var option = el("label", { "class": "check" });
            option.appendChild(el("input", { type: "checkbox", name: f.name, value: choice[0] }));
            option.appendChild(el("span", {}, choice[1]));
            set.appendChild(option);
          });
          form.appendChild(set);
        } else if (f.input === "select") {
          form.appendChild(el("label", { "for": id }, f.label));
          var select = el("select", { id: id, name: f.name, required: f.required });
          select.appendChild(el("option", { value: "" }));
          f.choices.forEach(function (choice) { select.appendChild(el("option", { value: choice[0] }, choice[1])); });
          form.appendChild(select);
        } else {
          form.appendChild(el("label", { "for": id }, f.label));
          form.appendChild(el("input", {
            id: id, type: f.input, name: f.name, placeholder: f.placeholder || null, required: f.required,
            autocomplete: f.input === "email" ? "email" : null
          }));
        }
        if (f.help_text) form.appendChild(el("div", { "class": "help" }, f.help_text));
        if (errors && errors[f.name]) form.appendChild(el("div", { "class": "error", "data-error": f.name }, errors[f.name]));
      });
      if (config.consent_notice && state.step === 0) {
        form.appendChild(el("p", { "class": "help notice" }, config.consent_notice));
      }
      var last = state.step === config.steps.length - 1;
      var button = el("button", { type: "submit" }, last ? config.texts.button : config.texts.next);
      form.appendChild(button);
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        button.disabled = true;
        var body = new URLSearchParams(new FormData(form));
        body.set("token", config.token);
        body.set("step", String(state.step));
        body.set("format", "json");
        body.set("page", location.href);
        if (state.signup) body.set("signup", state.signup);
        ["utm_source", "utm_medium", "utm_campaign"].forEach(function (key) {
          if (!body.has(key) && queryParam(key)) body.set(key, queryParam(key));
        });
        if (config.pow_bits && state.step === 0) {
          button.textContent = config.texts.checking;
          solve(config.token, config.pow_bits, function (nonce) { body.set("pow", nonce); send(body); });
        } else {
          send(body);
        }
      });
      box.appendChild(form);
      var first = form.querySelector("input:not([type=hidden]):not([tabindex='-1']), select");
      if (first && state.step > 0) first.focus();
    }

    function send(body) {
      // A "simple" CORS request (urlencoded body, no custom header): no preflight, no cookie.
      fetch(state.config.submit_url, { method: "POST", body: body, credentials: "omit", mode: "cors" })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          if (!answer.ok) { render(answer.errors || {}, answer.error || ""); return; }
          if (answer.step !== undefined) {
            state.step = answer.step;
            state.signup = answer.signup;
            render();
            return;
          }
          if (answer.redirect) { window.location.href = answer.redirect; return; }
          box.innerHTML = "";
          box.appendChild(el("p", { "class": "success", role: "status" }, answer.message));
          if (answer.download_url) {
            box.appendChild(el("a", { href: answer.download_url, "class": "download" }, state.config.texts.download));
          }
        })
        .catch(function () { render({}, state.config.texts.network); });
    }
  }

  var current = document.currentScript;
  if (current && current.getAttribute("data-enhance")) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", enhance);
    else enhance();
    return;
  }
  var scripts = current && current.getAttribute("data-nofailmail-form")
    ? [current]
    : document.querySelectorAll("script[data-nofailmail-form]:not([data-nofailmail-mounted])");
  Array.prototype.forEach.call(scripts, function (script) {
    if (script.getAttribute("data-nofailmail-mounted")) return;
    script.setAttribute("data-nofailmail-mounted", "1");
    mount(script);
  });
})();
