/* gpubench report: draws the figures and the sortable case table from the embedded JSON. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("gpubench-data").textContent);
  var rendered = 0;
  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  data.figures.forEach(function (fig) {
    var el = document.getElementById(fig.id);
    if (!el) { window.gpubenchReport("no element for figure " + fig.id); return; }
    Plotly.newPlot(el, fig.data, fig.layout, config).then(function () {
      rendered += 1;
      document.body.setAttribute("data-plots-rendered", String(rendered));
    });
  });
  document.body.setAttribute("data-plots-expected", String(data.figures.length));

  // In-page links (the navigation bar). A report shown inside a notebook is an about:srcdoc page, whose links
  // resolve against the notebook's own address: "#cases" would load the notebook into the frame. There, a
  // click on such a link scrolls the frame to its target (below the sticky navigation bar), and only the
  // frame, not the notebook around it; opened from disk, links work as usual.
  if (window.location.protocol === "about:") {
    document.addEventListener("click", function (e) {
      var a = e.target && e.target.closest ? e.target.closest('a[href^="#"]') : null;
      var target = a ? document.getElementById(a.getAttribute("href").slice(1)) : null;
      if (!target) { return; }
      e.preventDefault();
      var nav = document.querySelector("nav");
      var top = target.getBoundingClientRect().top + window.scrollY - (nav ? nav.offsetHeight : 0);
      window.scrollTo(0, Math.max(0, top));
    });
  }

  // Sortable, filterable table of every case. Cells hold raw values; the page formats them here
  // and puts every one in with textContent (never as HTML).
  var t = data.table;
  var table = document.getElementById("cases");
  if (!t || !table) { return; }
  function sig(x) { return Number(x.toPrecision(3)).toString(); }
  function fmtTime(s) {
    if (s === null || s === undefined) { return "-"; }
    if (s >= 1) { return sig(s) + " s"; }
    if (s >= 1e-3) { return sig(s * 1e3) + " ms"; }
    if (s >= 1e-6) { return sig(s * 1e6) + " µs"; }
    return sig(s * 1e9) + " ns";
  }
  var FORMAT = {
    text: function (v) { return v === null || v === undefined ? "" : String(v); },
    int: function (v) { return v === null || v === undefined ? "-" : String(v); },
    time: fmtTime,
    ci: function (v, row, i) {
      if (!v) { return "-"; }
      if (v.length > 2 && v[2] < 2) { return "1 run"; }
      var med = row[i - 1];
      var half = med ? (v[1] - v[0]) / 2 / med * 100 : 0;
      return fmtTime(v[0]) + " – " + fmtTime(v[1]) + " (±" + half.toFixed(1) + "%)";
    },
    rate: function (v) {
      if (!v) { return "-"; }
      if (v[1] === "GFLOP/s" && v[0] >= 1000) { return sig(v[0] / 1000) + " TFLOP/s"; }
      return sig(v[0]) + " " + v[1];
    },
    times: function (v) { return v === null || v === undefined ? "-" : sig(v) + "×"; },
    pct: function (v) { return v === null || v === undefined ? "-" : v.toFixed(0) + "%"; }
  };
  function sortKey(v, kind, row, i) {
    if (v === null || v === undefined) { return null; }
    if (kind === "ci") { return row[i - 1] ? (v[1] - v[0]) / 2 / row[i - 1] : null; }
    if (kind === "rate") { return v[0]; }
    return v;
  }
  var thead = table.querySelector("thead tr");
  var tbody = table.querySelector("tbody");
  var rows = t.rows.map(function (r) {
    return {
      raw: r,
      text: r.map(function (v, i) { return FORMAT[t.columns[i].kind](v, r, i); })
    };
  });
  rows.forEach(function (r) { r.hay = r.text.join(" ").toLowerCase(); });
  var sortCol = -1, sortDir = 1;
  t.columns.forEach(function (col, i) {
    var th = document.createElement("th");
    th.textContent = col.name;
    th.title = "sort by " + col.name;
    th.addEventListener("click", function () {
      sortDir = sortCol === i ? -sortDir : 1;
      sortCol = i;
      Array.prototype.forEach.call(thead.children, function (h) { h.className = ""; });
      th.className = sortDir > 0 ? "sorted-asc" : "sorted-desc";
      rows.sort(function (a, b) {
        var x = sortKey(a.raw[i], col.kind, a.raw, i), y = sortKey(b.raw[i], col.kind, b.raw, i);
        if (x === y) { return 0; }
        if (x === null) { return 1; }
        if (y === null) { return -1; }
        return (x < y ? -1 : 1) * sortDir;
      });
      draw();
    });
    thead.appendChild(th);
  });
  var filter = document.getElementById("cases-filter");
  var count = document.getElementById("cases-count");
  var showSkipped = document.getElementById("cases-skipped");
  var statusCol = -1;
  t.columns.forEach(function (col, i) { if (col.name === "status") { statusCol = i; } });
  function draw() {
    var q = filter ? filter.value.trim().toLowerCase() : "";
    var frag = document.createDocumentFragment();
    var shown = 0;
    rows.forEach(function (r) {
      if (q && r.hay.indexOf(q) < 0) { return; }
      if (showSkipped && !showSkipped.checked && r.raw[statusCol] === "skipped") { return; }
      shown += 1;
      var tr = document.createElement("tr");
      r.text.forEach(function (text, i) {
        var td = document.createElement("td");
        td.textContent = text;
        var kind = t.columns[i].kind;
        if (kind !== "text") { td.className = "num"; }
        if (t.columns[i].name === "status") { td.className = "status-" + text.replace(/[^a-z]/g, ""); }
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    tbody.textContent = "";
    tbody.appendChild(frag);
    if (count) { count.textContent = shown + " of " + rows.length + " cases"; }
  }
  if (filter) { filter.addEventListener("input", draw); }
  if (showSkipped) { showSkipped.addEventListener("change", draw); }
  draw();
})();
