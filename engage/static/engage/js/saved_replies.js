/* The saved-replies picker of the conversation page (templates/engage/includes/
 * saved_replies_picker.html): filter, choose with the arrow keys, insert into the reply
 * box or copy to the clipboard.
 *
 * The texts arrive already filled in for the contact and escaped by the server; this file
 * only ever moves them as text (value, textContent, clipboard), never as HTML. Listeners
 * are delegated from the document, so a picker swapped in by htmx works without set-up.
 */
(function () {
  "use strict";

  var PICKER = "[data-saved-replies-picker]";
  var OPTION = "[data-saved-reply]";
  var FEEDBACK_MS = 2000;

  function pickerOf(node) {
    return node && node.closest ? node.closest(PICKER) : null;
  }

  function targetOf(picker) {
    return document.getElementById(picker.dataset.target || "id_reply_text");
  }

  function normalise(text) {
    // Case and accents do not matter when filtering: "perche" finds "perché".
    return (text || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function options(picker) {
    return Array.prototype.slice.call(picker.querySelectorAll(OPTION));
  }

  function visibleOptions(picker) {
    return options(picker).filter(function (option) {
      return !option.hidden;
    });
  }

  function announce(picker, message) {
    var status = picker.querySelector("[data-saved-replies-status]");
    if (!status) return;
    // Emptied first, so that the same message twice is read twice.
    status.textContent = "";
    window.setTimeout(function () {
      status.textContent = message;
    }, 50);
  }

  function activeOption(picker) {
    var option = picker.querySelector(OPTION + ".is-active");
    return option && !option.hidden ? option : null;
  }

  function setActive(picker, option, speak) {
    options(picker).forEach(function (each) {
      each.classList.toggle("is-active", each === option);
    });
    var filter = picker.querySelector("[data-saved-replies-filter]");
    if (filter) {
      if (option) filter.setAttribute("aria-activedescendant", option.id);
      else filter.removeAttribute("aria-activedescendant");
    }
    if (option) {
      option.scrollIntoView({ block: "nearest" });
      if (speak) announce(picker, option.dataset.title + ". " + (picker.dataset.enterLabel || ""));
    }
  }

  function applyFilter(picker) {
    var filter = picker.querySelector("[data-saved-replies-filter]");
    var terms = normalise(filter ? filter.value : "").split(/\s+/).filter(Boolean);
    var shown = 0;
    options(picker).forEach(function (option) {
      if (option.dataset.search === undefined) {
        option.dataset.search = normalise(option.dataset.title + " " + option.dataset.text);
      }
      var match = terms.every(function (term) {
        return option.dataset.search.indexOf(term) !== -1;
      });
      option.hidden = !match;
      if (match) shown += 1;
    });
    var none = picker.querySelector("[data-saved-replies-no-match]");
    if (none) none.hidden = shown > 0;
    if (shown === 0 && none) announce(picker, none.textContent);
    var visible = visibleOptions(picker);
    setActive(picker, activeOption(picker) || visible[0] || null, false);
  }

  function move(picker, step) {
    var visible = visibleOptions(picker);
    if (!visible.length) return;
    var index = visible.indexOf(activeOption(picker));
    index = index === -1 ? 0 : (index + step + visible.length) % visible.length;
    setActive(picker, visible[index], true);
  }

  function open(picker) {
    picker.open = true;
    var filter = picker.querySelector("[data-saved-replies-filter]");
    if (filter) {
      filter.focus();
      filter.select();
    }
    applyFilter(picker);
  }

  function close(picker) {
    picker.open = false;
    var summary = picker.querySelector("summary");
    if (summary) summary.focus();
  }

  function flash(option, message) {
    var feedback = option.querySelector("[data-saved-reply-feedback]");
    if (!feedback) return;
    feedback.textContent = message;
    window.clearTimeout(Number(feedback.dataset.timer));
    feedback.dataset.timer = String(
      window.setTimeout(function () {
        feedback.textContent = "";
      }, FEEDBACK_MS)
    );
  }

  /* Into the reply box: replaces it when it is blank, else goes where the cursor is (or
   * after the text, when nobody has put a cursor in it yet). */
  function insert(picker, option) {
    var area = targetOf(picker);
    if (!area) return;
    var text = option.dataset.text;
    var value = area.value;
    var start = area.selectionStart;
    var end = area.selectionEnd;
    if (!value.trim()) {
      start = 0;
      end = value.length;
    } else if (!area.dataset.savedRepliesTouched) {
      start = end = value.length;
      if (!/\s$/.test(value)) text = " " + text;
    }
    picker.open = false;
    area.focus();
    area.setSelectionRange(start, end);
    // insertText keeps the browser's undo history; setRangeText is the fallback.
    var done = false;
    try {
      done = document.execCommand("insertText", false, text);
    } catch (error) {
      done = false;
    }
    if (!done || area.value.slice(start, start + text.length) !== text) {
      area.setRangeText(text, start, end, "end");
      area.dispatchEvent(new Event("input", { bubbles: true }));
    }
    area.dataset.savedRepliesTouched = "1";
    announce(picker, picker.dataset.insertedLabel || "");
  }

  function copyWithSelection(text) {
    var scratch = document.createElement("textarea");
    scratch.className = "saved-replies-clipboard";
    scratch.value = text;
    scratch.setAttribute("readonly", "");
    scratch.setAttribute("aria-hidden", "true");
    scratch.tabIndex = -1;
    document.body.appendChild(scratch);
    scratch.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    scratch.remove();
    return copied;
  }

  function selectText(node) {
    var selection = window.getSelection();
    var range = document.createRange();
    range.selectNodeContents(node);
    selection.removeAllRanges();
    selection.addRange(range);
  }

  /* To the clipboard in one click; where that is refused, the text is left selected. */
  function copy(picker, option, button) {
    var text = option.dataset.text;
    function copied() {
      flash(option, picker.dataset.copiedLabel || "");
      announce(picker, picker.dataset.copiedLabel || "");
      button.focus();
    }
    function fallback() {
      if (copyWithSelection(text)) {
        copied();
        return;
      }
      var shown = option.querySelector("[data-saved-reply-text]");
      if (shown) selectText(shown);
      flash(option, picker.dataset.copyManualLabel || "");
      announce(picker, picker.dataset.copyManualLabel || "");
    }
    if (window.isSecureContext && navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(copied, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("click", function (event) {
    var picker = pickerOf(event.target);
    if (!picker) return;
    var summary = event.target.closest("summary");
    if (summary && summary.parentElement === picker) {
      // A shortcut's synthetic click on an open picker brings the filter back, not a close.
      if (!event.isTrusted && picker.open) {
        event.preventDefault();
        open(picker);
      }
      return;
    }
    var option = event.target.closest(OPTION);
    if (!option) return;
    var button = event.target.closest("button");
    if (button && button.matches("[data-saved-reply-insert]")) {
      insert(picker, option);
    } else if (button && button.matches("[data-saved-reply-copy]")) {
      copy(picker, option, button);
    } else {
      setActive(picker, option, false);
    }
  });

  // "toggle" does not bubble: listen in the capture phase.
  document.addEventListener(
    "toggle",
    function (event) {
      var picker = event.target;
      if (picker.matches && picker.matches(PICKER) && picker.open) open(picker);
    },
    true
  );

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("[data-saved-replies-filter]")) {
      applyFilter(pickerOf(event.target));
    }
  });

  document.addEventListener("keydown", function (event) {
    var picker = pickerOf(event.target);
    if (!picker || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close(picker);
      return;
    }
    if (!event.target.matches("[data-saved-replies-filter]")) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      move(picker, event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter") {
      // The picker may sit inside the reply form: Enter must not submit it.
      event.preventDefault();
      var option = activeOption(picker) || visibleOptions(picker)[0];
      if (option) insert(picker, option);
    }
  });

  // Where the person put the cursor is where an inserted reply goes.
  document.addEventListener("focusin", function (event) {
    var area = event.target;
    if (area.tagName === "TEXTAREA") {
      document.querySelectorAll(PICKER).forEach(function (picker) {
        if (targetOf(picker) === area) area.dataset.savedRepliesTouched = "1";
      });
    }
  });

  function hideInsertWithoutTarget() {
    document.querySelectorAll(PICKER).forEach(function (picker) {
      var missing = !targetOf(picker);
      picker.querySelectorAll("[data-saved-reply-insert]").forEach(function (button) {
        button.hidden = missing;
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", hideInsertWithoutTarget);
  } else {
    hideInsertWithoutTarget();
  }
  document.addEventListener("htmx:afterSettle", hideInsertWithoutTarget);
})();
