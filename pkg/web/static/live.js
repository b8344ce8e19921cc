// Live update: re-fetch this page's table fragment every 2 s and swap it
// in, unless the user is looking at details or the tab is hidden.
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button[data-confirm]");
    if (b && !window.confirm(b.getAttribute("data-confirm"))) { e.preventDefault(); }
  });
  var box = document.getElementById("live");
  if (!box || !box.dataset.live) { return; }
  var url = box.dataset.live;
  url += (url.indexOf("?") < 0 ? "?" : "&") + "fragment=1";
  function tick() {
    if (document.hidden || box.querySelector("details[open]")) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } })
      .catch(function () {});
  }
  setInterval(tick, 2000);
})();
