/* Keyboard shortcuts for every page of engage. No inline script: the CSP forbids it.
 *
 * - An element with data-shortcut="x" is clicked on key x (buttons, links) or focused
 *   (inputs, textareas, selects). A two-key value such as "g q" is a sequence. A button that
 *   also has data-shortcut-row acts on the focused row: its form's [data-row-action-id] input
 *   gets that row's data-row-id first (nothing happens without a focused row).
 * - A page with rows ([data-rows] holding [data-row] elements with data-href) also gets
 *   j/k (next/previous), o or Enter (open), x (select its [data-row-select] checkbox),
 *   r (open at #reply) and n (open at #note), unless the page declares those keys itself.
 * - ? opens the help dialog (#shortcut-help), which lists the page's [data-shortcut]
 *   elements with their data-shortcut-help text; Esc closes it.
 * Keys are ignored while typing in a field and with Ctrl, Alt or Meta held.
 */
(function () {
  "use strict";

  var ROW_KEYS = ["j", "k", "o", "Enter", "x", "r", "n"];
  var pending = null; // the first key of a sequence such as "g q"
  var pendingTimer = null;

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || target.isContentEditable) return true;
    if (tag !== "input") return false;
    var type = (target.getAttribute("type") || "text").toLowerCase();
    return ["checkbox", "radio", "button", "submit", "reset"].indexOf(type) === -1;
  }

  function shortcutsFor(key) {
    return Array.prototype.filter.call(
      document.querySelectorAll("[data-shortcut]"),
      function (element) { return element.getAttribute("data-shortcut") === key; }
    );
  }

  function activate(element) {
    var tag = element.tagName.toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") {
      element.focus();
      if (element.select && tag !== "select") element.select();
      return true;
    }
    if (element.hasAttribute("data-shortcut-row")) {
      var row = focusedRow();
      var form = element.form;
      var target = form && form.querySelector("[data-row-action-id]");
      if (!row || !target) return false;
      target.value = row.getAttribute("data-row-id");
    }
    if (element.form && element.type === "submit" && element.form.requestSubmit) {
      element.form.requestSubmit(element);
    } else {
      element.click();
    }
    return true;
  }

  // Rows -------------------------------------------------------------------------------------

  function rows() {
    var container = document.querySelector("[data-rows]");
    return container ? Array.prototype.slice.call(container.querySelectorAll("[data-row]")) : [];
  }

  function focusedRow() {
    return document.querySelector("[data-row][aria-current='true']");
  }

  function focusRow(row) {
    rows().forEach(function (other) {
      other.classList.remove("is-focused");
      other.removeAttribute("aria-current");
    });
    if (!row) return;
    row.classList.add("is-focused");
    row.setAttribute("aria-current", "true");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
    remember(row.getAttribute("data-row-id"));
  }

  // The focused row survives the reload that follows a row action (a, e) or a bulk action.
  var MEMORY = "engage.focused-row";

  function remember(id) {
    try {
      window.sessionStorage.setItem(MEMORY, window.location.pathname + "#" + id);
    } catch (error) { /* storage may be off: then the focus is simply not kept */ }
  }

  function restoreFocus() {
    var saved = null;
    try { saved = window.sessionStorage.getItem(MEMORY); } catch (error) { return; }
    if (!saved || saved.indexOf(window.location.pathname + "#") !== 0) return;
    var id = saved.slice(window.location.pathname.length + 1);
    var row = rows().filter(function (r) { return r.getAttribute("data-row-id") === id; })[0];
    if (row) focusRow(row);
  }

  function moveFocus(step) {
    var all = rows();
    if (!all.length) return;
    var index = all.indexOf(focusedRow());
    var next = index === -1 ? (step > 0 ? 0 : all.length - 1) : index + step;
    focusRow(all[Math.max(0, Math.min(all.length - 1, next))]);
  }

  function open(row, hash) {
    if (row) window.location.assign(row.getAttribute("data-href") + (hash || ""));
  }

  function syncSelection() {
    var boxes = document.querySelectorAll("[data-row-select]");
    var checked = 0;
    Array.prototype.forEach.call(boxes, function (box) {
      var row = box.closest("[data-row]");
      if (row) row.classList.toggle("is-selected", box.checked);
      if (box.checked) checked += 1;
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-selected-number]"), function (n) {
      n.textContent = String(checked);
    });
    var all = document.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    }
  }

  function rowKey(key) {
    var row = focusedRow();
    switch (key) {
      case "j": moveFocus(1); return true;
      case "k": moveFocus(-1); return true;
      case "o":
      case "Enter":
        if (!row) return false;
        // Enter on a focused link or button already does its own thing.
        if (key === "Enter" && document.activeElement && document.activeElement !== row &&
            document.activeElement !== document.body) return false;
        open(row); return true;
      case "r": if (!row) return false; open(row, "#reply"); return true;
      case "n": if (!row) return false; open(row, "#note"); return true;
      case "x": {
        var box = row && row.querySelector("[data-row-select]");
        if (!box) return false;
        box.checked = !box.checked;
        syncSelection();
        return true;
      }
    }
    return false;
  }

  // Help dialog ------------------------------------------------------------------------------

  function keyLabel(key) {
    var fragment = document.createDocumentFragment();
    key.split(" ").forEach(function (part, index) {
      if (index) fragment.appendChild(document.createTextNode(" "));
      var kbd = document.createElement("kbd");
      kbd.textContent = part;
      fragment.appendChild(kbd);
    });
    return fragment;
  }

  function fillHelp(dialog) {
    var list = dialog.querySelector("[data-shortcut-list]");
    if (list) {
      list.textContent = "";
      var seen = {};
      Array.prototype.forEach.call(document.querySelectorAll("[data-shortcut]"), function (element) {
        var key = element.getAttribute("data-shortcut");
        var help = element.getAttribute("data-shortcut-help") || element.getAttribute("aria-label") ||
          element.textContent.trim();
        if (!key || seen[key] || dialog.contains(element)) return;
        seen[key] = true;
        var item = document.createElement("div");
        var term = document.createElement("dt");
        var description = document.createElement("dd");
        term.appendChild(keyLabel(key));
        description.textContent = help;
        item.appendChild(term);
        item.appendChild(description);
        list.appendChild(item);
      });
      var pageKeys = dialog.querySelector("[data-shortcut-page-keys]");
      if (pageKeys) pageKeys.hidden = !list.children.length;
    }
    var rowKeys = dialog.querySelector("[data-shortcut-row-keys]");
    if (rowKeys) rowKeys.hidden = rows().length === 0;
  }

  function openHelp() {
    var dialog = document.getElementById("shortcut-help");
    if (!dialog || dialog.open || !dialog.showModal) return false;
    fillHelp(dialog);
    dialog.showModal();
    return true;
  }

  // Keys -------------------------------------------------------------------------------------

  function handle(event) {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey) return;
    var dialog = document.getElementById("shortcut-help");
    if (dialog && dialog.open) return; // the dialog closes itself on Esc
    if (isTyping(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var key = event.key;
    if (key === "?") {
      if (openHelp()) event.preventDefault();
      return;
    }
    var sequence = pending ? pending + " " + key : null;
    pending = null;
    window.clearTimeout(pendingTimer);
    if (sequence) {
      var inSequence = shortcutsFor(sequence);
      if (inSequence.length && activate(inSequence[0])) {
        event.preventDefault();
        return;
      }
    }
    var declared = shortcutsFor(key);
    if (declared.length) {
      if (activate(declared[0])) event.preventDefault();
      return;
    }
    var startsSequence = document.querySelector("[data-shortcut^='" + (key.length === 1 ? key.replace(/['\\]/g, "") : "-") + " ']");
    if (startsSequence) {
      pending = key;
      pendingTimer = window.setTimeout(function () { pending = null; }, 1200);
      return;
    }
    if (ROW_KEYS.indexOf(key) !== -1 && rows().length && rowKey(key)) event.preventDefault();
  }

  function init() {
    document.addEventListener("keydown", handle);
    document.addEventListener("click", function (event) {
      var opener = event.target.closest && event.target.closest("[data-shortcut-open]");
      if (opener) {
        event.preventDefault();
        openHelp();
        return;
      }
      var row = event.target.closest && event.target.closest("[data-row]");
      if (row && !event.target.closest("a, button, input, select, textarea, label")) focusRow(row);
    });
    document.addEventListener("change", function (event) {
      var all = event.target.closest && event.target.closest("[data-select-all]");
      if (all) {
        Array.prototype.forEach.call(document.querySelectorAll("[data-row-select]"), function (box) {
          box.checked = all.checked;
        });
      }
      if (all || (event.target.matches && event.target.matches("[data-row-select]"))) syncSelection();
    });
    syncSelection();
    restoreFocus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
