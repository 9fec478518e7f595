/* The mapping assistant's top suggestions above the product search of the link dialog
   (one offer only). Clicking one puts that product into the picker; "Link" then links it. */
(function ($) {
  "use strict";
  if (!$) { return; }
  $(function () {
    var $box = $("#xa-link-suggestions");
    if (!$box.length) { return; }
    var request = null;
    var shown = 0;  // which opening of the dialog a pending request or poll belongs to

    // The product index is being rebuilt: say so (no suggestion from the stale index), follow
    // the rebuild's progress and ask for the suggestions again when it is done.
    function showRebuild(info, url, opening) {
      $box.empty().removeClass("d-none");
      var $alert = $("<div class='alert alert-info mb-0 xa-link-rebuild' role='status'>").appendTo($box);
      $("<div class='xa-link-rebuild-message'>").text(info.message).appendTo($alert);
      var $label = $("<div class='small mt-1 xa-num xa-link-rebuild-progress'>").appendTo($alert);
      if (info.job) { $label.text(info.job.label); }
      if (!info.status_url) { return; }
      var polls = 0;
      var poll = function () {
        polls += 1;
        if (opening !== shown || polls > 3600) { return; }  // dialog closed/reopened; bounded
        $.ajax({url: info.status_url, dataType: "json", cache: false}).done(function (state) {
          if (opening !== shown) { return; }
          if (state.failed) { $label.text(info.t_failed); return; }
          $label.text(state.label);
          if (state.active) { setTimeout(poll, 2000); } else { load(url, opening); }
        }).fail(function (xhr) {
          if (xhr.status === 404) { load(url, opening); } else { setTimeout(poll, 5000); }
        });
      };
      setTimeout(poll, 2000);
    }

    function load(url, opening) {
      if (request) { request.abort(); }
      request = $.ajax({url: url, data: {limit: 3}, dataType: "json", cache: false}).done(function (data) {
        if (opening !== shown) { return; }
        $box.addClass("d-none").empty();
        if (data.rebuilding) { showRebuild(data.rebuilding, url, opening); return; }
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
    }

    $("#xa-link-modal").on("show.bs.modal", function () {
      shown += 1;
      $box.addClass("d-none").empty();
      var ids = $("#xa-link-offer-ids input").map(function () { return this.value; }).get();
      if (ids.length !== 1) { return; }
      load(String($box.data("url")).replace(/\/0\/suggestions\.json$/, "/" + encodeURIComponent(ids[0]) + "/suggestions.json"), shown);
    });
    $("#xa-link-modal").on("hidden.bs.modal", function () { shown += 1; });
  });
})(window.jQuery);
