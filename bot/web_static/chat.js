// The web chat with JavaScript on: no page reloads, focus kept in the message box, new
// messages announced by the log's live region, and a quick exit (button, or Esc twice) that
// replaces this page so Back does not return to it. Everything works without this script.
(function () {
  "use strict";
  var leaveForm = document.querySelector("form.leave");
  if (!leaveForm) { return; }
  var exitUrl = leaveForm.getAttribute("data-exit");
  var hint = document.getElementById("leave-hint");
  if (hint) { hint.hidden = false; }

  function leave() {
    try {
      fetch("/exit", { method: "POST", body: new URLSearchParams(new FormData(leaveForm)),
        credentials: "same-origin", keepalive: true, redirect: "manual" });
    } catch (ignored) { /* the page goes anyway */ }
    window.location.replace(exitUrl);
  }

  leaveForm.addEventListener("submit", function (event) { event.preventDefault(); leave(); });
  var lastEscape = 0;
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    var now = Date.now();
    if (now - lastEscape < 1000) { leave(); }
    lastEscape = now;
  });

  var busy = false;
  function update(html, focusInput) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var log = document.getElementById("log");
    var freshLog = fresh.getElementById("log");
    var main = document.getElementById("chat");
    var freshMain = fresh.getElementById("chat");
    if (!log || !freshLog || !main || !freshMain) {
      document.open(); document.write(html); document.close();
      return;
    }
    var known = {};
    Array.prototype.forEach.call(log.children, function (item) { known[item.id] = true; });
    Array.prototype.forEach.call(freshLog.children, function (item) {
      var old = document.getElementById(item.id);
      if (old && known[item.id]) { old.replaceWith(document.importNode(item, true)); }
      else { log.appendChild(document.importNode(item, true)); }
    });
    ["form.options", "form.say", "form.refresh"].forEach(function (selector) {
      var mine = main.querySelector(selector);
      var theirs = freshMain.querySelector(selector);
      if (mine) { mine.remove(); }
      if (theirs) { main.appendChild(document.importNode(theirs, true)); }
    });
    document.documentElement.lang = fresh.documentElement.lang;
    wire();
    var input = document.getElementById("text");
    if (focusInput && input) { input.focus(); }
    var last = log.lastElementChild;
    if (last) { last.scrollIntoView({ block: "nearest" }); }
  }

  function send(form, submitter) {
    if (busy) { return; }
    busy = true;
    var data = new FormData(form);
    if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
    fetch(form.action, { method: "POST", body: new URLSearchParams(data), credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) { update(html, true); })
      .catch(function () { form.submit(); })
      .finally(function () { busy = false; });
  }

  function wire() {
    document.querySelectorAll("form.say, form.options").forEach(function (form) {
      if (form.dataset.wired) { return; }
      form.dataset.wired = "1";
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        send(form, event.submitter);
      });
    });
    var text = document.getElementById("text");
    if (text && !text.dataset.wired) {
      text.dataset.wired = "1";
      text.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && !event.shiftKey) {
          event.preventDefault();
          if (text.value.trim()) { text.form.requestSubmit(); }
        }
      });
    }
  }
  wire();

  // No push: ask for messages that arrived meanwhile (a staff reply released by the code).
  window.setInterval(function () {
    if (busy || document.hidden) { return; }
    fetch("/", { credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) { update(html, false); })
      .catch(function () {});
  }, 10000);
}());
