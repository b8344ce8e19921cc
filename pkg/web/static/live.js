// Live update: re-fetch this page's table fragment (its tables and charts)
// every 2 s and swap it in, unless the tab is hidden or the user is using
// what the swap would replace: open details, a chart under the pointer
// (its hover numbers would vanish), or keyboard focus inside it.
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
    if (document.hidden || box.querySelector("details[open]") || box.querySelector("svg.chart:hover")) { return; }
    var focused = document.activeElement;
    if (focused && focused !== document.body && box.contains(focused)) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } })
      .catch(function () {});
  }
  setInterval(tick, 2000);
})();
