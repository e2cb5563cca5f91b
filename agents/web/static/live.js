// A running run's page follows it: every 2 s its figures are read again from /api/runs/<id>, and its
// charts are drawn again when the data behind them changed. The only script the view runs.
"use strict";
(function () {
  const root = document.getElementById("run");
  if (!root) return;
  const api = root.dataset.api;
  const number = new Intl.NumberFormat("en-US");
  let version = root.dataset.version;

  function show(counts) {
    for (const node of root.querySelectorAll("[data-count]")) {
      const value = counts[node.dataset.count];
      if (value === undefined || value === null) continue;
      node.textContent = node.dataset.count === "cost_usd" ? Number(value).toFixed(4) : number.format(value);
    }
  }

  async function poll() {
    let answer;
    try {
      const response = await fetch(api, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      answer = await response.json();
    } catch (error) {
      setTimeout(poll, 5000); // the database busy, the server restarting: try again later
      return;
    }
    show(answer.counts || {});
    const status = root.querySelector("[data-field=shown_status]");
    if (status && status.textContent !== answer.shown_status) {
      status.textContent = answer.shown_status;
      status.className = "status " + answer.shown_status;
    }
    if (answer.version !== version) {
      version = answer.version;
      for (const img of root.querySelectorAll("img[data-chart]")) {
        img.src = img.src.replace(/\?v=[^&]*$/, "") + "?v=" + encodeURIComponent(version);
      }
    }
    root.dataset.status = answer.shown_status;
    if (answer.shown_status === "running") setTimeout(poll, 2000);
  }

  if (root.dataset.status === "running") setTimeout(poll, 2000);
})();
