/* Live progress of an import run: polls the run's JSON until it ends, then reloads once
   so the server renders the final summary. Text goes through textContent only. Polling stops
   when the operator submits a form (cancel, re-run): a reload then would replace the page the
   form leads to, and its confirmation, once the run has ended. */
(function () {
  "use strict";
  var root = document.getElementById("xa-run");
  if (!root) { return; }
  var url = root.getAttribute("data-status-url");
  var active = root.getAttribute("data-active") === "true";
  var elapsedEl = document.getElementById("xa-elapsed");
  var elapsed = parseInt(elapsedEl.getAttribute("data-seconds"), 10) || 0;
  var started = Date.now() - elapsed * 1000;
  var polls = 0;
  var maxPolls = 20000;
  var leaving = false;

  function fmt(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) { return "\u2014"; }
    seconds = Math.max(0, Math.round(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
  }
  function tick() {
    elapsedEl.textContent = fmt(active ? (Date.now() - started) / 1000 : elapsed);
  }
  function render(data) {
    document.getElementById("xa-stage").textContent = data.stage_label;
    var rows = String(data.rows_done || 0) + (data.rows_total ? " / " + data.rows_total : "");
    document.getElementById("xa-rows").textContent = rows;
    // Only a real estimate (while parsing); Amazon's preparation time cannot be predicted.
    var eta = document.getElementById("xa-eta");
    if (eta) {
      eta.textContent =
        data.eta_seconds !== null && data.eta_seconds !== undefined ? fmt(data.eta_seconds) : "\u2014";
    }
    var bar = document.getElementById("xa-progress");
    var pct = data.percent !== null ? data.percent : 100;
    bar.style.width = pct + "%";
    bar.setAttribute("aria-valuenow", pct);
    bar.textContent = data.percent !== null ? data.percent + "%" : "";
    var badge = root.querySelector(".xa-status");
    if (badge) { badge.textContent = data.status_label; }
    document.getElementById("xa-waiting-note").hidden = data.status !== "waiting";
    started = Date.now() - data.elapsed_seconds * 1000;
  }
  function poll() {
    if (!active || leaving || polls++ > maxPolls) { return; }
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        if (leaving) { return; }
        render(data);
        if (!data.active) { active = false; window.location.reload(); return; }
        setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  document.addEventListener("submit", function () { leaving = true; }, true);
  tick();
  setInterval(tick, 1000);
  if (active) { setTimeout(poll, 800); }
})();
