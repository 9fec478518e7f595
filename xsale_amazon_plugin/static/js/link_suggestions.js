/* The mapping assistant's top suggestions above the product search of the link dialog
   (one offer only). Clicking one puts that product into the picker; "Link" then links it. */
(function ($) {
  "use strict";
  if (!$) { return; }
  $(function () {
    var $box = $("#xa-link-suggestions");
    if (!$box.length) { return; }
    var request = null;
    $("#xa-link-modal").on("show.bs.modal", function () {
      $box.addClass("d-none").empty();
      var ids = $("#xa-link-offer-ids input").map(function () { return this.value; }).get();
      if (ids.length !== 1) { return; }
      var url = String($box.data("url")).replace(/\/0\/suggestions\.json$/, "/" + encodeURIComponent(ids[0]) + "/suggestions.json");
      if (request) { request.abort(); }
      request = $.ajax({url: url, data: {limit: 3}, dataType: "json"}).done(function (data) {
        if (!data.suggestions || !data.suggestions.length) { return; }
        $box.append($("<div class='small text-muted mb-1'>").text($box.data("title")));
        var $list = $("<div class='list-group'>").appendTo($box);
        data.suggestions.forEach(function (s) {
          var $item = $("<button type='button' class='list-group-item list-group-item-action xa-link-suggestion'>")
            .attr("data-product-id", s.product_id);
          var $head = $("<div class='d-flex justify-content-between'>").appendTo($item);
          $("<span>").text((s.sku ? s.sku + " · " : "") + (s.title || s.product_id)).appendTo($head);
          $("<span class='badge'>").addClass("xa-confidence-" + s.confidence)
            .text(s.confidence_label + " · " + Math.round(100 * s.score) + " %").appendTo($head);
          var $reasons = $("<div>").appendTo($item);
          s.reasons.forEach(function (r) {
            $("<span class='badge mr-1 xa-reason'>").addClass(r.negative ? "badge-danger" : "badge-success")
              .text(r.text).appendTo($reasons);
          });
          $item.on("click", function () {
            $list.children().removeClass("active");
            $item.addClass("active");
            var $product = $("#xa-link-product");
            $product.select2("data", {id: s.product_id, text: (s.sku ? s.sku + " · " : "") + (s.title || "")});
            $product.trigger("change");
          });
          $list.append($item);
        });
        $box.removeClass("d-none");
      });
    });
  });
})(window.jQuery);
