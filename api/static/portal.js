// Optional: pages work without it. An element with data-poll="URL" is refreshed from that URL every few
// seconds (an order's status and trail) until the fragment it receives carries data-final.
(function () {
  "use strict";
  function poll(element) {
    var url = element.getAttribute("data-poll");
    var timer = window.setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          element.innerHTML = html;
          if (element.querySelector("[data-final]")) { window.clearInterval(timer); }
        })
        .catch(function () { /* the next tick tries again */ });
    }, 2000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var elements = document.querySelectorAll("[data-poll]");
    for (var i = 0; i < elements.length; i++) {
      if (!elements[i].querySelector("[data-final]")) { poll(elements[i]); }
    }
  });
})();
