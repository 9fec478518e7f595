// "Accept all high-confidence" preview: the operator unticks the offers not to link; the
// confirm button says how many will be linked and is disabled at none.
(function () {
  "use strict";
  var all = document.getElementById("xa-accept-high-all");
  var button = document.getElementById("xa-accept-high-confirm");
  var rows = Array.prototype.slice.call(document.querySelectorAll(".xa-accept-high-row"));
  if (!all || !button) { return; }

  function update() {
    var ticked = rows.filter(function (box) { return box.checked; }).length;
    button.textContent = button.getAttribute("data-template").replace("__N__", String(ticked));
    button.disabled = ticked === 0;
    all.checked = ticked === rows.length;
    all.indeterminate = ticked > 0 && ticked < rows.length;
  }
  all.addEventListener("change", function () {
    rows.forEach(function (box) { box.checked = all.checked; });
    update();
  });
  rows.forEach(function (box) { box.addEventListener("change", update); });
  update();
})();
