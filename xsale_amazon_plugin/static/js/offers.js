/* Offers list: product pickers (Flask-Admin's select2 3.5 + the plugin's product search),
   per-row link/unlink, and the chosen product sent with the "Link to the chosen product"
   bulk action. */
(function ($) {
  "use strict";
  if (!$ || !$.fn.select2) { return; }
  function picker($el) {
    $el.select2({
      width: "resolve",
      placeholder: $el.data("placeholder"),
      allowClear: true,
      minimumInputLength: 0,
      ajax: {
        url: $el.data("url"),
        dataType: "json",
        quietMillis: 250,
        data: function (term) { return {q: term || ""}; },
        results: function (data) { return {results: data.results || []}; }
      }
    });
  }
  // Long Amazon names: clamp the cell to a few lines, full text in the tooltip. Only moves the
  // existing nodes (no HTML is parsed) and sets the title as plain text.
  function clampCells() {
    $(".xa-offers table.model-list td.col-name, .xa-offers table.model-list td.col-product")
      .each(function () {
        if (this.querySelector(".xa-clamp")) { return; }
        var box = document.createElement("div");
        box.className = "xa-clamp";
        while (this.firstChild) { box.appendChild(this.firstChild); }
        this.appendChild(box);
        var text = (box.textContent || "").trim();
        if (text.length > 60) { box.setAttribute("title", text); }
      });
  }
  $(function () {
    clampCells();
    picker($("#xa-bulk-product"));
    picker($("#xa-link-product"));

    $(document).on("click", ".xa-link", function () {
      $("#xa-link-offer-id").val($(this).data("offer-id"));
      $("#xa-link-offer-label").text($(this).data("offer-label"));
      $("#xa-link-product").select2("val", "");
      $("#xa-link-modal").modal("show");
    });
    $("#xa-link-form").on("submit", function (event) {
      if (!$("#xa-link-product").val()) { event.preventDefault(); }
    });
    $(document).on("click", ".xa-unlink", function () {
      if (!window.confirm($(this).data("confirm"))) { return; }
      $("#xa-unlink-offer-id").val($(this).data("offer-id"));
      $("#xa-unlink-form").submit();
    });
    // Flask-Admin posts bulk actions through #action_form: add the chosen product to it.
    $("#action_form").on("submit", function () {
      var product = $("#xa-bulk-product").val();
      $(this).find("input[name=product_id]").remove();
      if (product) {
        $("<input>", {type: "hidden", name: "product_id", value: product}).appendTo(this);
      }
    });
  });
})(window.jQuery);
