// The show screen: count down to the code's expiry and fetch a fresh code a few seconds before it,
// so the counter always scans a live one. A stale code is hidden, never left on screen.
(function () {
  "use strict";
  var screen = document.getElementById("show");
  var qr = document.getElementById("qr");
  var remainingText = document.getElementById("remaining");
  var stale = document.getElementById("stale");
  var identifier = screen.dataset.identifier;
  var seconds = parseInt(screen.dataset.seconds, 10);
  var fields = screen.dataset.fields ? screen.dataset.fields.split(",") : null;
  // Counted on the phone's own clock from when the code arrived: a phone set to the wrong time
  // still refreshes on time.
  var expires = Date.now() + seconds * 1000;
  var margin = Math.min(5, Math.floor(seconds / 4)); // refresh this many seconds before expiry
  var fetching = false;

  function refresh() {
    fetching = true;
    fetch("/wallet/licences/" + encodeURIComponent(identifier) + "/show-token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ fields: fields, seconds: seconds })
    }).then(function (response) {
      if (response.status === 401) { window.location.href = "/wallet/login"; return null; }
      if (response.status === 409 || response.status === 404) { window.location.reload(); return null; }
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (token) {
      if (!token) { return; }
      qr.innerHTML = token.qr_svg;
      qr.hidden = false;
      stale.hidden = true;
      expires = Date.now() + token.seconds * 1000;
    }).catch(function () {
      // Offline or server trouble: try again on the next tick; tick() hides the code once it expires.
    }).then(function () { fetching = false; });
  }

  function tick() {
    var left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    remainingText.textContent = String(Math.max(0, left - margin));
    if (left <= 0) { qr.hidden = true; stale.hidden = false; }
    if (left <= margin && !fetching) { refresh(); }
  }

  tick();
  setInterval(tick, 1000);
})();
