// The show screen: count down to the code's expiry and fetch a fresh code a few seconds before it,
// so the counter always scans a live one. A stale code is hidden, never left on screen. A running
// clock shows the screen is live (a screenshot stands still); the licence's status is asked every
// few seconds, so a revocation takes the code off at once; offline, the screen says so.
(function () {
  "use strict";
  var screen = document.getElementById("show");
  var qr = document.getElementById("qr");
  var remainingText = document.getElementById("remaining");
  var countdown = document.getElementById("countdown");
  var stale = document.getElementById("stale");
  var offline = document.getElementById("offline");
  var clock = document.getElementById("clock");
  var identifier = screen.dataset.identifier;
  var base = "/wallet/licences/" + encodeURIComponent(identifier);
  var seconds = parseInt(screen.dataset.seconds, 10);
  var fields = screen.dataset.fields ? screen.dataset.fields.split(",") : null;
  var STATUS_EVERY = 3000; // ms between status checks: a revocation shows within this
  // Counted on the phone's own clock from when the code arrived: a phone set to the wrong time
  // still refreshes on time.
  var expires = Date.now() + seconds * 1000;
  var margin = Math.min(5, Math.floor(seconds / 4)); // refresh this many seconds before expiry
  var fetching = false;
  var lastStatusCheck = Date.now();
  var reachable = true;

  function setReachable(yes) {
    reachable = yes && navigator.onLine !== false;
    offline.hidden = reachable;
    countdown.hidden = !reachable;
  }

  function gone() { window.location.reload(); } // the server draws the red screen with the reason

  function refresh() {
    fetching = true;
    fetch(base + "/show-token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ fields: fields, seconds: seconds })
    }).then(function (response) {
      if (response.status === 401) { window.location.href = "/wallet/login"; return null; }
      if (response.status === 409 || response.status === 404) { gone(); return null; }
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (token) {
      if (!token) { return; }
      setReachable(true);
      qr.innerHTML = token.qr_svg;
      qr.hidden = false;
      stale.hidden = true;
      expires = Date.now() + token.seconds * 1000;
    }).catch(function () {
      setReachable(false); // try again on the next tick; tick() hides the code once it expires
    }).then(function () { fetching = false; });
  }

  function checkStatus() {
    lastStatusCheck = Date.now();
    fetch(base + "/status", { credentials: "same-origin", cache: "no-store" }).then(function (response) {
      if (response.status === 401) { window.location.href = "/wallet/login"; return null; }
      if (response.status === 404) { gone(); return null; }
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (answer) {
      if (!answer) { return; }
      setReachable(true);
      if (answer.status !== "issued") { qr.hidden = true; qr.innerHTML = ""; gone(); }
    }).catch(function () { setReachable(false); });
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function tick() {
    var now = new Date();
    clock.textContent = two(now.getHours()) + ":" + two(now.getMinutes()) + ":" + two(now.getSeconds());
    var left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    remainingText.textContent = String(Math.max(0, left - margin));
    if (left <= 0) { qr.hidden = true; stale.hidden = false; }
    if (left <= margin && !fetching) { refresh(); }
    if (Date.now() - lastStatusCheck >= STATUS_EVERY) { checkStatus(); }
  }

  window.addEventListener("offline", function () { setReachable(false); });
  window.addEventListener("online", function () { setReachable(true); checkStatus(); });
  setReachable(true);
  tick();
  setInterval(tick, 1000);
})();
