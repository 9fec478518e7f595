/* Live progress of a background auto-link: polls its JSON until it ends, then reloads once so
   the server renders the summary. Text goes through textContent only; polling is bounded. */
(function () {
  "use strict";
  var root = document.getElementById("xa-autolink-run");
  if (!root || root.getAttribute("data-active") !== "true") { return; }
  var url = root.getAttribute("data-status-url");
  var polls = 0;
  var maxPolls = 20000;
  function poll() {
    if (++polls > maxPolls) { return; }
    fetch(url, {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { setTimeout(poll, 3000); return; }
        document.getElementById("xa-autolink-done").textContent = data.done_label;
        document.getElementById("xa-autolink-total").textContent = data.total_label;
        var bar = document.getElementById("xa-autolink-progress");
        bar.style.width = data.percent + "%";
        bar.setAttribute("aria-valuenow", String(data.percent));
        bar.textContent = data.percent + "%";
        if (!data.active) { window.location.reload(); return; }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
