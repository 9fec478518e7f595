/* Offers workspace: the link dialog (one offer or the selected ones) with a paged product
   picker (Flask-Admin's select2 3.5 + the plugin's product search), styled unlink and
   "nothing selected" dialogs instead of the browser's confirm()/alert(), and the auto-link
   dialog. Text from the page is only ever written with textContent / .text(). */
(function ($) {
  "use strict";
  if (!$ || !$.fn.select2) { return; }

  function fill(template, values) {
    var out = String(template || "");
    Object.keys(values).forEach(function (key) { out = out.split(key).join(String(values[key])); });
    return out;
  }

  function selectedIds() {
    return $("input.action-checkbox:checked").map(function () { return this.value; }).get();
  }

  function hiddenIds($box, ids) {
    $box.empty();
    ids.forEach(function (id) {
      $("<input>", {type: "hidden", name: "offer_id", value: id}).appendTo($box);
    });
  }

  // select2 3.5 puts its status texts into HTML: escape the (translated) strings.
  var ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"};
  function escapeText(text) {
    return String(text || "").replace(/[&<>"']/g, function (ch) { return ENTITIES[ch]; });
  }

  // -- product picker ----------------------------------------------------------------------
  var PAGE_SIZE = 20;
  function picker($el) {
    var offerId = null;
    $el.select2({
      width: "resolve",
      placeholder: $el.data("placeholder"),
      allowClear: true,
      minimumInputLength: 0,
      formatNoMatches: function () { return escapeText($el.data("no-matches")); },
      formatSearching: function () { return escapeText($el.data("searching")); },
      formatLoadMore: function () { return escapeText($el.data("load-more")); },
      formatResult: function (item) {
        var box = $("<span>");
        if (item.match) {
          $("<span>", {"class": "badge badge-success mr-2 xa-same"})
            .text($el.data(item.match === "sku" ? "same-sku" : "same-ean")).appendTo(box);
        }
        $("<span>").text(item.text).appendTo(box);
        return box;
      },
      // Both return nodes built with .text(): select2 appends them as they are.
      formatSelection: function (item) { return $("<span>").text(item.text); },
      ajax: {
        url: $el.data("url"),
        dataType: "json",
        quietMillis: 250,
        data: function (term, page) {
          var params = {q: term || "", page: page, limit: PAGE_SIZE};
          if (offerId) { params.offer_id = offerId; }
          return params;
        },
        results: function (data, page) {
          var shown = (page - 1) * PAGE_SIZE + (data.results || []).length;
          var hint = "";
          if (data.more) {
            hint = fill($el.data("more-hint"), {__S__: shown, __T__: data.total_label || data.total});
          }
          $("#xa-picker-hint").text(hint);
          return {results: data.results || [], more: !!data.more};
        }
      }
    });
    return {setOffer: function (id) { offerId = id; }};
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
    var $product = $("#xa-link-product");
    var productPicker = picker($product);
    var $error = $("#xa-link-error");
    var $bulk = $("#xa-bulk-link-button");

    function showError(text) { $error.text(text).removeClass("d-none"); }

    function refreshSelection() {
      var n = selectedIds().length;
      $bulk.prop("disabled", n === 0);
      $bulk.find(".xa-label").text(n ? fill($bulk.data("template"), {__N__: n})
                                      : $bulk.find(".xa-label").data("idle"));
      var $sel = $("#xa-autolink-target-selected");
      $sel.prop("disabled", n === 0);
      $("label[for=xa-autolink-target-selected]").text(
        n ? fill($sel.data("template"), {__N__: n}) : $sel.data("idle"));
      if (!n && $sel.prop("checked")) { $("#xa-autolink-target-filter").prop("checked", true); }
    }
    $bulk.find(".xa-label").data("idle", $bulk.find(".xa-label").text());
    $("#xa-autolink-target-selected").data(
      "idle", $("label[for=xa-autolink-target-selected]").text());
    $(document).on("change", "input.action-checkbox, input.action-rowtoggle", function () {
      setTimeout(refreshSelection, 0);  // after Flask-Admin's own toggle handler
    });
    refreshSelection();

    function openLinkDialog(ids, label, offerForPicker) {
      hiddenIds($("#xa-link-offer-ids"), ids);
      var $title = $("#xa-link-title");
      $title.text(ids.length === 1 ? $title.data("one")
                                   : fill($title.data("many"), {__N__: ids.length}));
      $("#xa-link-offer-label").text(label);
      productPicker.setOffer(offerForPicker);
      $product.select2("val", "");
      $("#xa-picker-hint").text("");
      $error.addClass("d-none").text("");
      $("#xa-link-modal").modal("show");
    }

    $(document).on("click", ".xa-link", function () {
      var id = String($(this).data("offer-id"));
      openLinkDialog([id], $(this).data("offer-label"), id);
    });
    $bulk.on("click", function () {
      var ids = selectedIds();
      if (!ids.length) { return; }
      var skus = $("input.action-checkbox:checked").closest("tr").find("td.col-seller_sku")
        .map(function () { return $(this).text().trim(); }).get();
      var label = skus.slice(0, 5).join(", ") + (skus.length > 5 ? ", …" : "");
      openLinkDialog(ids, label, ids.length === 1 ? ids[0] : null);
    });

    // Submit in the background: an error is shown in the dialog and the ticked rows stay
    // ticked; success reloads the list (the server flashed the result).
    $("#xa-link-form").on("submit", function (event) {
      event.preventDefault();
      if (!$product.val()) {
        showError($error.data("no-product"));
        $product.select2("open");
        return;
      }
      var $submit = $("#xa-link-submit").prop("disabled", true);
      $.ajax({
        url: this.action, method: "POST", data: $(this).serialize(), dataType: "json",
        headers: {"Accept": "application/json"}
      }).done(function () {
        window.location.reload();
      }).fail(function (xhr) {
        var data = xhr.responseJSON || {};
        showError(data.error || $error.data("failed"));
        $submit.prop("disabled", false);
      });
    });
    $product.on("change", function () { if ($product.val()) { $error.addClass("d-none"); } });

    // -- unlink: styled confirmation --------------------------------------------------------
    function openUnlinkDialog(ids, offerLabel) {
      hiddenIds($("#xa-unlink-offer-ids"), ids);
      var $text = $("#xa-unlink-text");
      $text.text(ids.length === 1 && offerLabel
        ? fill($text.data("one"), {__O__: offerLabel})
        : fill($text.data("many"), {__N__: ids.length}));
      $("#xa-unlink-modal").modal("show");
    }
    $(document).on("click", ".xa-unlink", function () {
      openUnlinkDialog([String($(this).data("offer-id"))], $(this).data("offer-label"));
    });

    // Flask-Admin's "With selected" menu: styled dialogs instead of alert()/confirm().
    if (window.modelActions) {
      var execute = window.modelActions.execute;
      window.modelActions.execute = function (name) {
        var ids = selectedIds();
        if (!ids.length) {
          var $msg = $("#xa-message-text");
          $msg.text($msg.data("nothing-selected"));
          $("#xa-message-modal").modal("show");
          return false;
        }
        if (name === "unlink") { openUnlinkDialog(ids, null); return false; }
        return execute.call(window.modelActions, name);
      };
    }

    // -- auto-link -----------------------------------------------------------------------------
    $("#xa-autolink-button").on("click", function () {
      refreshSelection();
      $("#xa-autolink-modal").modal("show");
    });
    $("#xa-autolink-integration").on("change focus", function () {
      $("#xa-autolink-target-integration").prop("checked", true);
    });
    $("#xa-autolink-form").on("submit", function () {
      var target = $("input[name=target]:checked", this).val();
      hiddenIds($("#xa-autolink-offer-ids"), target === "selected" ? selectedIds() : []);
      $("#xa-autolink-submit").prop("disabled", true);
    });
  });
})(window.jQuery);
