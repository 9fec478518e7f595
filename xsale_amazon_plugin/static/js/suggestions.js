/* Suggestions view: review one offer at a time and decide from the keyboard.
   Enter accept, Up/Down (K/J) move between suggestions, X reject the highlighted suggestion,
   N no match, S or Right skip, Left previous offer. Decisions are POSTed in the background. */
(function () {
  "use strict";
  var root = document.getElementById("xa-suggest");
  if (!root) { return; }
  var select = document.getElementById("xa-suggest-integration");
  if (select) { select.addEventListener("change", function () { select.form.submit(); }); }

  // -- progress of the computing job ------------------------------------------------------
  var jobUrl = root.getAttribute("data-job-url");
  if (jobUrl) {
    var polls = 0;
    var poll = function () {
      polls += 1;
      if (polls > 7200) { return; }  // bounded: two hours at one poll a second
      fetch(jobUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (state) {
          if (!state) { return; }
          document.getElementById("xa-suggest-job-done").textContent = state.done;
          document.getElementById("xa-suggest-job-total").textContent = state.total === null ? "…" : state.total;
          var pct = state.total ? Math.round(100 * state.done / state.total) : 0;
          var bar = document.getElementById("xa-suggest-job-bar");
          bar.style.width = pct + "%";
          bar.setAttribute("aria-valuenow", pct);
          if (state.failed) {
            var failed = document.getElementById("xa-suggest-job-failed");
            failed.textContent = failed.getAttribute("data-text");
            failed.hidden = false;
            return;
          }
          if (!state.active) { reloadPage(); return; }
          setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 3000); });
    };
    poll();
  }

  // -- progress of the product index rebuild: reload when it is done ------------------------
  var rebuildUrl = root.getAttribute("data-rebuild-url");
  if (rebuildUrl) {
    var rebuildPolls = 0;
    var pollRebuild = function () {
      rebuildPolls += 1;
      if (rebuildPolls > 3600) { return; }  // bounded: two hours at one poll every 2 s
      fetch(rebuildUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.status === 404 ? {active: false} : (r.ok ? r.json() : null); })
        .then(function (state) {
          if (!state) { setTimeout(pollRebuild, 5000); return; }
          var label = document.getElementById("xa-suggest-rebuild-label");
          if (label && state.label) { label.textContent = state.label; }
          var bar = document.getElementById("xa-suggest-rebuild-bar");
          if (bar && state.percent !== undefined) {
            bar.style.width = state.percent + "%";
            bar.setAttribute("aria-valuenow", state.percent);
          }
          if (state.failed) {
            var failed = document.getElementById("xa-suggest-rebuild-failed");
            failed.textContent = failed.getAttribute("data-text");
            failed.hidden = false;
            return;
          }
          if (!state.active) { reloadPage(); return; }
          setTimeout(pollRebuild, 2000);
        })
        .catch(function () { setTimeout(pollRebuild, 5000); });
    };
    setTimeout(pollRebuild, 1000);
  }

  var card = document.getElementById("xa-suggest-card");
  if (!card) { return; }
  var items = JSON.parse(document.getElementById("xa-suggest-data").textContent || "[]");
  var index = 0;       // current offer
  var selected = 0;    // highlighted suggestion of the current offer
  var skipped = 0;     // offers passed without a decision (still in the server's queue)
  var exhausted = items.length < 50;
  var busy = false;

  function fill(text, values) {
    Object.keys(values || {}).forEach(function (k) { text = text.split(k).join(String(values[k])); });
    return text;
  }
  function t(name, values) { return fill(root.getAttribute("data-t-" + name) || "", values); }
  function el(id) { return document.getElementById(id); }
  function status(text, kind) {
    var box = el("xa-suggest-status");
    box.textContent = text;
    box.className = "alert py-2 alert-" + (kind || "success");
  }
  function csrfData() {
    var data = new URLSearchParams();
    var token = document.querySelector("#xa-suggest-csrf input[name=csrf_token]");
    if (token) { data.append("csrf_token", token.value); }
    return data;
  }

  // -- the page's counts, kept in step with the decisions made here ------------------------
  function isHigh(item) {
    var best = item && item.suggestions[0];
    return Boolean(best && !item.stale && best.confidence === "high");
  }
  function addToCount(id, delta) {
    var badge = el(id);
    if (!badge || !delta) { return; }
    var count = Math.max(0, (parseInt(badge.getAttribute("data-count"), 10) || 0) + delta);
    badge.setAttribute("data-count", String(count));
    badge.textContent = fill(badge.getAttribute("data-template"), {__N__: count});
    if (id === "xa-suggest-no-match-count") { badge.classList.toggle("d-none", count === 0); }
    if (id === "xa-accept-high-label") {
      var button = el("xa-accept-high-button");
      button.classList.toggle("disabled", count === 0);
      if (count === 0) { button.setAttribute("aria-disabled", "true"); } else { button.removeAttribute("aria-disabled"); }
    }
  }

  // Offers in the queue: all loaded ones once the server has no more, else the unlinked
  // offers without a "no match" decision (the badges, which follow the decisions made here).
  function queueTotal() {
    if (exhausted) { return items.length; }
    var count = function (id) { return parseInt((el(id) || card).getAttribute("data-count"), 10) || 0; };
    return Math.max(items.length, count("xa-suggest-unlinked") - count("xa-suggest-no-match-count"));
  }
  var OFFER_BUTTONS = ["xa-suggest-accept", "xa-suggest-prev-suggestion", "xa-suggest-next-suggestion",
                       "xa-suggest-reject", "xa-suggest-no-match", "xa-suggest-skip"];

  function render() {
    var item = items[index];
    var list = el("xa-suggest-list");
    list.textContent = "";
    OFFER_BUTTONS.forEach(function (id) { el(id).disabled = !item; });
    el("xa-suggest-back").disabled = index === 0;
    el("xa-suggest-offer-keys").classList.toggle("d-none", !item);
    if (!item) {
      el("xa-suggest-position").textContent = "";
      ["xa-suggest-offer-title", "xa-suggest-offer-sku", "xa-suggest-offer-asin", "xa-suggest-offer-ean"]
        .forEach(function (id) { el(id).textContent = ""; });
      el("xa-suggest-empty").textContent = skipped > 0 ? t("done-skipped", {__N__: skipped}) : t("done");
      el("xa-suggest-empty").classList.remove("d-none");
      card.setAttribute("data-offer-id", "");
      return;
    }
    card.setAttribute("data-offer-id", item.offer_id);
    el("xa-suggest-position").textContent = t("position", {__N__: index + 1, __T__: queueTotal()});
    el("xa-suggest-offer-title").textContent = item.name || "";
    el("xa-suggest-offer-sku").textContent = item.seller_sku;
    el("xa-suggest-offer-asin").textContent = item.asin || "—";
    // The report's product-id is an EAN, UPC, ISBN... or the ASIN again (then not repeated).
    var kind = (item.product_id_type || "").toUpperCase();
    el("xa-suggest-offer-product-id").classList.toggle("d-none", !item.product_id || kind === "ASIN");
    el("xa-suggest-offer-ean-label").textContent = kind || "EAN";
    el("xa-suggest-offer-ean").textContent = item.product_id || "";
    var empty = el("xa-suggest-empty");
    if (!item.suggestions.length) {
      empty.textContent = t("none");
      empty.classList.remove("d-none");
    } else {
      empty.classList.add("d-none");
    }
    if (selected >= item.suggestions.length) { selected = Math.max(0, item.suggestions.length - 1); }
    item.suggestions.forEach(function (s, i) {
      var row = document.createElement("div");
      row.className = "list-group-item xa-suggestion" + (i === selected ? " active" : "");
      row.setAttribute("role", "option");
      row.setAttribute("aria-selected", i === selected ? "true" : "false");
      row.setAttribute("data-product-id", s.product_id);
      row.setAttribute("data-confidence", s.confidence);
      var head = document.createElement("div");
      head.className = "d-flex justify-content-between";
      var title = document.createElement("strong");
      title.textContent = s.title || s.product_id;
      var badge = document.createElement("span");
      badge.className = "badge xa-confidence xa-confidence-" + s.confidence;
      badge.textContent = s.confidence_label + " · " + Math.round(100 * s.score) + " %";
      head.appendChild(title);
      head.appendChild(badge);
      row.appendChild(head);
      if (s.sku) {
        var sku = document.createElement("div");
        sku.className = "small xa-suggestion-sku";
        sku.textContent = "SKU " + s.sku;
        row.appendChild(sku);
      }
      var reasons = document.createElement("div");
      s.reasons.forEach(function (r) {
        var b = document.createElement("span");
        b.className = "badge mr-1 xa-reason " + (r.negative ? "badge-danger" : "badge-success");
        b.textContent = r.text;
        reasons.appendChild(b);
      });
      row.appendChild(reasons);
      row.addEventListener("click", function () { selected = i; render(); });
      row.addEventListener("dblclick", function () { selected = i; acceptSelected(); });
      list.appendChild(row);
    });
  }

  // The product index went stale and is being rebuilt: the page says so (no stale suggestion).
  function reloadPage() { window.location.href = root.getAttribute("data-reload-url"); }

  function loadMore(then) {
    if (exhausted) { then(); return; }
    var url = root.getAttribute("data-queue-url") + "&offset=" + skipped;
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (data.rebuilding) { reloadPage(); return; }
        var known = {};
        items.forEach(function (it) { known[it.offer_id] = true; });
        var fresh = data.items.filter(function (it) { return !known[it.offer_id]; });
        if (!fresh.length) { exhausted = true; }
        items = items.concat(fresh);
        then();
      })
      .catch(function () { exhausted = true; then(); });
  }

  function advance(removeCurrent) {
    if (removeCurrent) { items.splice(index, 1); } else { index += 1; skipped += 1; }
    selected = 0;
    if (index >= items.length - 5) { loadMore(render); } else { render(); }
  }

  function post(data) {
    busy = true;
    return fetch(root.getAttribute("data-decide-url"), {
      method: "POST", credentials: "same-origin", body: data,
      headers: {"Accept": "application/json"}
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        busy = false;
        if (!r.ok) { throw new Error(body.error || t("failed")); }
        return body;
      });
    }, function (err) { busy = false; throw err; });
  }

  function acceptSelected() {
    var item = items[index];
    if (busy || !item || !item.suggestions.length) { return; }
    var s = item.suggestions[selected];
    var data = csrfData();
    data.append("action", "accept");
    data.append("offer_id", item.offer_id);
    data.append("product_key", s.product_id);
    post(data).then(function () {
      status(t("linked", {__O__: item.seller_sku, __P__: s.title || s.product_id}));
      addToCount("xa-suggest-unlinked", -1);
      addToCount("xa-accept-high-label", isHigh(item) ? -1 : 0);
      advance(true);
    }).catch(function (e) { status(e.message, "danger"); });
  }

  function rejectSelected() {
    var item = items[index];
    if (busy || !item || !item.suggestions.length) { return; }
    var s = item.suggestions[selected];
    var data = csrfData();
    data.append("action", "reject");
    data.append("offer_id", item.offer_id);
    data.append("product_key", s.product_id);
    post(data).then(function (body) {
      if (body.rebuilding) { reloadPage(); return; }
      var wasHigh = isHigh(item);
      item.suggestions = body.suggestions || [];
      addToCount("xa-accept-high-label", (isHigh(item) ? 1 : 0) - (wasHigh ? 1 : 0));
      selected = 0;
      status(t("rejected"), "info");
      render();
    }).catch(function (e) { status(e.message, "danger"); });
  }

  function noMatch() {
    var item = items[index];
    if (busy || !item) { return; }
    var data = csrfData();
    data.append("action", "no_match");
    data.append("offer_id", item.offer_id);
    post(data).then(function () {
      status(t("no-match", {__O__: item.seller_sku}), "info");
      addToCount("xa-suggest-no-match-count", 1);
      addToCount("xa-accept-high-label", isHigh(item) ? -1 : 0);
      advance(true);
    }).catch(function (e) { status(e.message, "danger"); });
  }

  function move(delta) {
    var item = items[index];
    if (!item || !item.suggestions.length) { return; }
    selected = (selected + delta + item.suggestions.length) % item.suggestions.length;
    render();
  }
  function back() {
    if (index > 0) { index -= 1; skipped = Math.max(0, skipped - 1); selected = 0; render(); }
  }

  // A button pressed with the mouse hands the focus back to the card, so the next key is a
  // shortcut again (Enter accepts) rather than pressing that button once more.
  function onClick(id, action) {
    el(id).addEventListener("click", function (event) {
      action();
      if (event.detail > 0) { card.focus(); }
    });
  }
  onClick("xa-suggest-accept", acceptSelected);
  onClick("xa-suggest-reject", rejectSelected);
  onClick("xa-suggest-no-match", noMatch);
  onClick("xa-suggest-skip", function () { if (items[index]) { advance(false); } });
  onClick("xa-suggest-back", back);
  onClick("xa-suggest-next-suggestion", function () { move(1); });
  onClick("xa-suggest-prev-suggestion", function () { move(-1); });

  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(tag) || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var key = event.key;
    // Enter and Space on a focused button or link press it (reached with Tab): "Skip" must
    // skip, not accept.
    if ((key === "Enter" || key === " ") && /^(BUTTON|A|SUMMARY)$/.test(tag)) { return; }
    var handled = true;
    if (key === "Enter" || key === "a" || key === "A") { acceptSelected(); }
    else if (key === "ArrowDown" || key === "j" || key === "J") { move(1); }
    else if (key === "ArrowUp" || key === "k" || key === "K") { move(-1); }
    else if (key === "x" || key === "X") { rejectSelected(); }
    else if (key === "n" || key === "N") { noMatch(); }
    else if (key === "s" || key === "S" || key === "ArrowRight") { if (items[index]) { advance(false); } }
    else if (key === "ArrowLeft") { back(); }
    else { handled = false; }
    if (handled) { event.preventDefault(); }
  });

  render();
  card.focus();
})();
