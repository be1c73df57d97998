// The conversation page: "/conversations/12/#reply" (the queue's `r` key) and "#note"
// open the page with the cursor in the reply or note box.
(function () {
  "use strict";
  var targets = { "#reply": "id_reply_text", "#note": "id_note_text" };
  function focusFromHash() {
    var id = targets[window.location.hash];
    var field = id && document.getElementById(id);
    if (field) {
      field.scrollIntoView({ block: "center" });
      field.focus();
    }
  }
  document.addEventListener("DOMContentLoaded", focusFromHash);
  window.addEventListener("hashchange", focusFromHash);

  // Back on this tab: refresh "who else is here" and "changed since" at once, rather than
  // at the next 15-second heartbeat.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      document.body.dispatchEvent(new CustomEvent("engage:presence"));
    }
  });
})();
