// The console's live parts: poll the JSON under /ops/api and update the page. Text goes in through
// textContent only, so nothing a record or a client sent can become markup.
(function () {
  "use strict";
  var POLL_MS = 1000;

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function row(cells, cls) {
    var tr = el("tr", null, cls);
    cells.forEach(function (cell) {
      if (cell instanceof Node) { var td = el("td"); td.appendChild(cell); tr.appendChild(td); }
      else tr.appendChild(el("td", cell));
    });
    return tr;
  }

  function fill(tbody, rows, empty, columns) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (!rows.length) { var tr = el("tr"); var td = el("td", empty, "hint"); td.colSpan = columns; tr.appendChild(td); tbody.appendChild(tr); }
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    return Math.round(seconds / 3600) + " h ago";
  }

  function bar(job) {
    var span = el("span");
    var p = el("progress");
    p.max = job.progress.total || 100;
    p.value = job.progress.total ? job.progress.done : (job.progress.percent || 0);
    span.appendChild(p);
    span.appendChild(document.createTextNode(" " + job.progress.done + "/" + (job.progress.total === null ? "?" : job.progress.total)));
    return span;
  }

  function link(base, job) {
    var a = el("a", job.id.slice(0, 8) + "…");
    a.href = base + job.id;
    return a;
  }

  function poll(url, render) {
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) {
          if (r.status === 401) { window.location = "/ops/login?next=" + encodeURIComponent(window.location.pathname); return null; }
          return r.ok ? r.json() : null;
        })
        .then(function (data) { if (data && render(data) !== false) setTimeout(tick, POLL_MS); else if (!data) setTimeout(tick, POLL_MS * 3); })
        .catch(function () { setTimeout(tick, POLL_MS * 3); });
    }
    tick();
  }

  function overview(root) {
    var base = root.dataset.jobUrl;
    poll(root.dataset.source, function (d) {
      document.getElementById("generated-at").textContent = d.generated_at;
      document.getElementById("redis-state").textContent = d.redis_ok ? "" : "(Redis unreachable: workers and rates unknown)";
      document.getElementById("hb-timeout").textContent = d.heartbeat_timeout_seconds;
      fill(root.querySelector("#workers tbody"), d.workers.map(function (w) {
        var state = el("span", w.alive ? "alive" : "dead", "badge " + (w.alive ? "alive" : "dead"));
        var jobs = el("span");
        w.jobs.forEach(function (j, i) { if (i) jobs.appendChild(document.createTextNode(", ")); jobs.appendChild(link(base, j)); });
        var tr = row([w.hostname, state, w.queues.join(", "), w.processes, jobs, ago(w.age)], w.alive ? "worker-alive" : "worker-dead");
        tr.dataset.worker = w.hostname;
        return tr;
      }), "No worker has sent a heartbeat.", 6);
      fill(root.querySelector("#queues tbody"), d.queues.map(function (q) {
        return row([q.queue, q.queued, q.running, q.oldest_age_seconds === null ? "—" : ago(q.oldest_age_seconds),
                    q.broker_waiting === null ? "?" : q.broker_waiting]);
      }), "", 5);
      fill(root.querySelector("#running tbody"), d.running.map(function (j) {
        return row([link(base, j), j.kind, j.tenant, bar(j), j.attempts + "/" + j.max_attempts]);
      }), "Nothing is running.", 5);
      document.getElementById("failures-24h").textContent = d.failures_24h;
      fill(root.querySelector("#failures tbody"), d.recent_failures.map(function (j) {
        return row([link(base, j), j.kind, j.error ? j.error.code : "", j.finished_at]);
      }), "None.", 4);
      var chart = document.getElementById("applied-chart");
      while (chart.firstChild) chart.removeChild(chart.firstChild);
      var top = Math.max.apply(null, d.applied_per_minute.map(function (p) { return p[1]; }).concat([1]));
      d.applied_per_minute.forEach(function (p) {
        var s = el("span"); s.style.height = Math.round(100 * p[1] / top) + "%"; s.title = new Date(p[0] * 1000).toISOString() + ": " + p[1];
        chart.appendChild(s);
      });
      var last = d.applied_per_minute.length ? d.applied_per_minute[d.applied_per_minute.length - 1][1] : 0;
      document.getElementById("applied-last").textContent = last + " this minute, peak " + (top === 1 && last === 0 ? 0 : top);
      document.getElementById("devices-total").textContent = d.devices.total;
      document.getElementById("devices-silent").textContent = d.devices.silent;
    });
  }

  var TERMINAL = {COMPLETED: 1, FAILED: 1, CANCELLED: 1};

  function job(root) {
    var first = root.dataset.status;
    poll(root.dataset.source, function (j) {
      var p = document.getElementById("job-progress");
      p.max = j.progress.total || 100;
      p.value = j.progress.total ? j.progress.done : (j.progress.percent || 0);
      document.getElementById("job-progress-text").textContent = j.progress.done + "/" + (j.progress.total === null ? "?" : j.progress.total) +
        (j.progress.percent === null ? "" : " (" + j.progress.percent + " %)");
      var status = document.getElementById("job-status");
      status.textContent = j.status; status.className = "status-" + j.status.toLowerCase();
      document.getElementById("job-counts").textContent = Object.keys(j.counts).map(function (k) { return k + ": " + j.counts[k]; }).join(", ") || "none yet";
      document.getElementById("job-attempts").textContent = j.attempts + " of " + j.max_attempts;
      document.getElementById("job-started").textContent = j.started_at || "—";
      document.getElementById("job-finished").textContent = j.finished_at || "—";
      document.getElementById("job-error").textContent = j.error ? j.error.code + ": " + j.error.detail : "—";
      if (j.status !== first && (TERMINAL[j.status] || TERMINAL[first])) {
        window.location.reload();  // the controls and the error list change when a job ends or starts again
        return false;
      }
      return !TERMINAL[j.status];
    });
  }

  function exportsPage(root) {
    var base = root.dataset.jobUrl;
    poll(root.dataset.source, function (d) {
      fill(root.querySelector("#export-jobs tbody"), d.exports.map(function (j) {
        var tr = row([link(base, j), j.tenant, el("span", j.status, "status"), bar(j), j.created_at, j.finished_at || "—",
                      j.error ? j.error.code : ""], "status-" + j.status.toLowerCase());
        tr.dataset.job = j.id;
        return tr;
      }), "No export has run.", 7);
    });
  }

  var o = document.getElementById("overview");
  if (o) overview(o);
  var j = document.getElementById("job");
  if (j) job(j);
  var x = document.getElementById("exports");
  if (x) exportsPage(x);
})();
