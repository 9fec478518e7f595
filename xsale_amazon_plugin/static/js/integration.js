/* Import dialog of an integration: asks once whether Amazon already holds a recent report
   and, if so, offers "use Amazon's report from HH:MM" next to "request a fresh report".
   Text goes through textContent only. */
(function () {
  "use strict";
  var choice = document.getElementById("xa-report-choice");
  if (!choice) { return; }
  var checking = document.getElementById("xa-report-checking");
  var reuseRow = document.getElementById("xa-report-reuse-row");
  var reuse = document.getElementById("xa-report-reuse");
  var reuseLabel = document.getElementById("xa-report-reuse-label");
  var asked = false;

  function ask() {
    if (asked) { return; }
    asked = true;
    var controller = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) { controller.abort(); } }, 25000);
    fetch(choice.getAttribute("data-url"), {
      credentials: "same-origin", headers: {"Accept": "application/json"},
      signal: controller ? controller.signal : undefined
    })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        checking.hidden = true;
        if (data.report) {
          reuse.value = "reuse:" + data.report.id;
          reuse.disabled = false;
          reuse.checked = true;
          reuseLabel.textContent = data.report.label;
          reuseRow.hidden = false;
        }
      })
      .catch(function () { checking.hidden = true; })
      .then(function () { clearTimeout(timer); });
  }
  var button = document.getElementById("xa-import-button");
  if (button) { button.addEventListener("click", ask); }
})();
