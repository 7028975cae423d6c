// Keyboard shortcuts, honest time tracking and resubmission for the labeling pages.
// Loaded with a CSP nonce; no inline handlers anywhere (the CSP forbids them).
(function () {
  "use strict";

  // Active time on the current item: counts only while the tab is visible and the annotator
  // has touched the page within the last minute, not wall time between claim and submit.
  // Time is credited when something happens (a tick, an input, a visibility change) for the
  // span since the last such moment, and only the part of it that was visible and within a
  // minute of the last input: a laptop that slept, or a hidden tab whose timers were
  // throttled, adds nothing when the annotator comes back.
  const IDLE_AFTER_MS = 60000;
  let activeMs = 0;
  let lastTick = Date.now();
  let activeUntil = Date.now() + IDLE_AFTER_MS;
  let visible = document.visibilityState === "visible";

  function tick() {
    const now = Date.now();
    if (visible) { activeMs += Math.max(0, Math.min(now, activeUntil) - lastTick); }
    lastTick = now;
  }
  function restartClock() {
    activeMs = 0; lastTick = Date.now(); activeUntil = lastTick + IDLE_AFTER_MS;
  }
  setInterval(tick, 1000);
  ["keydown", "mousemove", "mousedown", "scroll", "input"].forEach(function (type) {
    document.addEventListener(type, function () {
      tick();
      activeUntil = Date.now() + IDLE_AFTER_MS;
    }, { passive: true, capture: true });
  });
  document.addEventListener("visibilitychange", function () {
    tick();
    visible = document.visibilityState === "visible";
    if (visible) { activeUntil = Date.now() + IDLE_AFTER_MS; }
  });

  function annotationForm() { return document.getElementById("annotation-form"); }

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) &&
       !(target instanceof HTMLInputElement && /^(radio|checkbox)$/.test(target.type)));
  }

  function submitForm() {
    const form = annotationForm() || document.getElementById("review-form");
    if (form) { form.requestSubmit(); return true; }
    const ack = document.querySelector("#acknowledge form");
    if (ack) { ack.requestSubmit(); return true; }
    return false;
  }

  function toggle(id) {
    const details = document.getElementById(id);
    if (details) { details.open = !details.open; }
  }

  function pressShortcut(key) {
    const work = document.getElementById("work");
    if (!work) { return false; }
    const target = Array.from(work.querySelectorAll("[data-key]")).find(function (el) {
      return el.getAttribute("data-key").split(" ").indexOf(key) !== -1;
    });
    if (!target) { return false; }
    if (target.tagName === "TEXTAREA" || target.tagName === "SELECT") { target.focus(); }
    else { target.click(); target.focus(); }
    return true;
  }

  function onPlainKey(key) {
    if (key === "Enter") { return submitForm(); }
    if (key === "g") { toggle("guidelines-details"); return true; }
    if (key === "?") { toggle("shortcuts"); return true; }
    if (key === "s") {
      const select = document.querySelector("#skip-form select");
      if (select) { select.focus(); }
      return Boolean(select);
    }
    return pressShortcut(key);
  }

  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (submitForm()) { event.preventDefault(); }
      return;
    }
    if (event.key === "Enter" && target.closest && target.closest("#skip-form select")) {
      target.form.requestSubmit();
      event.preventDefault();
      return;
    }
    if (event.key === "Escape" && typing(target)) { target.blur(); return; }
    if (typing(target) || event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (event.key === "Enter" && /^(BUTTON|A|SUMMARY)$/.test(target.tagName)) { return; }
    if (onPlainKey(event.key)) { event.preventDefault(); }
  });

  // Stamp the active time into the form just before htmx sends it.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "annotation-form") {
      tick();
      event.detail.parameters.time_spent_ms = String(Math.round(activeMs));
    }
  });

  // A new item arrived: restart the clock and put the focus where the keyboard expects it.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "work") {
      restartClock();
      const focus = document.querySelector("#work [autofocus]") || document.getElementById("work");
      if (focus && focus.focus) { focus.focus({ preventScroll: true }); }
      window.scrollTo({ top: 0 });
    }
  });

  // After a 409 the notice offers to resubmit: same form, same client id, resubmit=1.
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-resubmit]");
    const form = annotationForm();
    if (!button || !form) { return; }
    form.querySelector("input[name=resubmit]").value = "1";
    form.requestSubmit();
  });
})();
