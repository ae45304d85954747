// The status page's script: polls the status and decisions APIs every
// `data-poll-ms` and rebuilds the pipeline cards with the same markup the server renders
// (src/daemon/page.rs). Every value goes in through textContent or setAttribute, never as
// HTML, so pipeline names and sentences cannot inject markup. Plain ES2017, no library.
(function () {
  "use strict";
  var PER_PIPELINE = 5;
  var SPAN_MS = 3600 * 1000;
  var W = 360;
  var H = 100;
  var SVG = "http://www.w3.org/2000/svg";
  var pollMs = Number(document.body.getAttribute("data-poll-ms")) || 15000;
  var polls = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function iso(ms) {
    return new Date(ms).toISOString();
  }

  function time(ms) {
    var t = el("time", null, iso(ms));
    t.setAttribute("datetime", iso(ms));
    return t;
  }

  function series(v) {
    return v === null || v === undefined ? "no data" : String(Math.round(v));
  }

  // The same as page.rs's `compact`.
  function compact(v) {
    var div = 1, unit = "";
    if (v >= 1e9) { div = 1e9; unit = "G"; }
    else if (v >= 1e6) { div = 1e6; unit = "M"; }
    else if (v >= 1e3) { div = 1e3; unit = "k"; }
    var x = (v / div).toFixed(1);
    if (x.slice(-2) === ".0") x = x.slice(0, -2);
    return x + unit;
  }

  function row(dl, term, cls, content) {
    dl.appendChild(el("dt", null, term));
    var dd = el("dd", cls);
    (Array.isArray(content) ? content : [content]).forEach(function (c) {
      dd.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    dl.appendChild(dd);
  }

  function svgEl(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // The same chart as page.rs's `chart`: the hour before the newest point, scaled from
  // zero to a tenth above the largest of input, output and budget.
  function chart(p) {
    var svg = svgEl("svg", {
      "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "input and output series against the budget, last hour",
      "data-rendered-by": "script"
    });
    var hist = p.history || [];
    if (hist.length === 0) {
      svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" },
        "no samples in the last hour"));
      return [svg];
    }
    var end = hist[hist.length - 1][0];
    var top = hist.reduce(function (m, h) { return Math.max(m, h[1], h[2]); }, p.budget_series) * 1.1;
    if (!(top > 0)) top = 1;
    var x = function (t) { return W - (end - t) / SPAN_MS * W; };
    var y = function (v) { return H - v / top * H; };
    var path = function (k) {
      return hist.map(function (h, i) {
        return (i === 0 ? "M" : " L") + x(h[0]).toFixed(1) + "," + y(h[k]).toFixed(1);
      }).join("");
    };
    svg.appendChild(svgEl("path", { "class": "budget", d: "M0," + y(p.budget_series).toFixed(1) + " H" + W }));
    svg.appendChild(svgEl("path", { "class": "input", d: path(1) }));
    svg.appendChild(svgEl("path", { "class": "output", d: path(2) }));
    svg.appendChild(svgEl("text", { x: 2, y: 9 }, compact(top)));
    svg.appendChild(svgEl("text", { x: 2, y: H - 2 }, "-1h"));
    svg.appendChild(svgEl("text", { x: W - 2, y: H - 2, "text-anchor": "end" }, iso(end).slice(11, 16)));
    var legend = el("p", "legend");
    legend.appendChild(el("span", "input", "— input"));
    legend.appendChild(el("span", "output", "— output"));
    legend.appendChild(el("span", "budget", "- - budget"));
    return [svg, legend];
  }

  function card(p, decisions) {
    var a = el("article", "pipeline");
    a.setAttribute("data-pipeline", p.pipeline);
    var h2 = el("h2", null, p.pipeline + " ");
    h2.appendChild(el("span", "collector", "on collector " + p.collector));
    a.appendChild(h2);
    var dl = el("dl");
    row(dl, "In force", "in-force", p.in_force);
    row(dl, "Since", "since", p.in_force_since === null ? "unknown" : time(p.in_force_since));
    if (p.decided !== p.in_force) {
      row(dl, "Decided", "decided pending", p.decided + " (being applied)");
    }
    if (p.pinned) {
      row(dl, "Pinned", "pinned", [p.pinned[0] + " until ", time(p.pinned[1])]);
    }
    row(dl, "Now", "explanation", p.explanation || "no step yet");
    row(dl, "Series", "series", "input " + series(p.input_series) + ", output " +
      series(p.output_series) + ", budget " + Math.round(p.budget_series));
    if (p.vanished) row(dl, "Query", "vanished", "missing from the latest results");
    a.appendChild(dl);
    chart(p).forEach(function (n) { a.appendChild(n); });
    a.appendChild(el("h3", null, "Active guards"));
    if (p.active_guards.length === 0) {
      a.appendChild(el("p", "none guards", "none"));
    } else {
      var ul = el("ul", "guards");
      p.active_guards.forEach(function (g) {
        var li = el("li");
        li.appendChild(el("span", "guard", g.guard));
        li.appendChild(document.createTextNode(" until "));
        li.appendChild(time(g.until));
        ul.appendChild(li);
      });
      a.appendChild(ul);
    }
    a.appendChild(el("h3", null, "Last decisions"));
    if (decisions.length === 0) {
      a.appendChild(el("p", "none decisions", "none yet"));
    } else {
      var ol = el("ol", "decisions");
      decisions.forEach(function (d) {
        var li = el("li");
        li.appendChild(time(d.at));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "kind", d.kind));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "sentence", d.sentence));
        ol.appendChild(li);
      });
      a.appendChild(ol);
    }
    return a;
  }

  function sources(s) {
    var box = document.getElementById("sources");
    box.textContent = "";
    var names = Object.keys(s).sort();
    if (names.length === 0) {
      box.appendChild(el("p", "none", "No query has run yet."));
      return;
    }
    var table = el("table");
    var head = el("tr");
    head.appendChild(el("th", null, "Query"));
    head.appendChild(el("th", null, "Last result"));
    table.appendChild(head);
    names.forEach(function (q) {
      var tr = el("tr");
      tr.appendChild(el("td", null, q));
      tr.appendChild(el("td", "state-" + s[q], s[q]));
      table.appendChild(tr);
    });
    box.appendChild(table);
  }

  function render(status, log) {
    document.getElementById("policy").textContent = status.policy.name;
    document.getElementById("policy-sha").textContent = status.policy.sha256.slice(0, 12);
    document.getElementById("ready").textContent = status.ready ? "ready" : "not ready";
    var hold = document.getElementById("safe-hold");
    hold.hidden = !status.safe_hold;
    document.getElementById("safe-hold-reason").textContent = status.safe_hold_reason || "";
    sources(status.sources);
    var byPipeline = {};
    log.forEach(function (d) {
      (byPipeline[d.pipeline] = byPipeline[d.pipeline] || []).push(d);
    });
    var main = document.getElementById("pipelines");
    main.textContent = "";
    if (status.pipelines.length === 0) {
      main.appendChild(el("p", "none", "No pipeline yet: waiting for the first sample."));
    }
    status.pipelines.forEach(function (p) {
      main.appendChild(card(p, byPipeline[p.pipeline] || []));
    });
    main.setAttribute("data-rendered-by", "script");
  }

  function getJson(url) {
    return fetch(url, { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }

  function poll() {
    // Relative URLs, so the page also works behind a reverse proxy's path prefix.
    Promise.all([
      getJson("api/v1/status"),
      getJson("api/v1/decisions?per_pipeline=" + PER_PIPELINE)
    ]).then(function (res) {
      render(res[0], res[1]);
      polls += 1;
      var u = document.getElementById("updated");
      u.className = "";
      u.setAttribute("data-polls", String(polls));
      u.textContent = "updated " + new Date().toISOString() + " (poll " + polls + ", every " +
        (pollMs / 1000) + " s)";
    }).catch(function (e) {
      var u = document.getElementById("updated");
      u.className = "error";
      u.textContent = "status API unreachable (" + e.message + "); showing the last data";
    }).then(function () {
      setTimeout(poll, pollMs);
    });
  }

  poll();
})();
