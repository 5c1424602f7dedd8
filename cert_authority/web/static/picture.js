// A licence page shows the small thumbnail at once and swaps in the full picture when it has loaded.
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("img[data-full]"), function (img) {
    var full = new Image();
    full.onload = function () { img.src = full.src; img.classList.add("full"); };
    full.src = img.dataset.full;
  });
})();
