// The web chat with JavaScript on: no page reloads, each new reply brought into view below the
// bar and focused (so a screen reader reads it from its first line), and a quick exit (button,
// or Esc twice) that replaces this page so Back does not return to it. An error keeps the page
// and its Leave-now button. Everything works without this script.
(function () {
  "use strict";
  if (!document.querySelector("form.leave")) { return; }

  function leaveForm() { return document.querySelector("form.leave"); }

  function leave() {
    var form = leaveForm();
    var exitUrl = form.getAttribute("data-exit");
    try {
      fetch("/exit", { method: "POST", body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin", keepalive: true, redirect: "manual" });
    } catch (ignored) { /* the page goes anyway */ }
    window.location.replace(exitUrl);
  }

  var lastEscape = 0;
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    var now = Date.now();
    if (now - lastEscape < 1000) { leave(); }
    lastEscape = now;
  });

  // Parts of the page that carry words in the person's language, replaced as they are.
  var FIXED = ["#bar", "#danger", "#about"];
  var FORMS = ["form.options", "form.say", "form.refresh"];

  var busy = false;
  function update(html, moveFocus) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var main = document.getElementById("chat");
    var freshMain = fresh.getElementById("chat");
    if (!main || !freshMain) { return; }
    document.documentElement.lang = fresh.documentElement.lang;
    document.title = fresh.title;
    FIXED.forEach(function (selector) {
      var mine = document.querySelector(selector);
      var theirs = fresh.querySelector(selector);
      if (mine && theirs) { mine.replaceWith(document.importNode(theirs, true)); }
    });
    var log = document.getElementById("log");
    var freshLog = fresh.getElementById("log");
    if (!log || !freshLog) {  // the chat has ended, or no room: that page, bar and all
      main.replaceWith(document.importNode(freshMain, true));
      wire();
      return;
    }
    var known = {};
    Array.prototype.forEach.call(log.children, function (item) { known[item.id] = true; });
    var firstNew = null;
    Array.prototype.forEach.call(freshLog.children, function (item) {
      var imported = document.importNode(item, true);
      var old = document.getElementById(item.id);
      if (old && known[item.id]) { old.replaceWith(imported); return; }
      log.appendChild(imported);
      if (!firstNew && imported.classList.contains("bot")) { firstNew = imported; }
    });
    FORMS.forEach(function (selector) {
      var mine = main.querySelector(selector);
      var theirs = freshMain.querySelector(selector);
      if (mine) { mine.remove(); }
      if (theirs) { main.appendChild(document.importNode(theirs, true)); }
    });
    wire();
    var error = document.getElementById("error");
    if (error && moveFocus) {
      document.getElementById("text").focus();
    } else if (firstNew && moveFocus) {
      firstNew.scrollIntoView({ block: "start" });
      firstNew.focus({ preventScroll: true });
    }
  }

  function say(text) {  // an answer that is not a page (a network error): shown, nothing lost
    var form = document.querySelector("form.say");
    var error = document.getElementById("error");
    if (!form) { return; }
    if (!error) {
      error = document.createElement("p");
      error.id = "error";
      error.className = "error";
      error.setAttribute("role", "alert");
      form.insertBefore(error, form.querySelector(".row"));
    }
    error.textContent = text;
  }

  function send(form, submitter) {
    if (busy) { return; }
    busy = true;
    var data = new FormData(form);
    if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
    fetch(form.action, { method: "POST", body: new URLSearchParams(data), credentials: "same-origin" })
      .then(function (response) {
        var kind = response.headers.get("Content-Type") || "";
        return response.text().then(function (body) {
          if (kind.indexOf("text/html") === 0) { update(body, true); } else { say(body); }
        });
      })
      .catch(function () { form.submit(); })
      .finally(function () { busy = false; });
  }

  function wire() {
    var form = leaveForm();
    if (form && !form.dataset.wired) {
      form.dataset.wired = "1";
      form.addEventListener("submit", function (event) { event.preventDefault(); leave(); });
      var hint = document.getElementById("leave-hint");
      if (hint) { hint.hidden = false; }
    }
    document.querySelectorAll("form.say, form.options").forEach(function (chatForm) {
      if (chatForm.dataset.wired) { return; }
      chatForm.dataset.wired = "1";
      chatForm.addEventListener("submit", function (event) {
        event.preventDefault();
        send(chatForm, event.submitter);
      });
    });
    var text = document.getElementById("text");
    if (text && !text.dataset.wired) {
      text.dataset.wired = "1";
      text.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && !event.shiftKey) {
          event.preventDefault();
          text.form.requestSubmit();
        }
      });
    }
  }
  wire();

  // No push: ask for messages that arrived meanwhile (a staff reply released by the code).
  window.setInterval(function () {
    if (busy || document.hidden) { return; }
    fetch("/", { credentials: "same-origin" })
      .then(function (response) {
        var kind = response.headers.get("Content-Type") || "";
        return response.ok && kind.indexOf("text/html") === 0 ? response.text() : null;
      })
      .then(function (html) { if (html) { update(html, false); } })
      .catch(function () {});
  }, 10000);
}());
