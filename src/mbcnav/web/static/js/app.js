/* Progressive enhancement only: every page works without this file.
   - the form becomes one step at a time, with Back / Next;
   - empty past-treatment rows fold away behind "Add another treatment";
   - Print buttons appear;
   - after an htmx swap, keyboard focus returns to the control that was used. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function button(label, className) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "btn " + className;
    b.textContent = label;
    return b;
  }

  function setUpPrint(root) {
    root.querySelectorAll("[data-print]").forEach(function (b) {
      b.hidden = false;
      if (!b.dataset.bound) {
        b.dataset.bound = "1";
        b.addEventListener("click", function () { window.print(); });
      }
    });
  }

  function setUpRows() {
    document.querySelectorAll("[data-rows]").forEach(function (group) {
      var rows = Array.prototype.slice.call(group.querySelectorAll("[data-row]"));
      // Show every filled row and one empty row after them; the rest wait behind a button.
      var last = -1;
      rows.forEach(function (row, i) {
        if (row.hasAttribute("data-filled") || row.classList.contains("has-error")) { last = i; }
      });
      var shown = Math.min(last + 1, rows.length - 1);
      rows.forEach(function (row, i) { row.hidden = i > shown; });
      if (shown >= rows.length - 1) { return; }
      var add = button("Add another treatment", "btn-secondary btn-small");
      add.addEventListener("click", function () {
        var next = rows.filter(function (r) { return r.hidden; })[0];
        if (!next) { return; }
        next.hidden = false;
        var input = next.querySelector("input");
        if (input) { input.focus(); }
        if (!rows.some(function (r) { return r.hidden; })) { add.remove(); }
      });
      group.querySelector("fieldset").appendChild(add);
    });
  }

  function setUpSexDependent() {
    var menopause = document.getElementById("f-menopausal-status");
    if (!menopause) { return; }
    var field = menopause.closest(".field");
    function update() {
      var man = document.querySelector('input[name="sex"][value="male"]');
      var hide = !!(man && man.checked) && !field.classList.contains("has-error");
      field.hidden = hide;
      if (hide) {
        // A hidden answer must not be sent: reset it to "I don't know".
        var unknown = field.querySelector('input[value="unknown"]');
        if (unknown) { unknown.checked = true; }
      }
    }
    document.querySelectorAll('input[name="sex"]').forEach(function (r) { r.addEventListener("change", update); });
    update();
  }

  function setUpStepper() {
    var form = document.querySelector("[data-stepper]");
    if (!form) { return; }
    var steps = Array.prototype.slice.call(form.querySelectorAll("[data-step]"));
    var submitRow = form.querySelector("[data-submit-row]");
    var links = Array.prototype.slice.call(document.querySelectorAll("[data-step-link]"));
    var current = 0;

    function show(index, moveFocus) {
      current = Math.max(0, Math.min(index, steps.length - 1));
      steps.forEach(function (s, i) { s.hidden = i !== current; });
      submitRow.hidden = current !== steps.length - 1;
      links.forEach(function (a, i) {
        if (i === current) { a.setAttribute("aria-current", "step"); } else { a.removeAttribute("aria-current"); }
      });
      if (moveFocus) {
        var heading = steps[current].querySelector("h2");
        heading.focus();
        heading.scrollIntoView({ block: "start" });
      }
    }

    steps.forEach(function (step, i) {
      var bar = document.createElement("div");
      bar.className = "step-buttons";
      if (i > 0) {
        var back = button("Back", "btn-secondary");
        back.addEventListener("click", function () { show(i - 1, true); });
        bar.appendChild(back);
      }
      if (i < steps.length - 1) {
        var next = button("Next: " + steps[i + 1].querySelector("h2").lastChild.textContent.trim(), "btn-primary btn-next");
        next.addEventListener("click", function () { show(i + 1, true); });
        bar.appendChild(next);
      }
      step.appendChild(bar);
    });
    links.forEach(function (a, i) {
      a.addEventListener("click", function (event) { event.preventDefault(); show(i, true); });
    });
    // Enter in a text box would submit the whole form from an early step; move on instead.
    form.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.target.tagName === "INPUT" && current < steps.length - 1) {
        event.preventDefault();
        show(current + 1, true);
      }
    });

    var firstError = form.querySelector(".has-error");
    var start = firstError ? steps.indexOf(firstError.closest("[data-step]")) : 0;
    show(start < 0 ? 0 : start, false);

    // Error summary links may point into a hidden step: open that step, then focus the field.
    var summary = document.getElementById("error-summary");
    if (summary) {
      summary.querySelectorAll("a[href^='#']").forEach(function (a) {
        a.addEventListener("click", function (event) {
          var target = document.getElementById(a.getAttribute("href").slice(1));
          if (!target) { return; }
          event.preventDefault();
          var step = target.closest("[data-step]");
          if (step) { show(steps.indexOf(step), false); }
          var row = target.closest("[data-row]");
          if (row) { row.hidden = false; }
          target.focus();
        });
      });
      summary.focus();
    }
  }

  // htmx replaces the button that was pressed; put focus back on its successor (same id),
  // or on a sensible neighbour when the item itself is gone.
  var lastFocusId = null;
  document.addEventListener("htmx:beforeRequest", function () {
    var active = document.activeElement;
    lastFocusId = active && active.id ? active.id : null;
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    setUpPrint(document);
    if (!lastFocusId) { return; }
    var again = document.getElementById(lastFocusId);
    if (again && !again.disabled) { again.focus(); return; }
    if (again && again.disabled) {
      var other = lastFocusId.indexOf("up-") === 0 ? "down-" : "up-";
      var sibling = document.getElementById(other + lastFocusId.slice(3));
      if (sibling && !sibling.disabled) { sibling.focus(); return; }
    }
    var heading = document.getElementById("items-title") || event.target;
    if (heading) {
      if (!heading.hasAttribute("tabindex")) { heading.setAttribute("tabindex", "-1"); }
      heading.focus();
    }
  });

  ready(function () {
    setUpPrint(document);
    setUpRows();
    setUpSexDependent();
    setUpStepper();
  });
})();
