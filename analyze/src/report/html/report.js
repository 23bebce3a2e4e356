// The report's only script: sorting and filtering of the ranked table, expand/collapse.
// It reads and moves existing DOM nodes and sets textContent; it never parses strings as HTML.
"use strict";
(function () {
  var table = document.getElementById("ranked");
  var body = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var numeric = th.dataset.type === "num";
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent.trim(), y = b.cells[col].textContent.trim();
        var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var filter = document.getElementById("filter");
  filter.addEventListener("input", function () {
    var q = filter.value.toLowerCase();
    Array.prototype.forEach.call(body.rows, function (r) {
      r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
    });
  });
  var toggle = document.getElementById("toggle-all");
  toggle.addEventListener("click", function () {
    var open = toggle.textContent === "Expand all";
    document.querySelectorAll("details").forEach(function (d) { d.open = open; });
    toggle.textContent = open ? "Collapse all" : "Expand all";
  });
  document.documentElement.dataset.ready = "1";
})();
